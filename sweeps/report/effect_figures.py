"""Table 10 and Figure 4 read against the p = 0 row: each (ε, p) cell's measured effect.

- :func:`effect_heatmap`: the effect of each cell against its baseline, annotated with its
  95% interval (paired or Welch) and the paper's effect; colour diverging around 0, and cells whose
  interval covers 0 (after Holm's adjustment: verdict ``not shown``) stay pale;
- :func:`effect_figure4`: the effect against p, one line per ε, with 95% interval bars, the
  paper's effects dashed and 0 (the baseline) as a line.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from matplotlib.colors import to_rgba

from sweeps.report.aggregate import CellStats
from sweeps.report.analysis import Analysis
from sweeps.report.effects import ALPHA
from sweeps.report.figures import Figure, FigureSet, task_suffix
from sweeps.report.match import param_float
from sweeps.report.plots import DIVERGING, label_eps_p_axes, plt

__all__ = ["EffectGrid", "effect_figure4", "effect_figures", "effect_grid", "effect_heatmap"]

_PALE = 0.2  # how much of a cell's colour is kept when its interval covers 0
_BASELINE_GREY = "#d9d9d9"
_UNMEASURED = "#bdbdbd"


@dataclass(frozen=True)
class EffectGrid:
    """Effects on an ε × p grid (rows p, columns ε); NaN where no effect was measured."""

    eps: Sequence[float]
    p: Sequence[float]
    effect: np.ndarray
    lo: np.ndarray  # 95% interval, paired or Welch (NaN without one)
    hi: np.ndarray
    paper: np.ndarray  # the paper's effect (NaN where it has none)
    shown: np.ndarray  # bool: the interval excludes 0 after Holm's adjustment
    baseline: np.ndarray  # bool: a measured baseline cell (p = 0)
    unit: str = "%"
    title: str = ""
    reference: dict[float, tuple[list[float], list[float]]] | None = None
    """The paper's effect against p for each measured ε (Table 10), drawn dashed."""


def _reference(analysis: Analysis, eps_axis: Sequence[float]) -> dict | None:
    """The paper's Table 10 effects against p = 0 for each measured ε (Table 10 sweeps)."""
    if analysis.matcher.name != "table10" or analysis.unit != "%":
        return None
    f1 = analysis.metric.endswith("_f1")
    lines = {}
    for eps in eps_axis:
        row = sorted(
            (p, v.f1 if f1 else v.acc) for (e, p), v in analysis.matcher.paper.items() if e == eps
        )
        base = dict(row).get(0.0)
        if base is not None and all(v is not None for _, v in row):
            lines[eps] = ([p for p, _ in row], [v - base for _, v in row])
    return lines or None


def effect_grid(analysis: Analysis, cells: Sequence[CellStats]) -> EffectGrid | None:
    """The effects of one task's DropAttack cells over ε × p; None without a grid of effects."""
    if analysis.effects is None:
        return None
    points: dict[tuple[float, float], CellStats] = {}
    for cell in cells:
        eps, p = param_float(cell.params, "eps"), param_float(cell.params, "p")
        if eps is None or p is None or cell.params.get("method", "dropattack") != "dropattack":
            continue
        if (eps, p) in points:
            return None  # several configurations on one point: no single grid
        points[(eps, p)] = cell
    eps_axis, p_axis = sorted({k[0] for k in points}), sorted({k[1] for k in points})
    if len(eps_axis) < 2 and len(p_axis) < 2:
        return None
    shape = (len(p_axis), len(eps_axis))
    arrays = {name: np.full(shape, np.nan) for name in ("effect", "lo", "hi", "paper")}
    shown, baseline = np.zeros(shape, bool), np.zeros(shape, bool)
    for (eps, p), cell in points.items():
        i, j = p_axis.index(p), eps_axis.index(eps)
        baseline[i, j] = cell.is_baseline
        e = analysis.effects.of(cell)
        if e is None:
            continue
        arrays["effect"][i, j] = e.value
        if e.ci95 is not None:
            arrays["lo"][i, j], arrays["hi"][i, j] = e.ci95
        if e.paper_effect is not None:
            arrays["paper"][i, j] = e.paper_effect
        shown[i, j] = e.pvalue_holm is not None and e.pvalue_holm < ALPHA
    if np.isnan(arrays["effect"]).all():
        return None
    return EffectGrid(
        eps_axis,
        p_axis,
        shown=shown,
        baseline=baseline,
        unit=analysis.unit,
        reference=_reference(analysis, eps_axis),
        **arrays,
    )


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pale(rgba: tuple, keep: float) -> tuple:
    r, g, b, a = rgba
    return (1 - keep + keep * r, 1 - keep + keep * g, 1 - keep + keep * b, a)


def effect_heatmap(grid: EffectGrid) -> bytes:
    """Each cell's effect against the p = 0 baseline, its 95% interval and the paper's effect."""
    fig, ax = plt.subplots(figsize=(1.5 * len(grid.eps) + 3.0, 0.9 * len(grid.p) + 2.0))
    finite = np.abs(grid.effect[~np.isnan(grid.effect)])
    half = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    cmap = plt.get_cmap(DIVERGING)
    colours = np.ones((*grid.effect.shape, 4))
    for i in range(len(grid.p)):
        for j in range(len(grid.eps)):
            value = grid.effect[i, j]
            if grid.baseline[i, j]:
                colours[i, j] = to_rgba(_BASELINE_GREY)
            elif np.isnan(value):
                colours[i, j] = to_rgba(_UNMEASURED)
            else:
                rgba = cmap(0.5 + 0.5 * value / half)
                colours[i, j] = rgba if grid.shown[i, j] else _pale(rgba, _PALE)
    ax.imshow(colours, aspect="auto", origin="upper")
    label_eps_p_axes(ax, grid.eps, grid.p)
    for i in range(len(grid.p)):
        for j in range(len(grid.eps)):
            ax.text(j, i, _label(grid, i, j), ha="center", va="center", fontsize=7)
    ax.set_title(
        (grid.title or "Effect against p = 0")
        + f"\nmeasured − baseline ({grid.unit or 'metric'}) [95% CI] (paper); pale: the CI "
        "covers 0 (Holm)",
        fontsize=9,
    )
    return _png(fig)


def _label(grid: EffectGrid, i: int, j: int) -> str:
    if grid.baseline[i, j]:
        return "baseline"
    value = grid.effect[i, j]
    if np.isnan(value):
        return "–"
    text = f"{value:+.2f}"
    if not np.isnan(grid.lo[i, j]):
        text += f"\n[{grid.lo[i, j]:+.2f}, {grid.hi[i, j]:+.2f}]"
    if not np.isnan(grid.paper[i, j]):
        text += f"\n(paper {grid.paper[i, j]:+.2f})"
    return text


def effect_figure4(grid: EffectGrid) -> bytes:
    """Effect against p, one line per ε, with 95% interval bars; the paper's effects dashed."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = plt.get_cmap("tab10")
    p = np.asarray(grid.p)
    for j, eps in enumerate(grid.eps):
        color = colors(j % 10)
        # a measured baseline cell is the line's start: effect 0 by definition
        y = np.where(grid.baseline[:, j], 0.0, grid.effect[:, j])
        ok = ~np.isnan(y)
        if ok.any():
            lo = np.where(np.isnan(grid.lo[:, j]), y, grid.lo[:, j])[ok]
            hi = np.where(np.isnan(grid.hi[:, j]), y, grid.hi[:, j])[ok]
            err = np.vstack([y[ok] - lo, hi - y[ok]])
            ax.errorbar(p[ok], y[ok], yerr=err, marker="o", ms=4, capsize=2, color=color,
                        label=f"ε = {eps:g}")  # fmt: skip
        if grid.reference and eps in grid.reference:
            px, py = grid.reference[eps]
            ax.plot(px, py, ls="--", lw=1, alpha=0.6, color=color)
        else:
            ref = ~np.isnan(grid.paper[:, j])
            ax.plot(p[ref], grid.paper[:, j][ref], ls="none", marker="x", alpha=0.8, color=color)
    ax.axhline(0.0, color="dimgray", lw=1, ls=":", label="baseline (p = 0)")
    ax.set_xlabel("attack probability p")
    ax.set_ylabel(f"effect against p = 0 ({grid.unit or 'metric'})")
    ax.set_title(
        (grid.title or "Effect against attack probability")
        + "\none line per ε, bars: 95% CI, paired or Welch (dashed or ×: the paper's effects)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _png(fig)


def effect_figures(analysis: Analysis) -> FigureSet:
    """The effect heatmap and effect Figure 4 of each task whose cells form an ε × p grid."""
    out = FigureSet()
    by_task: dict[str, list[CellStats]] = defaultdict(list)
    for cell in analysis.cells:
        by_task[cell.task].append(cell)
    for task, cells in by_task.items():
        grid = effect_grid(analysis, cells)
        if grid is None:
            continue
        suffix = task_suffix(task, len(by_task) > 1)
        grid = replace(grid, title=f"{task}: effect on {analysis.metric}")
        short, long = _against(analysis, cells)
        table = "Table 10" if analysis.matcher.name == "table10" else "The ε × p grid"
        paper = not np.isnan(grid.paper).all()
        out.figures += [
            Figure(
                f"effect-heatmap{suffix}.png",
                effect_heatmap(grid),
                f"{table} read against {short} ({task}): each cell's mean {analysis.metric} "
                f"minus its baseline's ({long}), with the 95% CI (paired or Welch)"
                + (" and the paper's effect" if paper else "")
                + "; cells whose CI covers 0 after Holm's adjustment over the cells measured "
                "against that baseline stay pale.",
            ),
            Figure(
                f"figure4-effect{suffix}.png",
                effect_figure4(grid),
                f"Figure 4 read against {short} ({task}): the effect against the attack "
                "probability p, one line per ε, bars the 95% CI (paired or Welch); "
                + ("dashed lines are the paper's effects, " if paper else "")
                + "the dotted line 0 (no effect).",
            ),
        ]
    return out


def _against(analysis: Analysis, cells: Sequence[CellStats]) -> tuple[str, str]:
    """What the task's effects are measured against: a short and a long phrase (the p = 0
    cell, or the baseline configurations by name)."""
    effects = analysis.effects
    found = [effects.of(c) for c in cells] if effects is not None else []
    bases = {e.baseline.key: e.baseline for e in found if e is not None}
    if bases and all(
        param_float(b.params, "p") == 0.0 and b.params.get("method") == "dropattack"
        for b in bases.values()
    ):
        return "p = 0", "the p = 0 cell"
    names = sorted(b.name or b.key for b in bases.values())
    if len(names) == 1:
        return names[0], names[0]
    return "the baselines", ", ".join(names) or "none measured"
