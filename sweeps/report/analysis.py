"""One sweep's analysis: its cells set against the paper, each task's selection, the effects
and a confirmation sweep's cells, all that the report shows.

A *cell* is one configuration without its seed (the contract's ``dropattack.cell`` tag). Only
FINISHED runs are aggregated; failed runs and runs missing the metric are kept aside and listed.
Each task's best configuration is *selected on validation* (:mod:`sweeps.records.selection`)
and reported on the test metric (:mod:`sweeps.report.aggregate`). A confirmation sweep
(``dropattack confirm``) measures the selected configuration again on fresh seeds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sweeps.records.collect import RunRecord, SweepRuns
from sweeps.records.selection import DEFAULT_METRIC, DEFAULT_MODE
from sweeps.report.aggregate import (
    CellStats,
    Comparison,
    Difference,
    baseline_of,
    compare,
    difference,
    group_cells,
    holm,
    metric_scale,
    pareto,
    verdict,
)
from sweeps.report.effects import EffectSet
from sweeps.report.match import Matcher, dataset_of, fit_datasets

__all__ = ["Analysis", "Confirmation", "Confirmed", "analyze", "confirm"]


@dataclass
class Analysis:
    """Everything the report shows, computed from one sweep's runs."""

    sweep: SweepRuns
    matcher: Matcher
    metric: str
    cells: list[CellStats]
    failed: list[RunRecord]
    missing_metric: list[RunRecord]
    comparisons: list[Comparison]
    fronts: dict[str, list[CellStats]]
    selection_metric: str = DEFAULT_METRIC
    mode: str = DEFAULT_MODE
    confirmation: Confirmation | None = None
    effects: EffectSet | None = None  # set from sweeps.report.effects.measure
    warnings: list[str] = field(default_factory=list)

    @property
    def unit(self) -> str:
        return "%" if metric_scale(self.metric) == 100.0 else ""

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(c.task for c in self.cells))

    @property
    def has_gpu(self) -> bool:
        return any(c.gpu_seconds for c in self.cells)


def analyze(
    sweep: SweepRuns,
    matcher: Matcher,
    metric: str = "test_acc",
    selection_metric: str | None = None,
    mode: str | None = None,
) -> Analysis:
    """Aggregate the sweep's FINISHED runs by cell, set each against the paper, and select
    each task's best configuration on ``selection_metric`` (default: the sweep's own, as its
    parent run records it)."""
    selection_metric = selection_metric or sweep.selection_metric
    mode = mode or sweep.selection_mode
    finished = sweep.finished
    usable = [r for r in finished if metric in r.metrics]
    missing = [r for r in finished if metric not in r.metrics]
    if not usable:
        have = sorted({k for r in finished for k in r.metrics})
        raise ValueError(
            f"none of the {len(finished)} FINISHED runs of sweep {sweep.experiment!r} has the "
            f"metric {metric!r}; metrics they have: {', '.join(have) or 'none'} "
            "(choose one with --metric)."
        )
    matcher, warning = fit_datasets(matcher, (dataset_of(r.params) for r in usable))
    cells = group_cells(usable, metric, selection_metric)
    is_f1 = metric.endswith("_f1")
    for cell in cells:
        cell.is_baseline = matcher.is_baseline(cell)
        cell.paper = matcher.paper_value(cell)
        if cell.paper is None or metric_scale(metric) != 100.0:
            continue
        cell.paper_metric = cell.paper.f1 if is_f1 else cell.paper.acc
        if cell.paper_metric is not None:
            cell.verdict = verdict(cell.paper_metric, cell.values)
        if not is_f1 and cell.paper.f1 is not None and cell.f1_values:
            cell.paper_f1 = cell.paper.f1
            cell.f1_verdict = verdict(cell.paper.f1, cell.f1_values)
    by_task: dict[str, list[CellStats]] = defaultdict(list)
    for cell in cells:
        by_task[cell.task].append(cell)
    return Analysis(
        sweep=sweep,
        matcher=matcher,
        metric=metric,
        cells=cells,
        failed=sweep.failed,
        missing_metric=missing,
        comparisons=[
            compare(task, group, selection_metric, mode) for task, group in by_task.items()
        ],
        fronts={task: pareto(group) for task, group in by_task.items()},
        selection_metric=selection_metric,
        mode=mode,
        warnings=[warning] if warning else [],
    )


@dataclass(frozen=True)
class Confirmed:
    """One configuration and its baseline measured again on fresh seeds."""

    cell: CellStats
    baseline: CellStats
    diff: Difference
    pvalue_adjusted: float | None  # Holm over the confirmed configurations of the task


@dataclass
class Confirmation:
    """A confirmation sweep of the selected configurations (``dropattack confirm``)."""

    sweep: SweepRuns
    cells: list[CellStats]
    by_task: dict[str, list[Confirmed]]  # every confirmed configuration, selected one first
    selected: dict[str, Confirmed | None]  # the task's selected configuration, if confirmed

    @property
    def seeds(self) -> set[str]:
        return {s for c in self.cells for s in c.seeds}


def confirm(analysis: Analysis, sweep: SweepRuns) -> Confirmation:
    """Set each configuration the confirmation sweep ran against the same baseline as in
    ``analysis``, on the confirmation's FINISHED runs only (same metric)."""
    usable = [r for r in sweep.finished if analysis.metric in r.metrics]
    cells = {c.key: c for c in group_cells(usable, analysis.metric, analysis.selection_metric)}
    original = {c.key: c for c in analysis.cells}
    for key, cell in cells.items():
        cell.is_baseline = key in original and original[key].is_baseline
    by_task: dict[str, list[Confirmed]] = {}
    chosen: dict[str, Confirmed | None] = {}
    for comparison in analysis.comparisons:
        group = [c for c in analysis.cells if c.task == comparison.task]
        pairs = []
        for key, cell in cells.items():
            first = original.get(key)
            if first is None or first.task != comparison.task or first.is_baseline:
                continue
            base = baseline_of(first, group)
            if base is not None and base.key in cells:
                pairs.append((cell, cells[base.key], difference(cell, cells[base.key])))
        pairs.sort(key=lambda r: (r[0].key != comparison.best.key, r[0].key))
        adjusted = holm([1.0 if d.pvalue is None else d.pvalue for _, _, d in pairs])
        rows = [
            Confirmed(cell, base, d, a if d.pvalue is not None else None)
            for (cell, base, d), a in zip(pairs, adjusted, strict=True)
        ]
        by_task[comparison.task] = rows
        chosen[comparison.task] = next((r for r in rows if r.cell.key == comparison.best.key), None)
    return Confirmation(sweep, list(cells.values()), by_task, chosen)
