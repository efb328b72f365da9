"""Which figures a sweep gets, and their data: the ε × p grid (heatmap, Figure 4) set against
the task's baseline, and the per-epoch curves of Figure 2 (read from MLflow metric history only
when that figure is drawn).
"""

from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from mlflow import MlflowClient

from sweeps.records.collect import metric_history
from sweeps.report import plots
from sweeps.report.aggregate import CellStats, metric_scale
from sweeps.report.analysis import Analysis
from sweeps.report.match import param_float
from sweeps.report.tables import describe, varying_params
from sweeps.specs.names import name_problem

__all__ = [
    "Figure",
    "FigureSet",
    "baseline_of",
    "task_suffix",
    "curves_figure",
    "figure2_curves",
    "grid_figures",
    "grid_of",
    "task_grid",
]

GRID_TABLES = frozenset({"table10"})
HISTORY_KEYS = {"train": "epoch_train_acc", "val": "epoch_val_acc"}


def task_suffix(task: str, many: bool) -> str:
    """``-TASK`` for a figure's file name when a report has several tasks (else "").

    ``task`` comes from MLflow, where any sweep account can write it: a value outside the
    spec-name rule (``../x``, ``a/b``, a control character) is never used as it is, but
    replaced by ``-task-`` and a digest of it, so that a file name never leaves the folder.
    """
    if not many:
        return ""
    if name_problem(task) is None and len(task) <= 100:
        return f"-{task}"
    return "-task-" + hashlib.sha256(task.encode()).hexdigest()[:12]


@dataclass
class Figure:
    """A rendered figure: file name, PNG bytes and caption."""

    name: str
    png: bytes
    caption: str


@dataclass
class FigureSet:
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def baseline_of(cells: Sequence[CellStats]) -> plots.Baseline | None:
    """The task's baseline: the runs of its baseline cells pooled (the matcher's choice).

    Several baseline cells (Table 10's p = 0 column, one per ε) are the same training, so their
    runs are pooled; ``None`` when the task has no baseline.
    """
    base = [c for c in cells if c.is_baseline]
    values = [v for c in base for v in c.values]
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    label = base[0].variant if len(base) == 1 and base[0].variant else "baseline"
    return plots.Baseline(statistics.fmean(values), std, len(values), label)


def grid_of(analysis: Analysis, cells: Sequence[CellStats]) -> plots.Grid | str:
    """The ε × p grid of one task's cells, or why there is none (a sentence)."""
    points = {}
    for cell in cells:
        eps, p = param_float(cell.params, "eps"), param_float(cell.params, "p")
        if eps is None or p is None or cell.params.get("method", "dropattack") != "dropattack":
            continue
        if (eps, p) in points:
            return "several configurations share one (ε, p) point, so there is no single grid"
        points[(eps, p)] = cell
    eps_axis = sorted({k[0] for k in points})
    p_axis = sorted({k[1] for k in points})
    if len(eps_axis) < 2 and len(p_axis) < 2:
        return "the sweep does not vary ε or p"
    shape = (len(p_axis), len(eps_axis))
    mean, std = np.full(shape, np.nan), np.full(shape, np.nan)
    for (eps, p), cell in points.items():
        i, j = p_axis.index(p), eps_axis.index(eps)
        mean[i, j], std[i, j] = cell.mean, cell.std
    return plots.Grid(
        eps=eps_axis,
        p=p_axis,
        mean=mean,
        std=std,
        reference=_paper_lines(analysis, eps_axis),
        unit=analysis.unit or analysis.metric,
        baseline=baseline_of(cells),
    )


def _paper_lines(analysis: Analysis, eps_axis: Sequence[float]) -> dict | None:
    """The paper's accuracy-against-p line for each measured ε (Table 10 sweeps only)."""
    if analysis.matcher.name not in GRID_TABLES or analysis.metric.endswith("_f1"):
        return None
    lines = {}
    for eps in eps_axis:
        points = sorted((p, v.acc) for (e, p), v in analysis.matcher.paper.items() if e == eps)
        if points:
            lines[eps] = ([p for p, _ in points], [v for _, v in points])
    return lines or None


def _by_task(analysis: Analysis) -> dict[str, list[CellStats]]:
    out: dict[str, list[CellStats]] = defaultdict(list)
    for cell in analysis.cells:
        out[cell.task].append(cell)
    return out


def task_grid(analysis: Analysis, task: str, cells: Sequence[CellStats]) -> plots.Grid | str:
    """:func:`grid_of` one task's cells, titled with the task and marking the configuration
    selected on validation where it is a point of the grid."""
    grid = grid_of(analysis, cells)
    if isinstance(grid, str):
        return grid
    best = next((c.best for c in analysis.comparisons if c.task == task), None)
    where = None
    if best is not None and not best.is_baseline:
        where = (param_float(best.params, "eps"), param_float(best.params, "p"))
        if where not in {(e, p) for e in grid.eps for p in grid.p}:
            where = None  # the selected configuration is not a point of this grid
    return replace(grid, title=f"{task}: mean {analysis.metric}", task=task, selected=where)


def grid_figures(analysis: Analysis) -> FigureSet:
    """Heatmap and Figure 4 for each task whose cells form an ε × p grid."""
    out = FigureSet()
    tasks = _by_task(analysis)
    for task, cells in tasks.items():
        grid = task_grid(analysis, task, cells)
        if isinstance(grid, str):
            out.notes.append(f"No ε × p heatmap for task {task or '?'}: {grid}.")
            continue
        suffix = task_suffix(task, len(tasks) > 1)
        mark = "; ◆ marks the configuration selected on validation" if grid.selected else ""
        out.figures.append(
            Figure(
                f"heatmap{suffix}.png",
                plots.heatmap(grid),
                f"Measured mean {analysis.metric} over the ε × p grid ({task})"
                + (
                    f"; the colour is centred on the {grid.baseline.text(grid.unit)}: blue "
                    "cells lie above it, red cells below; the scale reaches at least 2 std of "
                    "the baseline, so cells within its noise stay pale."
                    if grid.baseline
                    else "; no baseline was measured, so the colour spans the cells' range."
                )
                + mark,
            )
        )
        out.figures.append(
            Figure(
                f"figure4{suffix}.png",
                plots.figure4(grid),
                f"Figure 4: {analysis.metric} against attack probability p, one line per ε "
                f"({task}); error bars are ± std over seeds"
                + ("; the grey band is the baseline's mean ± std" if grid.baseline else "")
                + mark.replace("◆", "the open diamond")
                + ("; dashed lines are the paper's numbers." if grid.reference else "."),
            )
        )
    return out


def _mean_curve(series: list[list[tuple[int, float]]], scale: float) -> tuple[list, list]:
    per_epoch: dict[int, list[float]] = defaultdict(list)
    for points in series:
        for step, value in points:
            per_epoch[step].append(value * scale)
    epochs = sorted(per_epoch)
    return epochs, [statistics.fmean(per_epoch[e]) for e in epochs]


def figure2_curves(analysis: Analysis, client: MlflowClient) -> tuple[list[plots.Curve], list[str]]:
    """Seed-averaged train/val accuracy per epoch for every cell, and the cells lacking history.

    Lines are named by the cell's variant (or method), or by what distinguishes the cell from
    the other cells of its task when that name is shared.
    """
    curves, empty = [], []
    scale = metric_scale("epoch_val_acc")
    for task, cells in _by_task(analysis).items():
        labels = [c.variant or c.params.get("method", "?") for c in cells]
        distinct = [k for k in varying_params(cells) if k != "task"]
        for cell, label in zip(cells, labels, strict=True):
            name = label if labels.count(label) == 1 else describe(cell, distinct)
            for split, key in HISTORY_KEYS.items():
                series = [metric_history(client, rid, key) for rid in cell.run_ids]
                series = [s for s in series if s]
                if not series:
                    empty.append(f"{cell.key} ({key})")
                    continue
                epochs, values = _mean_curve(series, scale)
                curves.append(plots.Curve(task, name, split, epochs, values))
    return curves, empty


def curves_figure(analysis: Analysis, client: MlflowClient) -> FigureSet:
    """Figure 2 from the runs' per-epoch train/val accuracy (seed-averaged per configuration)."""
    out = FigureSet()
    curves, empty = figure2_curves(analysis, client)
    if empty:
        out.notes.append(
            "Figure 2: no per-epoch history for "
            + "; ".join(empty)
            + ". Trials log it as metrics epoch_train_acc and epoch_val_acc with step=epoch; "
            "re-run these trials with the current `dropattack sweep` to get it."
        )
    if curves:
        out.figures.append(
            Figure(
                "figure2.png",
                plots.figure2(curves),
                "Figure 2: training (dashed) and validation (solid) accuracy per epoch, "
                "with and without DropAttack, averaged over seeds.",
            )
        )
    return out
