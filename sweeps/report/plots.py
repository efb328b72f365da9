"""The report's figures as PNG bytes (matplotlib, Agg backend, no display needed).

- :func:`heatmap`: measured mean over the ε × p grid, annotated with each cell's value and
  coloured relative to the baseline (a diverging map centred on the baseline's mean) when the
  sweep has one, so cells above and below it read at a glance;
- :func:`figure4`: the paper's Figure 4, accuracy against p with one line per ε, the baseline
  as a horizontal band (mean ± std);
- :func:`cost_figure`: the extension study, accuracy against passes per step and seconds;
- :func:`figure2`: the paper's Figure 2, train and validation accuracy per epoch with and
  without DropAttack, one panel per model.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Colormap, Normalize, TwoSlopeNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = [
    "Baseline",
    "CostPoint",
    "Curve",
    "Grid",
    "cost_figure",
    "figure2",
    "figure4",
    "figure4_figure",
    "heatmap",
    "heatmap_figure",
    "heatmap_scale",
]

_DPI = 110
DIVERGING = "RdBu"  # red below the baseline, blue above, white at it
SEQUENTIAL = "viridis"
_UNMEASURED = "#bdbdbd"


@dataclass(frozen=True)
class Baseline:
    """The baseline's measured mean and sample std over its ``n`` runs (std NaN when n = 1)."""

    mean: float
    std: float
    n: int
    label: str = "baseline"

    def text(self, unit: str) -> str:
        """``baseline 97.00 ± 0.50% (n=3)``: a unit other than % follows after a space."""
        spread = "" if not np.isfinite(self.std) else f" ± {self.std:.2f}"
        unit = unit if unit in ("", "%") else f" {unit}"
        return f"{self.label} {self.mean:.2f}{spread}{unit} (n={self.n})"


@dataclass(frozen=True)
class Grid:
    """Means (and stds) on an ε × p grid; NaN where a combination was not measured."""

    eps: Sequence[float]
    p: Sequence[float]
    mean: np.ndarray  # shape (len(p), len(eps))
    std: np.ndarray
    reference: Mapping[float, tuple[Sequence[float], Sequence[float]]] | None = None
    """The paper's full curve per ε, (p values, accuracies), drawn dashed in Figure 4."""
    unit: str = "%"
    title: str = ""
    baseline: Baseline | None = None
    """The task's baseline: the heatmap's colour centre and Figure 4's band."""
    task: str = ""
    selected: tuple[float, float] | None = None
    """(ε, p) of the configuration selected on validation: marked ◆ on both figures."""


@dataclass(frozen=True)
class Curve:
    """One line of Figure 2: a model's accuracy per epoch, averaged over seeds."""

    model: str
    method: str
    split: str  # "train" or "val"
    epochs: Sequence[int]
    values: Sequence[float]


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def heatmap_scale(grid: Grid) -> tuple[Colormap, Normalize]:
    """The heatmap's colours: diverging and centred on the baseline's mean when there is one.

    The limits are symmetric about the baseline (the farther cell sets both, and they reach
    at least 2 std of the baseline's runs, so that cells within its noise stay pale), so one
    colour intensity means one distance from the baseline on either side. Without a baseline the map
    is sequential over the cells' range. Unmeasured cells are grey (white is the baseline).
    """
    data = np.ma.masked_invalid(grid.mean)
    lo, hi = (float(data.min()), float(data.max())) if data.count() else (0.0, 1.0)
    if grid.baseline is None:
        cmap = plt.get_cmap(SEQUENTIAL).with_extremes(bad=_UNMEASURED)
        return cmap, Normalize(lo, hi if hi > lo else lo + 1.0)
    centre = grid.baseline.mean
    noise = 2 * grid.baseline.std if np.isfinite(grid.baseline.std) else 0.0
    half = max(abs(hi - centre), abs(lo - centre), noise)
    half = half if half > 0 else max(abs(centre) * 1e-3, 1e-6)
    cmap = plt.get_cmap(DIVERGING).with_extremes(bad=_UNMEASURED)
    return cmap, TwoSlopeNorm(centre, centre - half, centre + half)


def label_eps_p_axes(ax: plt.Axes, eps: Sequence[float], p: Sequence[float]) -> None:
    """Ticks and labels of an ε (columns) x p (rows) grid drawn with ``imshow``."""
    ax.set_xticks(range(len(eps)), [f"{e:g}" for e in eps])
    ax.set_yticks(range(len(p)), [f"{v:g}" for v in p])
    ax.set_xlabel("perturbation coefficient ε")
    ax.set_ylabel("attack probability p")


def heatmap_figure(grid: Grid) -> plt.Figure:
    """The heatmap as a matplotlib figure (rows p, columns ε), each cell annotated."""
    fig, ax = plt.subplots(figsize=(1.1 * len(grid.eps) + 3.0, 0.7 * len(grid.p) + 2.0))
    data = np.ma.masked_invalid(grid.mean)
    cmap, norm = heatmap_scale(grid)
    image = ax.imshow(data, cmap=cmap, norm=norm, aspect="auto", origin="upper")
    label_eps_p_axes(ax, grid.eps, grid.p)
    for i in range(len(grid.p)):
        for j in range(len(grid.eps)):
            value = grid.mean[i, j]
            if np.isnan(value):
                ax.text(j, i, "–", ha="center", va="center", fontsize=8, color="black")
                continue
            r, g, b, _ = cmap(norm(value))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            color = "white" if dark else "black"
            chosen = grid.selected == (grid.eps[j], grid.p[i])
            text = f"{value:.2f} ◆" if chosen else f"{value:.2f}"
            ax.text(
                j, i, text, ha="center", va="center", fontsize=8, color=color,
                fontweight="bold" if chosen else "normal",
            )  # fmt: skip
    label = f"mean accuracy ({grid.unit})"
    title = grid.title or "Measured mean over the ε × p grid"
    if grid.baseline is not None:
        label += "; black line: baseline"
        title += f"\ncolour centred on the {grid.baseline.text(grid.unit)}: blue above, red below"
    if grid.selected is not None:
        title += "\n◆ selected on validation"
    bar = fig.colorbar(image, ax=ax, label=label)
    if grid.baseline is not None:
        base = grid.baseline.mean
        bar.ax.axhline(base, color="black", lw=2)
        if data.count():  # show the part of the symmetric scale that cells or baseline use
            bar.ax.set_ylim(min(float(data.min()), base), max(float(data.max()), base))
    ax.set_title(title, fontsize=10)
    return fig


def heatmap(grid: Grid) -> bytes:
    """:func:`heatmap_figure` as PNG bytes."""
    return _png(heatmap_figure(grid))


def figure4(grid: Grid) -> bytes:
    """:func:`figure4_figure` as PNG bytes."""
    return _png(figure4_figure(grid))


def figure4_figure(grid: Grid) -> plt.Figure:
    """Accuracy against p, one line per ε (error bars: std), the baseline as a band.

    The paper's lines are dashed; the grey band is the baseline's mean ± std, its mean dotted.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = plt.get_cmap("tab10")
    for j, eps in enumerate(grid.eps):
        color = colors(j % 10)
        y, err = grid.mean[:, j], grid.std[:, j]
        ok = ~np.isnan(y)
        if ok.any():
            ax.errorbar(
                np.asarray(grid.p)[ok],
                y[ok],
                yerr=np.nan_to_num(err[ok]),
                marker="o",
                ms=4,
                capsize=2,
                color=color,
                label=f"ε = {eps:g}",
            )
        if grid.reference and eps in grid.reference:
            px, py = grid.reference[eps]
            ax.plot(px, py, ls="--", lw=1, alpha=0.6, color=color)
    if grid.selected is not None and grid.selected[0] in grid.eps and grid.selected[1] in grid.p:
        eps, p = grid.selected
        y = grid.mean[list(grid.p).index(p), list(grid.eps).index(eps)]
        ax.plot([p], [y], "D", ms=9, mfc="none", mec="black", mew=1.5, label="selected (val)")
    if grid.baseline is not None:
        base = grid.baseline
        if np.isfinite(base.std):
            ax.axhspan(
                base.mean - base.std,
                base.mean + base.std,
                color="gray",
                alpha=0.25,
                lw=0,
                label=f"{base.label} mean ± std (n={base.n})",
            )
        ax.axhline(base.mean, color="dimgray", lw=1, ls=":", label=f"{base.label} mean")
    ax.set_xlabel("attack probability p")
    ax.set_ylabel(f"accuracy ({grid.unit})")
    note = " (dashed: paper)" if grid.reference else ""
    task = f"{grid.task}: " if grid.task else ""
    ax.set_title(f"{task}accuracy against attack probability, one line per ε{note}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return fig


@dataclass(frozen=True)
class CostPoint:
    """One configuration of the extension study: its accuracy and what it costs."""

    label: str
    group: str
    k: int | None
    passes: int | None
    seconds: float | None
    mean: float
    ci: tuple[float, float] | None
    pareto: bool = False


_GROUP_MARKERS = {"paper": "o", "per_target": "s", "joint": "^", "baseline": "*"}


def cost_figure(
    points: Sequence[CostPoint], baseline: Baseline | None, title: str = "", unit: str = "%"
) -> bytes:
    """Mean accuracy (95% CI bars) against passes per step and against mean training seconds.

    Marker: the grouping (a star for the baseline, ``k`` None); colour: K. The baseline is also
    a grey band (mean ± std); on the seconds panel a line joins the Pareto set (no other
    configuration is both cheaper and more accurate). Filled markers are on that set.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    ks = sorted({p.k for p in points if p.k is not None})
    colors = {k: plt.get_cmap("tab10")(i % 10) for i, k in enumerate(ks)}
    for ax, attr, xlabel in (
        (axes[0], "passes", "forward/backward passes per step"),
        (axes[1], "seconds", "mean training seconds"),
    ):
        for p in points:
            x = getattr(p, attr)
            if x is None:
                continue
            err = None if p.ci is None else [[p.mean - p.ci[0]], [p.ci[1] - p.mean]]
            ax.errorbar(
                [x],
                [p.mean],
                yerr=err,
                marker=_GROUP_MARKERS.get(p.group, "D"),
                ms=7,
                capsize=3,
                color=colors.get(p.k, "black"),
                ls="none",
                mfc="none" if not p.pareto else colors.get(p.k, "black"),
            )
            ax.annotate(p.label, (x, p.mean), xytext=(5, 4), textcoords="offset points", fontsize=7)
        if baseline is not None:
            if np.isfinite(baseline.std):
                ax.axhspan(
                    baseline.mean - baseline.std,
                    baseline.mean + baseline.std,
                    color="gray",
                    alpha=0.25,
                    lw=0,
                )
            ax.axhline(baseline.mean, color="dimgray", lw=1, ls=":")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    front = sorted(
        (p for p in points if p.pareto and p.seconds is not None), key=lambda p: p.seconds
    )
    if front:
        axes[1].plot(
            [p.seconds for p in front], [p.mean for p in front], color="black", lw=1, alpha=0.6
        )
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel(f"accuracy ({unit})" if unit else "metric")
    handles = [
        Line2D([], [], marker=m, ls="none", color="gray", mfc="none", label=g)
        for g, m in _GROUP_MARKERS.items()
        if any(p.group == g for p in points)
    ] + [Line2D([], [], marker="o", ls="none", color=colors[k], label=f"K = {k}") for k in ks]
    handles.append(Line2D([], [], marker="o", ls="none", color="gray", label="filled: Pareto"))
    if baseline is not None:
        handles.append(Patch(color="gray", alpha=0.25, label=f"{baseline.text(unit)}".strip()))
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 4),
        fontsize=8,
        bbox_to_anchor=(0.5, -0.08 - 0.04 * (len(handles) // 5)),
    )
    fig.suptitle(title or "Accuracy against cost")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _png(fig)


def figure2(curves: Sequence[Curve], unit: str = "%") -> bytes:
    """Train (dashed) and validation (solid) accuracy per epoch, one panel per model."""
    models = list(dict.fromkeys(c.model for c in curves))
    methods = list(dict.fromkeys(c.method for c in curves))
    colors: Mapping[str, str] = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for c in (c for c in curves if c.model == model):
            ax.plot(
                c.epochs,
                c.values,
                ls="-" if c.split == "val" else "--",
                marker="o" if c.split == "val" else None,
                ms=3,
                color=colors[c.method],
            )
        ax.set_title(model)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"accuracy ({unit})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[m], lw=2, label=m) for m in methods] + [
        Line2D([], [], color="gray", ls="--", label="train"),
        Line2D([], [], color="gray", ls="-", marker="o", ms=3, label="validation"),
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(4, len(handles)),
        fontsize=8,
        bbox_to_anchor=(0.5, -0.02 - 0.04 * (len(handles) // 4)),
    )
    fig.suptitle("Training (dashed) and validation (solid) accuracy per epoch")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _png(fig)
