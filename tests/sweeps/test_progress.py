"""The live view's counts, best-so-far and ETA, from trial records shaped like Tune's."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

from rich.console import Console

from sweeps.cost.forecast import format_duration
from sweeps.execution.progress import SweepProgress


@dataclass
class T:
    """The fields of ``ray.tune.experiment.Trial`` the view reads."""

    trial_id: str
    status: str
    last_result: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def cfg(i: int, seed: int = 0) -> dict:
    trial = {"task": "x", "method": "dropattack", "attack": ["Input", "Conv.1.w"], "eps": i}
    return {"trial": {**trial, "cell": f"task=x;eps={i}", "seed": seed, "variant": f"v{i}"}}


def view(total: int = 6, live: bool = False) -> tuple[SweepProgress, io.StringIO]:
    buf = io.StringIO()
    console = Console(file=buf, width=200, force_terminal=False)
    return SweepProgress("demo", total, "val_acc", "max", 2, live=live, console=console), buf


def test_counts_best_and_eta():
    p, buf = view()
    trials = [
        T("a", "TERMINATED", {"val_acc": 0.8, "trial_seconds": 10.0, "completed": 1}, cfg(1)),
        T("b", "TERMINATED", {"val_acc": 0.9, "trial_seconds": 30.0, "completed": 1}, cfg(2)),
        T("c", "TERMINATED", {"failed": 1, "error": "NonFiniteLossError: nan"}, cfg(3)),
        T("d", "ERROR", {}, cfg(4)),
        T("e", "RUNNING", {}, cfg(5)),
    ]
    p.update(trials[2:], force=True)  # what Tune shows when this run begins
    p.update(trials, force=True)
    assert p.counts == {"done": 2, "running": 1, "failed": 2, "stopped": 0, "pending": 1}
    assert p.best.value == 0.9 and p.best.trial_id == "b"
    # mean 20 s x (1 pending + 1 running) / 2 at once
    assert p.eta() == 20.0
    text = p.render().plain
    assert "2 done · 1 running · 2 failed · 1 pending · 6 total" in text
    assert "ETA 0:20" in text
    assert "best val_acc 0.9000 (mean of 1): x v2 Input+Conv.1.w eps=2" in text


def test_stopped_by_the_scheduler_or_by_an_interruption():
    p, buf = view(total=4)
    p.update([], force=True)
    trials = [
        T("a", "TERMINATED", {"val_acc": 0.5, "epoch": 1}, cfg(1)),  # ASHA stopped it
        T("b", "TERMINATED", {"val_acc": 0.6, "epoch": 1}, cfg(2)),  # the sweep was stopped
        T("c", "TERMINATED", {"val_acc": 0.7, "completed": 1}, cfg(3)),
        T("d", "PENDING", {}, cfg(4)),
    ]
    p.stopped.add("a")
    p.update(trials, force=True)
    assert p.counts == {"done": 1, "running": 0, "failed": 0, "stopped": 1, "pending": 2}
    assert p.interrupted and p.best.trial_id == "c"
    assert (
        "x v1 Input+Conv.1.w eps=1 s0  stopped by the scheduler at epoch 1  (a)" in buf.getvalue()
    )
    assert "(b)" not in buf.getvalue()
    # in a resumed run, trials that had ended before count as stopped, not pending
    again, _ = view(total=2)
    again.update(trials[:2], force=True)
    assert again.counts["stopped"] == 2 and not again.interrupted


def test_min_mode_and_non_finite_values():
    p = SweepProgress("d", 2, "val_acc", "min", 1, live=False, console=Console(file=io.StringIO()))
    p.update([T("a", "TERMINATED", {"val_acc": float("nan"), "completed": 1}, cfg(1))], force=True)
    assert p.best is None
    p.update(
        [
            T("a", "TERMINATED", {"val_acc": float("nan"), "completed": 1}, cfg(1)),
            T("b", "TERMINATED", {"val_acc": 0.3, "completed": 1}, cfg(2)),
        ],
        force=True,
    )
    assert p.best.value == 0.3 and p.eta() == 0.0


def test_a_resumed_sweep_counts_earlier_trials_without_a_line_each():
    p, buf = view(total=3)
    done = {"val_acc": 0.5, "completed": 1}
    earlier = [T("a", "TERMINATED", done, cfg(1)), T("b", "PENDING", {}, cfg(2))]
    p.update(earlier, force=True)
    assert buf.getvalue() == "demo: 1 trials done, 0 failed and 0 stopped before this run\n"
    b = T("b", "TERMINATED", {"val_acc": 0.7, "completed": 1}, cfg(2))
    p.update([earlier[0], b], force=True)
    assert p.counts["pending"] == 1  # the third trial does not exist yet: pending
    line = buf.getvalue().splitlines()[-1]
    assert line == "[2/3] x v2 Input+Conv.1.w eps=2 s0  val_acc=0.7000  (b)"


def test_failed_trial_line_names_the_error():
    p, buf = view(total=1)
    p.update([], force=True)
    p.update([T("a", "TERMINATED", {"failed": 1, "error": "ValueError: bad"}, cfg(1))], force=True)
    assert "failed: ValueError: bad" in buf.getvalue()


def test_updates_are_rate_limited_unless_forced():
    p, _ = view()
    p.update([T("a", "RUNNING")], force=True)
    p.update([T("a", "TERMINATED", {"val_acc": 1.0, "completed": 1})])  # within 0.25 s: skipped
    assert p.counts["running"] == 1
    p.update([T("a", "TERMINATED", {"val_acc": 1.0, "completed": 1})], force=True)
    assert p.counts["done"] == 1


def test_live_panel_renders_to_a_terminal():
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True)
    p = SweepProgress("demo", 2, "val_acc", "max", 2, live=True, console=console)
    with p:
        p.update([], force=True)
        p.update([T("a", "TERMINATED", {"val_acc": 0.5, "completed": 1}, cfg(1))], force=True)
    assert "1 done" in buf.getvalue() and "best val_acc 0.5000" in buf.getvalue()


def test_format_duration():
    assert format_duration(5) == "0:05"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(None) == "?" and format_duration(float("inf")) == "?"


def test_best_is_the_configuration_with_the_best_mean_over_seeds():
    p, _ = view(total=4)

    def seed(cell: int, s: int) -> dict:
        return {"trial": {"cell": f"task=x;eps={cell}", "seed": s}}

    p.update([T("a0", "TERMINATED", {"val_acc": 0.99, "completed": 1}, seed(1, 0))], force=True)
    assert p.best.value == 0.99 and p.best.n == 1
    p.update(
        [
            T("a0", "TERMINATED", {"val_acc": 0.99, "completed": 1}, seed(1, 0)),
            T("a1", "TERMINATED", {"val_acc": 0.81, "completed": 1}, seed(1, 1)),
            T("b0", "TERMINATED", {"val_acc": 0.93, "completed": 1}, seed(2, 0)),
            T("b1", "TERMINATED", {"val_acc": 0.95, "completed": 1}, seed(2, 1)),
        ],
        force=True,
    )
    # eps=1 has the single best trial (0.99) but the lower mean (0.90 < 0.94).
    assert p.best.trial["cell"] == "task=x;eps=2"
    assert abs(p.best.value - 0.94) < 1e-12 and p.best.n == 2


def test_a_multi_task_sweep_has_a_best_configuration_per_task():
    """Configurations of different tasks do not compete: the view names each task's best, as
    the report selects task by task."""
    p, _ = view(total=4)

    def trial(task: str, eps: int) -> dict:
        return {"trial": {"task": task, "method": "dropattack", "eps": eps,
                          "cell": f"task={task};eps={eps}", "seed": 0}}  # fmt: skip

    done = {"completed": 1}
    p.update(
        [
            T("a", "TERMINATED", {"val_acc": 0.70, **done}, trial("imdb-lstm", 1)),
            T("b", "TERMINATED", {"val_acc": 0.80, **done}, trial("imdb-lstm", 2)),
            T("c", "TERMINATED", {"val_acc": 0.99, **done}, trial("mnist-lenet5", 1)),
            T("d", "TERMINATED", {"val_acc": 0.98, **done}, trial("mnist-lenet5", 2)),
        ],
        force=True,
    )
    best = {task: b.trial["cell"] for task, b in p.best_by_task.items()}
    assert best == {"imdb-lstm": "task=imdb-lstm;eps=2", "mnist-lenet5": "task=mnist-lenet5;eps=1"}
    text = p.render().plain
    assert "best val_acc 0.8000 (mean of 1): imdb-lstm dropattack eps=2" in text
    assert "best val_acc 0.9900 (mean of 1): mnist-lenet5 dropattack eps=1" in text


class Clock:
    """A clock the test moves by hand (the view's ``clock``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def epoch(i: int, acc: float, trial_seconds: float, total: int = 4) -> dict:
    """What the trainable reports to Tune after epoch ``i`` (as its ``_Reporter`` does)."""
    return {
        "epoch": i,
        "epochs_total": total,
        "epoch_val_acc": acc,
        "val_acc": max(acc, 0.5),
        "epoch_seconds": 10.0,
        "trial_seconds": trial_seconds,
    }


def test_running_trials_rows_epoch_metric_elapsed_and_eta():
    clock = Clock()
    buf = io.StringIO()
    console = Console(file=buf, width=200, force_terminal=False)
    p = SweepProgress("demo", 2, "val_acc", "max", 2, live=False, console=console, clock=clock)
    a, b = T("a", "RUNNING", {}, cfg(1)), T("b", "RUNNING", {}, cfg(2, seed=1))
    p.update([a, b], force=True)
    clock.now = 12.0
    p.report(a, epoch(1, 0.25, trial_seconds=12.0))  # the epoch's value, not the best-so-far
    clock.now = 15.0
    rows = io.StringIO()
    Console(file=rows, width=200).print(p.render_live())
    lines = rows.getvalue().splitlines()
    assert lines[0].startswith("demo  0 done · 2 running")
    # 10 s per epoch x 3 epochs left, less the 3 s since the last report
    words = [" ".join(line.split()) for line in lines]
    assert words[1] == "x v1 Input+Conv.1.w eps=1 s0 epoch 1/4 val_acc 0.2500 elapsed 0:15 ETA 0:27"
    assert words[2].startswith("x v2 Input+Conv.1.w eps=2 s1 epoch 0/?")
    assert "epoch 0/?" in lines[2] and "ETA ?" in lines[2]
    assert buf.getvalue() == ""  # no epoch line within the first 30 s


def test_plain_output_gains_an_epoch_line_per_running_trial_at_most_every_30s():
    clock = Clock()
    p, buf = view(total=1)
    p.clock = clock
    a = T("a", "RUNNING", {}, cfg(1))
    p.update([a], force=True)
    for i, t in enumerate((12.0, 31.0, 40.0, 55.0, 62.0), start=1):
        clock.now = t
        p.report(a, epoch(i, 0.9, trial_seconds=t, total=5))
    lines = buf.getvalue().splitlines()
    # at 31 s (30 s after the trial showed up) and at 62 s (31 s after that line); not at
    # 12, 40 or 55 s
    assert [line.split("  ")[2] for line in lines] == ["epoch 2/5", "epoch 5/5"]
    assert lines[0].startswith("  x v1 Input+Conv.1.w eps=1 s0  epoch 2/5  val_acc 0.9000")
    p.report(a, {**epoch(5, 0.9, 70.0, total=5), "completed": 1})  # the final result: no line
    done = T("a", "TERMINATED", {"val_acc": 0.9, "completed": 1, "trial_seconds": 70.0}, cfg(1))
    p.update([done], force=True)
    assert p.running == {}
    assert (
        buf.getvalue().splitlines()[-1]
        == "[1/1] x v1 Input+Conv.1.w eps=1 s0  val_acc=0.9000 70.0s  (a)"
    )


def test_live_panel_refreshes_running_rows_and_logs_ended_trials_above():
    clock = Clock()
    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=True)
    p = SweepProgress("demo", 2, "val_acc", "max", 2, live=True, console=console, clock=clock)
    a, b = T("a", "RUNNING", {}, cfg(1)), T("b", "RUNNING", {}, cfg(2))
    with p:
        p.update([a, b], force=True)
        clock.now = 5.0
        p.report(a, epoch(1, 0.5, trial_seconds=5.0))
        p.update([a, b], force=True)
        clock.now = 7.0 * 60 + 13  # no report, no update: Live's own refresh redraws
        time.sleep(1.0)
        assert "elapsed 7:13" in buf.getvalue()  # b: never reported, timed since seen
        assert "epoch 1/4" in buf.getvalue() and "val_acc 0.5000" in buf.getvalue()
        ended = T("a", "TERMINATED", {"val_acc": 0.5, "completed": 1, "trial_seconds": 6.0}, cfg(1))
        p.update([ended, b], force=True)
        assert set(p.running) == {"b"}
    assert "[1/2] x v1 Input+Conv.1.w eps=1 s0  val_acc=0.5000 6.0s  (a)" in buf.getvalue()
    assert p.running == {}


def test_eta_from_the_plan_before_any_trial_ends_corrected_as_they_do():
    from sweeps.cost.forecast import Forecast

    now = [100.0]
    keys = [f"k{i}" for i in range(4)]
    forecast = Forecast(dict.fromkeys(keys, 10.0), keys, slots=2, startup=5.0)
    buf = io.StringIO()
    p = SweepProgress(
        "demo", 4, "val_acc", "max", 2, live=False, clock=lambda: now[0], forecast=forecast,
        console=Console(file=buf, width=200, force_terminal=False),
    )  # fmt: skip
    p.__enter__()

    def t(i: int, status: str, result: dict | None = None) -> T:
        c = cfg(i)
        c["trial"]["key"] = keys[i]
        return T(f"t{i}", status, result or {}, c)

    p.update([], force=True)
    assert p.eta() == 25.0  # start-up, then two rounds of two 10 s trials: before any result
    now[0] += 5.0
    p.update([t(0, "RUNNING"), t(1, "RUNNING")], force=True)
    now[0] += 4.0
    assert p.eta() == 16.0  # 6 s left of the running pair, then 10 s
    now[0] += 16.0  # the pair took 20 s: twice the plan
    done = {"val_acc": 0.5, "trial_seconds": 20.0, "completed": 1}
    p.update([t(0, "TERMINATED", done), t(1, "TERMINATED", done)], force=True)
    assert p.eta() == 20.0  # the last two corrected by 20 / 10
    assert "ETA 0:20" in buf.getvalue()  # the log line of an ended trial carries it
    p.__exit__(None, None, None)
