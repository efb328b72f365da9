"""The live view's counts, best-so-far and ETA, from trial records shaped like Tune's."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from rich.console import Console

from sweeps.progress import SweepProgress, format_duration


@dataclass
class T:
    """The fields of ``ray.tune.experiment.Trial`` the view reads."""

    trial_id: str
    status: str
    last_result: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def cfg(i: int) -> dict:
    return {"trial": {"cell": f"task=x;eps={i}", "seed": 0, "variant": f"v{i}"}}


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
    assert "ETA 0:20" in text and "best val_acc 0.9000 (mean of 1): task=x;eps=2 (v2)" in text


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
    assert "a task=x;eps=1;seed=0 stopped by the scheduler at epoch 1" in buf.getvalue()
    assert " b " not in buf.getvalue()
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
    assert line.startswith("[2/3] b task=x;eps=2;seed=0 val_acc=0.7000")


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
