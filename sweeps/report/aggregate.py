"""From runs to statistics: cells across seeds, verdicts against the paper, tests, Pareto set.

A *cell* is one configuration without its seed (the contract's ``dropattack.cell`` tag). Only
FINISHED runs are aggregated; failed runs and runs missing the metric are kept aside and listed.
Measured values are converted to % (accuracy/F1 metrics) before they meet the paper's numbers.

Each task's best configuration is *selected on validation*: the highest mean over seeds of the
sweep's selection metric (:mod:`sweeps.selection`, the rule the sweep's live view uses), and
reported on the test metric. Its difference to the baseline comes with a Welch 95% interval,
the raw two-sided p-value and the Holm-adjusted one over every configuration of the task that
was compared with a baseline (any of them could have been selected). A confirmation sweep
(``dropattack confirm``) measures the selected configuration again on fresh seeds.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scipy import special, stats

from sweeps.report.collect import RunRecord, SweepRuns
from sweeps.report.match import Matcher
from sweeps.report.paper import PaperValue
from sweeps.selection import DEFAULT_METRIC, DEFAULT_MODE, exact_mean, select

if TYPE_CHECKING:
    from sweeps.report.effects import EffectSet

__all__ = [
    "DIFFERENT_SCALE",
    "NO_VERDICT",
    "Analysis",
    "CellStats",
    "Comparison",
    "Confirmation",
    "Confirmed",
    "Difference",
    "Verdict",
    "analyze",
    "baseline_of",
    "confirm",
    "difference",
    "group_cells",
    "holm",
    "metric_scale",
    "pareto",
    "selected",
    "verdict",
    "welch",
    "welch_stats",
]

NO_VERDICT = "n=1, no verdict"
#: The absolute verdict of a row trained on other data than the paper's, instead of
#: "not reproduced": its absolute number says nothing about the paper's (its effect does).
DIFFERENT_SCALE = "different scale"
_ZERO_VARIANCE = "both sides have zero variance"


def metric_scale(metric: str) -> float:
    """100 for accuracy/F1 metrics (stored as fractions, reported in %), else 1."""
    return 100.0 if metric.endswith(("_acc", "_f1")) else 1.0


@dataclass(frozen=True)
class Verdict:
    """Is the paper's value within the measured spread? ``reproduced`` is None when n == 1."""

    reproduced: bool | None
    diff: float  # paper - measured mean, in the metric's unit (%)
    ci: tuple[float, float] | None  # 95% t-interval of the mean
    different_scale: bool = False  # trained on other data than the paper (sweeps.report.effects)

    @property
    def text(self) -> str:
        if self.reproduced is None:
            return NO_VERDICT
        if self.reproduced:
            return "reproduced"
        return DIFFERENT_SCALE if self.different_scale else "not reproduced"


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
    name: str = ""  # the readable name (sweeps.names.config_name), as the console showed it
    f1_values: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    gpu_seconds: list[float] = field(default_factory=list)
    paper: PaperValue | None = None
    paper_metric: float | None = None  # the paper number this cell's metric compares with
    paper_f1: float | None = None
    verdict: Verdict | None = None
    f1_verdict: Verdict | None = None
    is_baseline: bool = False
    selection_values: list[float] = field(default_factory=list)  # raw, as logged

    def __post_init__(self) -> None:
        self.name = self.name or self.key

    @property
    def selection_mean(self) -> float | None:
        """Mean over seeds of the selection metric (as logged, not in %); None without it."""
        return exact_mean(self.selection_values) if self.selection_values else None

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
    def ci95(self) -> tuple[float, float] | None:
        """Student's t 95% interval of the mean over seeds (n >= 2, as Welch's difference
        intervals are); None for a single run."""
        if self.n < 2:
            return None
        half = stats.t.ppf(0.975, self.n - 1) * self.std / math.sqrt(self.n)
        return (self.mean - float(half), self.mean + float(half))

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


def train_seconds(run: RunRecord) -> float | None:
    """The run's training time, the report's cost: ``train_seconds`` (the epochs' training
    and validation, without set-up), else ``seconds`` (all of fit, for runs logged before
    the split was recorded)."""
    for key in ("train_seconds", "seconds"):
        if key in run.metrics:
            return run.metrics[key]
    return None


def _common_params(runs: Sequence[RunRecord]) -> dict[str, str]:
    first = runs[0].params
    return {
        k: v
        for k, v in first.items()
        if k != "seed" and all(r.params.get(k) == v for r in runs[1:])
    }


def group_cells(
    runs: Sequence[RunRecord], metric: str, selection_metric: str | None = None
) -> list[CellStats]:
    """Group runs by cell key (in first-seen order); every run must carry ``metric``.

    ``selection_metric`` values are kept as logged (not converted to %), for the selection.
    """
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
                name=members[0].name,
                values=[r.metrics[metric] * scale for r in members],
                selection_values=[
                    r.metrics[selection_metric] for r in members if selection_metric in r.metrics
                ],
                seeds=[r.params.get("seed", "") for r in members],
                run_ids=[r.run_id for r in members],
                f1_values=f1 if len(f1) == len(members) else [],
                seconds=[s for s in map(train_seconds, members) if s is not None],
                gpu_seconds=[
                    r.metrics["gpu_seconds"] for r in members if "gpu_seconds" in r.metrics
                ],
            )
        )
    return cells


@dataclass(frozen=True)
class Difference:
    """One configuration minus its baseline, in the report unit, with Welch's test."""

    value: float
    ci95: tuple[float, float] | None = None  # Welch 95% interval of the difference
    t: float | None = None
    pvalue: float | None = None  # two-sided, unadjusted
    note: str = ""


def welch_stats(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, float]:
    """Welch's test of mean(a) - mean(b): (t, two-sided p, df, standard error).

    The formulas of ``scipy.stats.ttest_ind(equal_var=False)``, with scipy's special
    functions directly: the report runs one per configuration, the tests thousands.
    """
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    va = math.fsum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = math.fsum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    d = ma - mb
    if se == 0.0:
        t = math.copysign(math.inf, d) if d else math.nan
        return t, (0.0 if d else math.nan), math.nan, 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = d / se
    return t, float(2 * special.stdtr(df, -abs(t))), df, se


def difference(cell: CellStats, baseline: CellStats) -> Difference:
    """``cell.mean - baseline.mean`` with Welch's t-test and its 95% confidence interval."""
    value = cell.mean - baseline.mean
    if cell.n < 2 or baseline.n < 2:
        return Difference(value, note="a t-test needs at least 2 runs on each side")
    t, p, df, se = welch_stats(cell.values, baseline.values)
    if not math.isfinite(t):
        return Difference(value, None, t, p if math.isfinite(p) else None, _ZERO_VARIANCE)
    half = float(special.stdtrit(df, 0.975)) * se
    return Difference(value, (value - half, value + half), t, p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` (same order); controls the family-wise
    error rate under any dependence between the tests."""
    m = len(pvalues)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """A task's configuration selected on validation, against its baseline, on the test metric.

    ``pvalue`` is Welch's two-sided p-value as if the selected configuration had been the only
    one; ``pvalue_adjusted`` is Holm's over the ``comparisons`` configurations of the task
    compared with a baseline. ``test_best`` is the cell with the highest test mean (reading
    the best off the test set would pick it).
    """

    task: str
    best: CellStats
    baseline: CellStats | None
    t: float | None = None
    pvalue: float | None = None
    note: str = ""
    selection_metric: str = DEFAULT_METRIC
    mode: str = DEFAULT_MODE
    diff: Difference | None = None
    pvalue_adjusted: float | None = None
    comparisons: int = 0
    test_best: CellStats | None = None

    @property
    def difference(self) -> float | None:
        return self.diff.value if self.diff else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        return self.diff.ci95 if self.diff else None


def welch(best: CellStats, baseline: CellStats) -> tuple[float, float]:
    """Welch's unequal-variance t-test of best vs baseline values: (t, two-sided p-value)."""
    t, p, _, _ = welch_stats(best.values, baseline.values)
    return t, p


def _affinity(a: CellStats, b: CellStats) -> int:
    shared = ("eps", "train_size", "k", "epochs", "groups", "batch_size", "lr")
    return sum(1 for k in shared if k in a.params and a.params.get(k) == b.params.get(k))


def baseline_of(cell: CellStats, cells: Sequence[CellStats]) -> CellStats | None:
    """The baseline ``cell`` is tested against: the most alike, then the most seeds, then the
    smallest cell key (not the order MLflow returned the runs in, which ties on start time)."""
    baselines = [c for c in cells if c.is_baseline and c is not cell]
    return min(baselines, key=lambda c: (-_affinity(cell, c), -c.n, c.key), default=None)


def selected(cells: Sequence[CellStats], mode: str = DEFAULT_MODE) -> CellStats | None:
    """The cell with the best mean selection metric (:func:`sweeps.selection.select`)."""
    key = select(((c.key, c.selection_values) for c in cells), mode)
    return next((c for c in cells if c.key == key), None)


def _family(cells: Sequence[CellStats]) -> dict[str, float]:
    """Holm-adjusted p of every non-baseline cell against its baseline (a missing test: 1)."""
    raw: dict[str, float] = {}
    for cell in cells:
        base = None if cell.is_baseline else baseline_of(cell, cells)
        if base is not None:
            p = difference(cell, base).pvalue
            raw[cell.key] = 1.0 if p is None else p
    return dict(zip(raw, holm(list(raw.values())), strict=True))


def _compare(task: str, cells: list[CellStats], selection_metric: str, mode: str) -> Comparison:
    test_best = max(cells, key=lambda c: (c.mean, c.n))
    best = selected(cells, mode)
    why = ""
    if best is None:
        best = test_best
        why = f"no run has {selection_metric}: selected on the test metric (biased)"
    same = {"selection_metric": selection_metric, "mode": mode, "test_best": test_best}
    family = _family(cells)
    same["comparisons"] = len(family)
    if best.is_baseline:
        note = "; ".join(filter(None, [why, "the best configuration is a baseline"]))
        return Comparison(task, best, None, note=note, **same)
    base = baseline_of(best, cells)
    if base is None:
        note = "; ".join(filter(None, [why, "no baseline configuration was measured"]))
        return Comparison(task, best, None, note=note, **same)
    diff = difference(best, base)
    note = "; ".join(filter(None, [why, diff.note]))
    adjusted = family.get(best.key) if diff.pvalue is not None else None
    return Comparison(
        task, best, base, diff.t, diff.pvalue, note, diff=diff, pvalue_adjusted=adjusted, **same
    )


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
    selection_metric: str = DEFAULT_METRIC
    mode: str = DEFAULT_MODE
    confirmation: Confirmation | None = None
    effects: EffectSet | None = None  # set by sweeps.report.effects.measure

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
            _compare(task, group, selection_metric, mode) for task, group in by_task.items()
        ],
        fronts={task: pareto(group) for task, group in by_task.items()},
        selection_metric=selection_metric,
        mode=mode,
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
