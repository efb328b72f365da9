"""Selection on validation and how sure the report is, on stores with a known truth.

Sweeps of 49 DropAttack configurations and a standard baseline on one task are drawn with
numpy: each run's val and test accuracy around its configuration's true mean. Many
repetitions go through the report's own statistics (``analyze`` on run records shaped like
MLflow's, the code ``build_report`` runs). A sweep is also written through the real tracking
code (:class:`~sweeps.records.tracking.SweepRun`, :class:`~sweeps.records.tracking.TrialTracker`)
into a sqlite store and reported with ``build_report``; its ``report.json`` is checked against
numbers computed here with numpy and scipy alone, and against the in-memory path (a smaller
grid there: MLflow writes about 15 runs a second on 2 cores).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pytest
from rich.console import Console
from scipy import stats

from sweeps.execution.progress import SweepProgress
from sweeps.execution.trainable import trial_params
from sweeps.records.collect import RunRecord, SweepRuns
from sweeps.records.tracking import TAG, SweepContext, SweepRun, TrialTracker
from sweeps.report import analyze, build_report
from sweeps.report.aggregate import holm
from sweeps.report.match import matcher_for
from sweeps.specs.space import make_trial

TASK = "digits-lenet5"
SD = 0.5  # per-run standard deviation, in accuracy points
BASE = 95.0  # true accuracy of every configuration (points) unless told otherwise
REPEATS = 1000
ALPHA = 0.05


@dataclass(frozen=True)
class Design:
    """A grid of eps x p DropAttack cells and the standard baseline (cell 0), with seeds."""

    eps: tuple[float, ...]
    ps: tuple[float, ...]
    seeds: int

    @property
    def configs(self) -> int:
        return len(self.eps) * len(self.ps)

    @cached_property
    def trials(self) -> list[dict]:
        fields = [{"task": TASK, "method": "standard", "epochs": 1}]
        fields += [
            {"task": TASK, "method": "dropattack", "eps": eps, "p": p, "epochs": 1}
            for eps in self.eps
            for p in self.ps
        ]
        return [
            make_trial(f, seed, i * self.seeds + seed)
            for i, f in enumerate(fields)
            for seed in range(self.seeds)
        ]

    @cached_property
    def params(self) -> list[dict[str, str]]:
        """Each trial's params as MLflow has them (strings)."""
        return [{k: str(v) for k, v in trial_params(t).items()} for t in self.trials]

    def cell_index(self, key: str) -> int:
        return next(i for i, t in enumerate(self.trials) if t["cell"] == key) // self.seeds


GRID = Design((0.5, 1, 2, 3, 5, 7, 9), (0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.9), seeds=5)
SMALL = Design((1, 5, 9), (0.3, 0.5, 0.7), seeds=3)
CONFIGS, SEEDS, TRIALS = GRID.configs, GRID.seeds, GRID.trials


def _draw(
    rng: np.random.Generator, lift: np.ndarray, rho: float, design: Design = GRID
) -> tuple[np.ndarray, ...]:
    """(val, test) in points, shape (configs + 1, seeds): per-run correlation ``rho``."""
    shape = (design.configs + 1, design.seeds)
    z_val, z_other = rng.standard_normal(shape), rng.standard_normal(shape)
    z_test = rho * z_val + math.sqrt(1 - rho**2) * z_other
    mean = BASE + lift[:, None]
    return mean + SD * z_val, mean + SD * z_test


def _parent(params: dict[str, str] | None = None) -> RunRecord:
    return RunRecord("parent", "FINISHED", params or {"metric": "val_acc", "mode": "max"}, {}, {})


def _sweep(val: np.ndarray, test: np.ndarray, design: Design = GRID) -> SweepRuns:
    runs = [
        RunRecord(
            run_id=f"r{i}",
            status="FINISHED",
            params=design.params[i],
            metrics={"val_acc": val.flat[i] / 100, "test_acc": test.flat[i] / 100},
            tags={TAG["cell"]: t["cell"]},
        )
        for i, t in enumerate(design.trials)
    ]
    return SweepRuns("memory://", "known-truth", "0", _parent(), runs)


def _comparison(val: np.ndarray, test: np.ndarray, design: Design = GRID):
    analysis = analyze(_sweep(val, test, design), matcher_for("quickstart"))
    (comparison,) = analysis.comparisons
    return comparison


def _cell_index(key: str) -> int:
    return GRID.cell_index(key)


def test_holm_controls_the_family_wise_error_where_the_raw_p_value_does_not():
    """Everything from one distribution: any rejection is a false one."""
    rng = np.random.default_rng(11)
    raw = adjusted = baseline_selected = 0
    for _ in range(REPEATS):
        val, test = _draw(rng, np.zeros(CONFIGS + 1), rho=0.8)
        c = _comparison(val, test)
        if c.baseline is None:
            baseline_selected += 1
            continue
        assert c.comparisons == CONFIGS
        assert _cell_index(c.best.key) == int(np.argmax(val.mean(axis=1)))  # on validation
        raw += c.pvalue < ALPHA
        adjusted += c.pvalue_adjusted < ALPHA
    raw_rate, adjusted_rate = raw / REPEATS, adjusted / REPEATS
    print(f"false rejections at {ALPHA}: raw p {raw_rate:.3f}, Holm-adjusted p {adjusted_rate:.3f}")
    assert baseline_selected < REPEATS * 0.1
    assert adjusted_rate <= 0.06  # at most about 5% (400 repetitions: sd 1.1 points)
    assert raw_rate >= 0.12 and raw_rate >= 4 * max(adjusted_rate, 0.01)  # the winner's curse


def test_a_real_effect_is_selected_and_its_interval_covers_it():
    """One configuration truly +1.0 point; val and test noise independent."""
    rng = np.random.default_rng(12)
    lift = np.zeros(CONFIGS + 1)
    lift[17] = 1.0
    selected = covered = 0
    for _ in range(REPEATS):
        val, test = _draw(rng, lift, rho=0.0)
        c = _comparison(val, test)
        if _cell_index(c.best.key) != 17:
            continue
        selected += 1
        low, high = c.ci95
        covered += low <= 1.0 <= high
    coverage = covered / selected
    print(f"selected {selected / REPEATS:.3f} of repetitions, CI covers 1.0 in {coverage:.3f}")
    assert selected >= 0.9 * REPEATS
    assert 0.92 <= coverage <= 0.98  # about 95%


def test_selection_metric_and_mode_come_from_the_parent_run_with_a_fallback():
    rng = np.random.default_rng(13)
    val, test = _draw(rng, np.zeros(CONFIGS + 1), rho=0.0)
    sweep = _sweep(val, test)
    means = val.mean(axis=1)
    best = analyze(sweep, matcher_for("quickstart")).comparisons[0].best
    assert _cell_index(best.key) == int(np.argmax(means))
    sweep.parent = _parent({"metric": "val_acc", "mode": "min"})
    worst = analyze(sweep, matcher_for("quickstart")).comparisons[0].best
    assert _cell_index(worst.key) == int(np.argmin(means))
    sweep.parent = _parent({})  # a sweep that did not record its metric: val_acc, max
    a = analyze(sweep, matcher_for("quickstart"))
    assert (a.selection_metric, a.mode) == ("val_acc", "max") and a.comparisons[0].best is not None
    assert _cell_index(a.comparisons[0].best.key) == int(np.argmax(means))


@dataclass
class _Trial:
    """What the live view reads of a Tune trial."""

    trial_id: str
    status: str
    last_result: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def test_the_live_view_and_the_report_name_the_same_configuration_ties_included():
    """Cells 3 and 5 tie on mean val_acc (exactly: dyadic values); cell 9 ties too, with a
    seed fewer. The rule: more seeds, then the smaller cell key, in any finishing order."""
    val = np.full((CONFIGS + 1, SEEDS), 50.0)
    val[5] = [87.5, 62.5, 75.0, 75.0, 75.0]
    val[3] = [75.0, 75.0, 75.0, 62.5, 87.5]
    val[9] = 75.0
    sweep = _sweep(val, np.full_like(val, 90.0))
    sweep.runs = [r for r, t in zip(sweep.runs, TRIALS, strict=True) if r.run_id != "r49"]
    assert TRIALS[49]["cell"] == TRIALS[9 * SEEDS]["cell"]  # cell 9 keeps 4 of its 5 seeds
    reported = analyze(sweep, matcher_for("quickstart")).comparisons[0].best.key
    assert reported == min(TRIALS[5 * SEEDS]["cell"], TRIALS[3 * SEEDS]["cell"])
    for order in (1, -1):  # trials finishing in either order
        view = SweepProgress("s", len(sweep.runs), "val_acc", "max", 2, live=False)
        view.console = Console(file=io.StringIO())
        trials = [
            _Trial(
                r.run_id,
                "TERMINATED",
                {"val_acc": r.metrics["val_acc"], "completed": 1},
                {"trial": {"cell": r.tags[TAG["cell"]]}},
            )
            for r in sweep.runs[::order]
        ]
        for i in range(1, len(trials) + 1):
            view.update(trials[:i], force=True)
        assert view.best.trial["cell"] == reported and view.best.value == 0.75


def test_holm_adjustment_matches_its_definition():
    rng = np.random.default_rng(14)
    for m in (1, 2, 5, 49):
        p = rng.uniform(0, 0.2, m)
        order = np.argsort(p)
        want = np.empty(m)
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p[i]))
            want[i] = running
        assert holm(list(p)) == pytest.approx(list(want))
        assert all(a >= b for a, b in zip(holm(list(p)), p, strict=True))


def _write_store(uri: str, val: np.ndarray, test: np.ndarray, design: Design, root) -> str:
    """The sweep written as a real sweep writes it: parent run, then one tracker per trial."""
    sweep = SweepRun(uri, "known-truth", artifact_root=root / "artifacts")
    parent = sweep.start(
        "known-truth", "hash", "quickstart", "", "test", {"metric": "val_acc", "mode": "max"}, {}
    )
    ctx = SweepContext(uri, sweep.experiment_id, parent, "known-truth", "quickstart")
    for i, trial in enumerate(design.trials):
        tracker = TrialTracker(ctx, trial["key"], f"t{i}", {TAG["cell"]: trial["cell"]})
        assert tracker.open() == "RUNNING"
        tracker.log_params(trial_params(trial))
        tracker.log_metrics({"val_acc": val.flat[i] / 100, "test_acc": test.flat[i] / 100})
        tracker.terminate("FINISHED")
        tracker.flush_final(timeout=30)
    sweep.finish("FINISHED", {}, {})
    return parent


def test_report_json_of_a_real_store_matches_an_independent_computation(tmp_path):
    d = SMALL
    rng = np.random.default_rng(15)
    lift = np.zeros(d.configs + 1)
    lift[4] = 1.0
    val, test = _draw(rng, lift, rho=0.8, design=d)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = _write_store(uri, val, test, d, tmp_path)
    report = build_report("known-truth", tracking_uri=uri, out_dir=tmp_path / "r", formats="md")
    data = json.loads((tmp_path / "r" / "report.json").read_text())  # written with every format
    assert (data["experiment"], data["selection_metric"], data["metric"]) == (
        "known-truth",
        "val_acc",
        "test_acc",
    )
    assert data["parent_run_id"] == parent
    (task,) = data["tasks"]
    best = int(np.argmax(val.mean(axis=1)))
    assert best != 0  # the baseline is not selected (else there is nothing to test)
    trial = d.trials[best * d.seeds]
    assert task["task"] == TASK
    assert task["best"] == {
        "method": "dropattack",
        "attack": "Input",
        "eps": trial["eps"],
        "p": trial["p"],
        "k": 1,
        "groups": trial["groups"],
        "step": "paper",  # DropAttack's step is recorded with every DropAttack trial
    }
    assert task["baseline"] == dict.fromkeys(("attack", "eps", "p", "k", "groups", "step")) | {
        "method": "standard"
    }
    a, b = test[best], test[0]
    assert task["n"] == d.seeds and task["comparisons"] == d.configs
    assert task["best_selection_mean"] == pytest.approx(val[best].mean() / 100, abs=1e-12)
    assert task["best_metric_mean"] == pytest.approx(a.mean(), abs=1e-9)
    assert task["best_metric_std"] == pytest.approx(a.std(ddof=1), abs=1e-9)
    assert task["baseline_metric_mean"] == pytest.approx(b.mean(), abs=1e-9)
    assert task["difference"] == pytest.approx(a.mean() - b.mean(), abs=1e-9)
    # every cell ran the same seeds: paired t on the per-seed differences
    diff = a - b
    half = stats.t.ppf(0.975, d.seeds - 1) * diff.std(ddof=1) / math.sqrt(d.seeds)
    assert task["ci95"] == pytest.approx([diff.mean() - half, diff.mean() + half])
    t = diff.mean() / (diff.std(ddof=1) / math.sqrt(d.seeds))
    assert task["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), d.seeds - 1), rel=1e-6)
    raw = [stats.ttest_rel(test[i], b).pvalue for i in range(1, d.configs + 1)]
    rank = sorted(raw).index(raw[best - 1])
    want = max(min(1.0, (d.configs - j) * p) for j, p in enumerate(sorted(raw)[: rank + 1]))
    assert task["p_value_adjusted"] == pytest.approx(want, rel=1e-6)
    assert task["confirmed"] is None
    # the same numbers as the in-memory path the repetitions above go through
    c = _comparison(val, test, d)
    assert c.best.key == report.analysis.comparisons[0].best.key == trial["cell"]
    assert c.pvalue_adjusted == pytest.approx(task["p_value_adjusted"], rel=1e-9)
    md = report.files["md"].read_text()
    assert f"Holm-adjusted over the {d.configs} configurations" in md and "95% CI [" in md
