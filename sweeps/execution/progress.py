"""The sweep's live view: done, running, failed, pending, best so far and ETA.

:class:`SweepProgress` counts from Ray Tune's own trial list (so a resumed sweep starts from
the right numbers) and renders with ``rich``. On a terminal: a live panel with the status
line and one row per running trial (its name, ``epoch i/n``, the last epoch's selection
metric, elapsed time and its own ETA, redrawn 4 times a second from the results trials
report each epoch); ended trials leave a log line above it. Otherwise (logs, CI): one line
per ended trial, and an ``epoch i/n`` line per running trial at most every 30 s.
:class:`ProgressCallback` is the Tune callback that feeds it; Tune pickles callbacks into
the experiment for ``--resume``, and a terminal cannot be pickled, so the callback reaches
the view through :func:`attach`'s slot instead of holding it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ray.tune import Callback
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sweeps.cost.forecast import Forecast, format_duration
from sweeps.records.selection import exact_mean, select
from sweeps.specs.names import config_name, trial_name

__all__ = [
    "Best",
    "Running",
    "ProgressCallback",
    "SweepProgress",
    "attach",
    "display_name",
    "record_stop",
    "trial_state",
]

#: Keys the trainable puts in a trial's last result (see :mod:`sweeps.execution.trainable`).
COMPLETED, FAILED = "completed", "failed"


def trial_state(trial: Any, stopped: set[str], earlier: set[str]) -> str:
    """done, failed, stopped (by the scheduler), running or pending (includes interrupted).

    A trial Tune ended without its final result was stopped by the scheduler (ASHA) if the
    scheduler says so or it had ended before this run; otherwise the sweep was interrupted
    and a resume continues it.
    """
    result = trial.last_result or {}
    if trial.status == "ERROR" or result.get(FAILED):
        return "failed"
    if trial.status == "TERMINATED":
        if result.get(COMPLETED):
            return "done"
        return "stopped" if trial.trial_id in stopped | earlier else "pending"
    return "running" if trial.status == "RUNNING" else "pending"


@dataclass
class Best:
    """The best configuration so far: its mean metric over the seeds finished so far."""

    value: float
    trial: dict[str, Any]
    trial_id: str
    n: int = 1


@dataclass
class Running:
    """What the view knows of a running trial, from the results it reported each epoch."""

    name: str
    seen: float  # when the view first saw it running (monotonic)
    epochs: int | None = None
    epoch: int = 0
    value: float | None = None  # the last epoch's selection metric
    reported: float | None = None  # when its last result came (monotonic)
    trial_seconds: float | None = None  # the trial's own clock at that result
    epoch_seconds: list[float] = field(default_factory=list)
    line_at: float = 0.0  # when its last ``epoch i/n`` log line was printed
    key: str | None = None  # the sweep's trial key (what the plan's forecast knows it by)

    def elapsed(self, now: float) -> float:
        if self.trial_seconds is None or self.reported is None:
            return now - self.seen
        return self.trial_seconds + now - self.reported

    def eta(self, now: float) -> float | None:
        """Seconds left: its mean epoch time x epochs left, less the time since the last."""
        if not self.epochs or not self.epoch_seconds or self.reported is None:
            return None
        mean = sum(self.epoch_seconds) / len(self.epoch_seconds)
        return max(0.0, mean * (self.epochs - self.epoch) - (now - self.reported))


def display_name(trial: Any) -> str:
    """A Tune trial's readable name (:func:`sweeps.specs.names.trial_name`), else its id."""
    cfg = (trial.config or {}).get("trial") or {}
    return trial_name(cfg) if "task" in cfg and "seed" in cfg else str(trial.trial_id)


class SweepProgress:
    """Counts of a sweep's trials by state, the best so far and an ETA.

    Args:
        name: the sweep's name (shown in the header).
        total: trials the sweep will run (grid size, or TPE's num_samples).
        metric, mode: what "best" means.
        concurrency: trials that run at once (for the ETA).
        live: a live panel (default: when stderr is a terminal) with one row per running
            trial; without it, plain lines: one per ended trial, and an ``epoch i/n`` line
            per running trial at most every ``line_interval`` seconds.
        clock: seconds on a monotonic clock (tests pass their own).
        forecast: the plan's predictions (:class:`sweeps.cost.forecast.Forecast`): an ETA from
            the first second, corrected as trials end; without it the ETA waits for the
            first trial to end.
    """

    def __init__(
        self,
        name: str,
        total: int,
        metric: str,
        mode: str,
        concurrency: int,
        live: bool | None = None,
        console: Console | None = None,
        line_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        forecast: Forecast | None = None,
    ) -> None:
        self.name = name
        self.forecast = forecast
        self._ended: dict[str, float] = {}  # trial key -> its seconds (the forecast's input)
        self.total = total
        self.metric = metric
        self.mode = mode
        self.concurrency = max(1, concurrency)
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self.line_interval = line_interval
        self.clock = clock
        self.counts = {"done": 0, "running": 0, "failed": 0, "stopped": 0, "pending": total}
        self.stopped: set[str] = set()  # trials the scheduler stopped in this run
        self.earlier: set[str] | None = None  # trials already ended when this run began
        self.best: Best | None = None
        self.best_by_task: dict[str, Best] = {}  # what the report selects, task by task
        self.running: dict[str, Running] = {}
        self._by_cell: dict[str, tuple[list[float], dict[str, Any], str]] = {}
        self.started = clock()
        self.durations: list[float] = []
        self._seen: set[str] = set()
        self._live: Live | None = None
        self._lock = threading.Lock()
        self._last_render = -math.inf
        self._quiet = True  # the first count (a resumed sweep's finished trials) prints no lines

    # -- lifecycle

    def __enter__(self) -> SweepProgress:
        self.started = self.clock()
        if self.live:
            # ``self`` renders afresh on each of Live's refreshes (4 a second): elapsed times
            # and ETAs move between the trials' epoch reports.
            self._live = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            with self._lock:
                self.running.clear()
            self._live.refresh()
            self._live.__exit__(*exc)
            self._live = None

    def __rich__(self) -> Group:
        return self.render_live()

    # -- updates

    def update(self, trials: Sequence[Any], force: bool = False) -> None:
        """Recount from Tune's trial list; at most 4 recounts a second unless ``force``."""
        now = self.clock()
        if not force and now - self._last_render < 0.25:
            return
        self._last_render = now
        counts = dict.fromkeys(self.counts, 0)
        if self.earlier is None:
            self.earlier = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        running: set[str] = set()
        for t in trials:
            state = trial_state(t, self.stopped, self.earlier)
            counts[state] += 1
            if state == "running":
                running.add(t.trial_id)
                self._running(t, now)
            if state in ("done", "failed", "stopped") and t.trial_id not in self._seen:
                self._seen.add(t.trial_id)
                self._finished(t, state)
        with self._lock:
            for trial_id in set(self.running) - running:
                del self.running[trial_id]
        counts["pending"] += max(0, self.total - len(trials))
        self.counts = counts
        if self._quiet and counts["done"] + counts["failed"]:
            self._print(
                f"{self.name}: {counts['done']} trials done, {counts['failed']} failed and "
                f"{counts['stopped']} stopped before this run"
            )
        self._quiet = False
        if self._live is not None:
            self._live.refresh()

    def report(self, trial: Any, result: dict[str, Any]) -> None:
        """A trial's epoch result (Tune's ``on_trial_result``): its row, and its log line
        when ``line_interval`` seconds have passed since its start or its last line."""
        now = self.clock()
        if result.get(COMPLETED) or result.get(FAILED) or "epoch" not in result:
            return
        row = self._running(trial, now)
        with self._lock:
            row.epoch = int(result["epoch"])
            if isinstance(result.get("epochs_total"), int):
                row.epochs = result["epochs_total"]
            value = result.get(f"epoch_{self.metric}", result.get(self.metric))
            row.value = float(value) if isinstance(value, (int, float)) else None
            if isinstance(result.get("epoch_seconds"), (int, float)):
                row.epoch_seconds.append(float(result["epoch_seconds"]))
            if isinstance(result.get("trial_seconds"), (int, float)):
                row.trial_seconds = float(result["trial_seconds"])
            row.reported = now
        if not self.live and now - row.line_at >= self.line_interval:
            row.line_at = now
            self._print(f"  {row.name}  {self._row_text(row, now)}")

    def _running(self, trial: Any, now: float) -> Running:
        with self._lock:
            row = self.running.get(trial.trial_id)
            if row is None:
                cfg = (trial.config or {}).get("trial") or {}
                row = Running(
                    display_name(trial), now, cfg.get("epochs"), line_at=now, key=cfg.get("key")
                )
                self.running[trial.trial_id] = row
            return row

    def replay(self, trials: Sequence[Any]) -> None:
        """Count trials that no callback brought here, once each, as just ended.

        Through Ray Client, Tune runs the experiment on the cluster and its callbacks never
        reach this process; the driver replays the results it gets back. A trial that ended
        without its final result was stopped by the scheduler (the sweep itself ended).
        """
        self.earlier = set()
        self._quiet = False
        for t in trials:
            if t.status == "TERMINATED" and not (t.last_result or {}).get(COMPLETED):
                self.stopped.add(t.trial_id)
        self.update(trials, force=True)

    def _print(self, line: str) -> None:
        """A log line (above the live panel on a terminal)."""
        self.console.print(line, highlight=False, soft_wrap=True, markup=False)

    def _finished(self, trial: Any, state: str) -> None:
        result = trial.last_result or {}
        seconds = result.get("trial_seconds")
        if isinstance(seconds, (int, float)) and not result.get("skipped"):
            self.durations.append(float(seconds))
        value = result.get(self.metric)
        cfg = (trial.config or {}).get("trial", {})
        if cfg.get("key"):
            # only a whole trial corrects the forecast: not one that failed or was stopped
            # part-way, nor one a resumed sweep skipped (it ran nothing)
            whole = state == "done" and not result.get("skipped")
            measured = whole and isinstance(seconds, (int, float))
            self._ended[cfg["key"]] = float(seconds) if measured else 0.0
        if state == "done" and isinstance(value, (int, float)) and math.isfinite(value):
            self._update_best(float(value), cfg, trial.trial_id)
        if not self._quiet:
            self._print(self._line(trial, state, value, _took(result)))

    def _update_best(self, value: float, cfg: dict[str, Any], trial_id: str) -> None:
        """Rank configurations (cells) by their mean over seeds, not single lucky trials."""
        entry = self._by_cell.setdefault(cfg.get("cell", trial_id), ([], cfg, trial_id))
        entry[0].append(value)
        # the report's rule (sweeps.records.selection): the same configuration, ties included
        cell = select(((k, e[0]) for k, e in self._by_cell.items()), self.mode)
        values, best_cfg, best_id = self._by_cell[cell]
        self.best = Best(exact_mean(values), best_cfg, best_id, len(values))
        task = cfg.get("task", "")
        same = ((k, e[0]) for k, e in self._by_cell.items() if e[1].get("task", "") == task)
        values, best_cfg, best_id = self._by_cell[select(same, self.mode)]
        self.best_by_task[task] = Best(exact_mean(values), best_cfg, best_id, len(values))

    def _line(self, trial: Any, state: str, value: Any, took: str) -> str:
        finished = len(self._seen)
        what = f"{self.metric}={value:.4f}" if isinstance(value, (int, float)) else ""
        if state == "stopped":
            what = f"stopped by the scheduler at epoch {result_epoch(trial)}"
        elif state == "failed":
            err = (trial.last_result or {}).get("error") or getattr(trial, "error_file", "")
            what = f"failed: {err}" if err else "failed"
        eta = f"  ETA {format_duration(self.eta())}" if self.forecast is not None else ""
        return (
            f"[{min(finished, self.total)}/{self.total}] {display_name(trial)}  {what}{took}"
            f"  ({trial.trial_id}){eta}"
        )

    # -- rendering

    @property
    def interrupted(self) -> bool:
        """Trials are left to run (the sweep was stopped before its end)."""
        return self.counts["pending"] + self.counts["running"] > 0

    def eta(self) -> float | None:
        """Seconds left: the forecast's list schedule of the trials left (corrected by the
        ended trials' actual over predicted time), else mean trial time x trials left /
        concurrency."""
        left = self.counts["pending"] + self.counts["running"]
        if left == 0:
            return 0.0
        if self.forecast is not None:
            now = self.clock()
            with self._lock:
                running = {r.key: r.elapsed(now) for r in self.running.values() if r.key}
            c = self.counts
            finished = c["done"] + c["failed"] + c["stopped"]
            eta = self.forecast.eta(self._ended, running, now - self.started, finished)
            if eta is not None:
                return eta
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        return mean * left / self.concurrency

    def render(self) -> Text:
        """The status line (and the best configuration so far)."""
        c = self.counts
        elapsed = self.clock() - self.started
        text = Text()
        text.append(f"{self.name}  ", style="bold")
        text.append(f"{c['done']} done", style="green")
        text.append(f" · {c['running']} running", style="cyan")
        text.append(f" · {c['failed']} failed", style="red" if c["failed"] else "")
        if c["stopped"]:
            text.append(f" · {c['stopped']} stopped")
        text.append(f" · {c['pending']} pending · {self.total} total")
        text.append(f" · elapsed {format_duration(elapsed)} · ETA {format_duration(self.eta())}")
        bests = list(self.best_by_task.values()) if len(self.best_by_task) > 1 else [self.best]
        for best in filter(None, bests):
            text.append(f"\nbest {self.metric} {best.value:.4f} (mean of {best.n}): ", style="bold")
            cfg = best.trial
            text.append(config_name(cfg) if "task" in cfg else cfg.get("cell", ""))
        return text

    def _row_text(self, row: Running, now: float) -> str:
        return "  ".join(self._row_cells(row, now))

    def _row_cells(self, row: Running, now: float) -> list[str]:
        value = f"{self.metric} {row.value:.4f}" if row.value is not None else ""
        return [
            f"epoch {row.epoch}/{row.epochs or '?'}",
            value,
            f"elapsed {format_duration(row.elapsed(now))}",
            f"ETA {format_duration(row.eta(now))}",
        ]

    def render_live(self) -> Group:
        """The status line and one row per running trial (name, epoch, metric, times)."""
        now = self.clock()
        table = Table.grid(padding=(0, 2))
        for _ in range(5):
            table.add_column(no_wrap=True)
        with self._lock:
            rows = sorted(self.running.values(), key=lambda r: r.seen)
            for row in rows:
                table.add_row(Text(row.name, style="cyan"), *self._row_cells(row, now))
        return Group(self.render(), table) if rows else Group(self.render())


def _took(result: dict[str, Any]) -> str:
    """A trial's time on its end line: training (what the report's cost column compares)
    and set-up, named; the whole wall time for results without the split."""

    def number(key: str) -> float | None:
        value = result.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    train, setup = number("train_seconds"), number("setup_seconds")
    if train is not None and setup is not None:
        return f"  train {train:.1f}s, setup {setup:.1f}s"
    total = number("trial_seconds")
    return f" {total:.1f}s" if total is not None else ""


def result_epoch(trial: Any) -> Any:
    return (trial.last_result or {}).get("epoch", "?")


_CURRENT: SweepProgress | None = None


def attach(view: SweepProgress | None) -> None:
    """Make ``view`` the one :class:`ProgressCallback` updates (one sweep per process)."""
    global _CURRENT
    _CURRENT = view


def record_stop(trial_id: str) -> None:
    """The scheduler stopped ``trial_id`` for good (called by the driver's ASHA)."""
    if _CURRENT is not None:
        _CURRENT.stopped.add(trial_id)


class ProgressCallback(Callback):
    """Feeds the attached :class:`SweepProgress` from Tune's trial list."""

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if _CURRENT is not None:
            _CURRENT.report(trial, result)
            _CURRENT.update(trials)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if _CURRENT is not None:
            _CURRENT.update(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if _CURRENT is not None:
            _CURRENT.update(trials, force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if _CURRENT is not None:
            _CURRENT.update(trials, force=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if _CURRENT is not None:
            _CURRENT.update(trials, force=True)
