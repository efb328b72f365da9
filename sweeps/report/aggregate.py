"""From runs to statistics: cells across seeds, verdicts against the paper, tests, Pareto set.

A *cell* is one configuration without its seed (the contract's ``dropattack.cell`` tag). Only
FINISHED runs are aggregated; failed runs and runs missing the metric are kept aside and listed.
Measured values are converted to % (accuracy/F1 metrics) before they meet the paper's numbers.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from scipy import stats

from sweeps.report.collect import RunRecord, SweepRuns
from sweeps.report.match import Matcher
from sweeps.report.paper import PaperValue

__all__ = [
    "NO_VERDICT",
    "Analysis",
    "CellStats",
    "Comparison",
    "Verdict",
    "analyze",
    "group_cells",
    "metric_scale",
    "pareto",
    "verdict",
    "welch",
]

NO_VERDICT = "n=1, no verdict"
_COST_KEYS = ("seconds", "gpu_seconds")


def metric_scale(metric: str) -> float:
    """100 for accuracy/F1 metrics (stored as fractions, reported in %), else 1."""
    return 100.0 if metric.endswith(("_acc", "_f1")) else 1.0


@dataclass(frozen=True)
class Verdict:
    """Is the paper's value within the measured spread? ``reproduced`` is None when n == 1."""

    reproduced: bool | None
    diff: float  # paper - measured mean, in the metric's unit (%)
    ci: tuple[float, float] | None  # 95% t-interval of the mean

    @property
    def text(self) -> str:
        if self.reproduced is None:
            return NO_VERDICT
        return "reproduced" if self.reproduced else "not reproduced"


def verdict(paper_value: float, values: Sequence[float]) -> Verdict:
    """Reproduced iff |paper - mean| <= 2 std (sample std) or paper is in the 95% t-interval."""
    mean = statistics.fmean(values)
    diff = paper_value - mean
    if len(values) < 2:
        return Verdict(None, diff, None)
    std = statistics.stdev(values)
    half = stats.t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values))
    ci = (mean - half, mean + half)
    ci = (float(ci[0]), float(ci[1]))
    return Verdict(bool(abs(diff) <= 2 * std or ci[0] <= paper_value <= ci[1]), diff, ci)


@dataclass
class CellStats:
    """One configuration measured across seeds. Values are in the metric's report unit (%)."""

    key: str
    params: dict[str, str]
    variant: str
    values: list[float]
    seeds: list[str]
    run_ids: list[str]
    f1_values: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    gpu_seconds: list[float] = field(default_factory=list)
    paper: PaperValue | None = None
    paper_metric: float | None = None  # the paper number this cell's metric compares with
    paper_f1: float | None = None
    verdict: Verdict | None = None
    f1_verdict: Verdict | None = None
    is_baseline: bool = False

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1); NaN with a single run."""
        return statistics.stdev(self.values) if self.n > 1 else math.nan

    @property
    def f1_mean(self) -> float | None:
        return statistics.fmean(self.f1_values) if self.f1_values else None

    @property
    def f1_std(self) -> float | None:
        return statistics.stdev(self.f1_values) if len(self.f1_values) > 1 else None

    @property
    def mean_seconds(self) -> float | None:
        return statistics.fmean(self.seconds) if self.seconds else None

    @property
    def mean_gpu_seconds(self) -> float | None:
        return statistics.fmean(self.gpu_seconds) if self.gpu_seconds else None

    @property
    def task(self) -> str:
        return self.params.get("task", "")


def _common_params(runs: Sequence[RunRecord]) -> dict[str, str]:
    first = runs[0].params
    return {
        k: v
        for k, v in first.items()
        if k != "seed" and all(r.params.get(k) == v for r in runs[1:])
    }


def group_cells(runs: Sequence[RunRecord], metric: str) -> list[CellStats]:
    """Group runs by cell key (in first-seen order); every run must carry ``metric``."""
    scale = metric_scale(metric)
    f1_metric = metric[: -len("acc")] + "f1" if metric.endswith("_acc") else None
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[run.cell].append(run)
    cells = []
    for key, members in groups.items():
        f1 = [r.metrics[f1_metric] * scale for r in members if f1_metric in r.metrics]
        cells.append(
            CellStats(
                key=key,
                params=_common_params(members),
                variant=members[0].tags.get("dropattack.variant", ""),
                values=[r.metrics[metric] * scale for r in members],
                seeds=[r.params.get("seed", "") for r in members],
                run_ids=[r.run_id for r in members],
                f1_values=f1 if len(f1) == len(members) else [],
                seconds=[r.metrics["seconds"] for r in members if "seconds" in r.metrics],
                gpu_seconds=[
                    r.metrics["gpu_seconds"] for r in members if "gpu_seconds" in r.metrics
                ],
            )
        )
    return cells


@dataclass(frozen=True)
class Comparison:
    """The best configuration of a task against its baseline: Welch's t-test, or why not."""

    task: str
    best: CellStats
    baseline: CellStats | None
    t: float | None = None
    pvalue: float | None = None
    note: str = ""


def welch(best: CellStats, baseline: CellStats) -> tuple[float, float]:
    """Welch's unequal-variance t-test of best vs baseline values: (t, two-sided p-value)."""
    with warnings.catch_warnings():  # near-constant samples: scipy warns, the result stands
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(best.values, baseline.values, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def _affinity(a: CellStats, b: CellStats) -> int:
    shared = ("eps", "train_size", "k", "epochs", "groups", "batch_size", "lr")
    return sum(1 for k in shared if k in a.params and a.params.get(k) == b.params.get(k))


def _compare(task: str, cells: list[CellStats]) -> Comparison:
    best = max(cells, key=lambda c: (c.mean, c.n))
    baselines = [c for c in cells if c.is_baseline and c is not best]
    if best.is_baseline:
        return Comparison(task, best, None, note="the best configuration is a baseline")
    if not baselines:
        return Comparison(task, best, None, note="no baseline configuration was measured")
    base = max(baselines, key=lambda c: (_affinity(best, c), c.n))
    if best.n < 2 or base.n < 2:
        return Comparison(task, best, base, note="a t-test needs at least 2 runs on each side")
    t, p = welch(best, base)
    note = "" if math.isfinite(t) else "both sides have zero variance"
    return Comparison(task, best, base, t, p, note)


def pareto(cells: Sequence[CellStats]) -> list[CellStats]:
    """Cells no other cell beats on both cost (mean seconds, lower) and mean metric (higher)."""
    timed = [c for c in cells if c.mean_seconds is not None]
    front = []
    for c in timed:
        dominated = any(
            o.mean_seconds <= c.mean_seconds
            and o.mean >= c.mean
            and (o.mean_seconds < c.mean_seconds or o.mean > c.mean)
            for o in timed
        )
        if not dominated:
            front.append(c)
    return sorted(front, key=lambda c: c.mean_seconds)


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

    @property
    def unit(self) -> str:
        return "%" if metric_scale(self.metric) == 100.0 else ""

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(c.task for c in self.cells))

    @property
    def has_gpu(self) -> bool:
        return any(c.gpu_seconds for c in self.cells)


def analyze(sweep: SweepRuns, matcher: Matcher, metric: str = "test_acc") -> Analysis:
    """Aggregate the sweep's FINISHED runs by cell and set each against the paper."""
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
    cells = group_cells(usable, metric)
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
        comparisons=[_compare(task, group) for task, group in by_task.items()],
        fronts={task: pareto(group) for task, group in by_task.items()},
    )
