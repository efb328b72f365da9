"""From runs to statistics: cells across seeds, verdicts against the paper, tests, Pareto set.

:mod:`sweeps.report.analysis` puts these together for one sweep; this module knows nothing of
the report that reads them.

A *cell* is one configuration without its seed (the contract's ``dropattack.cell`` tag). Only
FINISHED runs are aggregated; failed runs and runs missing the metric are kept aside and listed.
Measured values are converted to % (accuracy/F1 metrics) before they meet the paper's numbers.

Each task's best configuration is *selected on validation*: the highest mean over seeds of the
sweep's selection metric (:mod:`sweeps.records.selection`, the rule the sweep's live view uses), and
reported on the test metric. Its difference to the baseline comes with a 95% interval (paired
t on the per-seed differences when the arms share at least three seeds, else Welch's), the
raw two-sided p-value and the Holm-adjusted one over every configuration of the task that was
compared with a baseline (any of them could have been selected). A confirmation sweep
(``dropattack confirm``) measures the selected configuration again on fresh seeds.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from scipy import special, stats

from sweeps.records.collect import RunRecord
from sweeps.records.selection import DEFAULT_METRIC, DEFAULT_MODE, exact_mean, select
from sweeps.report.paper import PaperValue

__all__ = [
    "DIFFERENT_SCALE",
    "MIN_PAIRS",
    "NO_VERDICT",
    "CellStats",
    "Comparison",
    "Difference",
    "Verdict",
    "baseline_of",
    "compare",
    "difference",
    "group_cells",
    "holm",
    "metric_scale",
    "paired_stats",
    "pairs_of",
    "pareto",
    "selected",
    "verdict",
    "welch",
    "welch_stats",
]

NO_VERDICT = "n=1, no verdict"
#: A row and its baseline sharing at least this many seeds are tested on their per-seed
#: differences (paired t); with fewer, Welch's test of the two arms.
MIN_PAIRS = 3
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
    name: str = ""  # the readable name (sweeps.specs.names.config_name), as the console showed it
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
    bounds: tuple[float, float] | None = None  # the metric's range (accuracy: 0 to 100 %)

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
        intervals are), clipped to the metric's :attr:`bounds`; None for a single run."""
        if self.n < 2:
            return None
        half = stats.t.ppf(0.975, self.n - 1) * self.std / math.sqrt(self.n)
        lo, hi = self.mean - float(half), self.mean + float(half)
        if self.bounds is not None:  # clipped: no accuracy above 100 % or below 0
            lo, hi = max(lo, self.bounds[0]), min(hi, self.bounds[1])
        return (lo, hi)

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
                bounds=(0.0, scale) if metric.endswith(("_acc", "_f1")) else None,
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
    """One configuration minus its baseline, in the report unit, with the test used.

    ``test``: ``paired`` (Student's t on the per-seed differences of the ``n_pairs`` seeds
    both arms ran; ``value`` is their mean) or ``welch`` (the two arms as independent
    samples). ``correlation``: Pearson's r between the arms over the shared seeds (None with
    fewer than :data:`MIN_PAIRS` of them or a constant arm).
    """

    value: float
    ci95: tuple[float, float] | None = None  # 95% interval of the difference
    t: float | None = None
    pvalue: float | None = None  # two-sided, unadjusted
    note: str = ""
    test: str = "welch"
    n_pairs: int = 0
    correlation: float | None = None
    df: float | None = None
    se: float | None = None


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


def paired_stats(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, float]:
    """Student's t of the mean of ``a[i] - b[i]`` (``scipy.stats.ttest_rel``): (t, two-sided
    p, df, standard error)."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(d)
    se = math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d))
    df = float(len(d) - 1)
    if se == 0.0:
        t = math.copysign(math.inf, mean) if mean else math.nan
        return t, (0.0 if mean else math.nan), df, 0.0
    t = mean / se
    return t, float(2 * special.stdtr(df, -abs(t))), df, se


def pairs_of(cell: CellStats, baseline: CellStats) -> tuple[list[float], list[float]]:
    """The two arms' values on the seeds both ran once each, in the baseline's seed order."""
    mine = {s: v for s, v in zip(cell.seeds, cell.values, strict=True) if cell.seeds.count(s) == 1}
    a, b = [], []
    for s, v in zip(baseline.seeds, baseline.values, strict=True):
        if s and s in mine and baseline.seeds.count(s) == 1:
            a.append(mine[s])
            b.append(v)
    return a, b


def _correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 2 or statistics.pstdev(a) == 0 or statistics.pstdev(b) == 0:
        return None
    return float(statistics.correlation(a, b))


def difference(cell: CellStats, baseline: CellStats, shift: float = 0.0) -> Difference:
    """``cell`` minus ``baseline`` with its test and 95% confidence interval.

    Paired t on the per-seed differences when the arms share at least :data:`MIN_PAIRS`
    seeds, else Welch's test of the means. ``shift``: the difference the p-value tests
    (0: no effect; the paper's effect for :mod:`sweeps.report.effects`).
    """
    a, b = pairs_of(cell, baseline)
    if len(a) >= MIN_PAIRS:
        value = statistics.fmean(a) - statistics.fmean(b)
        t, p, df, se = paired_stats([x - shift for x in a], b)
        same = {"test": "paired", "n_pairs": len(a), "correlation": _correlation(a, b)}
        if not math.isfinite(t):
            note = "the per-seed differences have zero variance"
            return Difference(value, None, t, p if math.isfinite(p) else None, note, **same)
        half = float(special.stdtrit(df, 0.975)) * se
        return Difference(value, (value - half, value + half), t, p, df=df, se=se, **same)
    value = cell.mean - baseline.mean
    if cell.n < 2 or baseline.n < 2:
        return Difference(value, note="a t-test needs at least 2 runs on each side", n_pairs=len(a))
    t, p, df, se = welch_stats([v - shift for v in cell.values], baseline.values)
    same = {"n_pairs": len(a)}
    if not math.isfinite(t):
        return Difference(value, None, t, p if math.isfinite(p) else None, _ZERO_VARIANCE, **same)
    half = float(special.stdtrit(df, 0.975)) * se
    return Difference(value, (value - half, value + half), t, p, df=df, se=se, **same)


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

    ``pvalue`` is the two-sided p-value of its test (``diff.test``: paired or Welch) as if the
    selected configuration had been the only one; ``pvalue_adjusted`` is Holm's over the
    ``comparisons`` configurations of the task compared with a baseline. ``test_best`` is the
    cell with the highest test mean (reading the best off the test set would pick it).
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
    """The cell with the best mean selection metric (:func:`sweeps.records.selection.select`)."""
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


def compare(task: str, cells: list[CellStats], selection_metric: str, mode: str) -> Comparison:
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
