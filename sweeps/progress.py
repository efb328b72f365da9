"""The sweep's live view: done, running, failed, pending, best so far and ETA.

:class:`SweepProgress` counts from Ray Tune's own trial list (so a resumed sweep starts from
the right numbers) and renders with ``rich``: a live panel on a terminal, one line per
finished trial otherwise (logs, CI). :class:`ProgressCallback` is the Tune callback that feeds
it; Tune pickles callbacks into the experiment for ``--resume``, and a terminal cannot be
pickled, so the callback reaches the view through :func:`attach`'s slot instead of holding it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.text import Text

from sweeps.selection import exact_mean, select

__all__ = [
    "Best",
    "ProgressCallback",
    "SweepProgress",
    "attach",
    "format_duration",
    "record_stop",
    "trial_state",
]

#: Keys the trainable puts in a trial's last result (see :mod:`sweeps.trial`).
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


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


@dataclass
class Best:
    """The best configuration so far: its mean metric over the seeds finished so far."""

    value: float
    trial: dict[str, Any]
    trial_id: str
    n: int = 1


class SweepProgress:
    """Counts of a sweep's trials by state, the best so far and an ETA.

    Args:
        name: the sweep's name (shown in the header).
        total: trials the sweep will run (grid size, or TPE's num_samples).
        metric, mode: what "best" means.
        concurrency: trials that run at once (for the ETA).
        live: a live panel (default: when stderr is a terminal).
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
    ) -> None:
        self.name = name
        self.total = total
        self.metric = metric
        self.mode = mode
        self.concurrency = max(1, concurrency)
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self.counts = {"done": 0, "running": 0, "failed": 0, "stopped": 0, "pending": total}
        self.stopped: set[str] = set()  # trials the scheduler stopped in this run
        self.earlier: set[str] | None = None  # trials already ended when this run began
        self.best: Best | None = None
        self._by_cell: dict[str, tuple[list[float], dict[str, Any], str]] = {}
        self.started = time.monotonic()
        self.durations: list[float] = []
        self._seen: set[str] = set()
        self._live: Live | None = None
        self._last_render = 0.0
        self._quiet = True  # the first count (a resumed sweep's finished trials) prints no lines

    # -- lifecycle

    def __enter__(self) -> SweepProgress:
        self.started = time.monotonic()
        if self.live:
            self._live = Live(
                self.render(), console=self.console, refresh_per_second=4, transient=False
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)
            self._live = None

    # -- updates

    def update(self, trials: Sequence[Any], force: bool = False) -> None:
        """Recount from Tune's trial list; at most 4 redraws a second unless ``force``."""
        now = time.monotonic()
        if not force and now - self._last_render < 0.25:
            return
        self._last_render = now
        counts = dict.fromkeys(self.counts, 0)
        if self.earlier is None:
            self.earlier = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        for t in trials:
            state = trial_state(t, self.stopped, self.earlier)
            counts[state] += 1
            if state in ("done", "failed", "stopped") and t.trial_id not in self._seen:
                self._seen.add(t.trial_id)
                self._finished(t, state)
        counts["pending"] += max(0, self.total - len(trials))
        self.counts = counts
        if self._quiet and counts["done"] + counts["failed"] and not self.live:
            self.console.print(
                f"{self.name}: {counts['done']} trials done, {counts['failed']} failed and "
                f"{counts['stopped']} stopped before this run",
                highlight=False,
            )
        self._quiet = False
        if self._live is not None:
            self._live.update(self.render())

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

    def _finished(self, trial: Any, state: str) -> None:
        result = trial.last_result or {}
        seconds = result.get("trial_seconds")
        if isinstance(seconds, (int, float)) and not result.get("skipped"):
            self.durations.append(float(seconds))
        value = result.get(self.metric)
        cfg = (trial.config or {}).get("trial", {})
        if state == "done" and isinstance(value, (int, float)) and math.isfinite(value):
            self._update_best(float(value), cfg, trial.trial_id)
        if not self.live and not self._quiet:
            line = self._line(trial, state, value, seconds, cfg)
            self.console.print(line, highlight=False, soft_wrap=True)

    def _update_best(self, value: float, cfg: dict[str, Any], trial_id: str) -> None:
        """Rank configurations (cells) by their mean over seeds, not single lucky trials."""
        entry = self._by_cell.setdefault(cfg.get("cell", trial_id), ([], cfg, trial_id))
        entry[0].append(value)
        # the report's rule (sweeps.selection): the same configuration, ties included
        cell = select(((k, e[0]) for k, e in self._by_cell.items()), self.mode)
        values, best_cfg, best_id = self._by_cell[cell]
        self.best = Best(exact_mean(values), best_cfg, best_id, len(values))

    def _line(self, trial: Any, state: str, value: Any, seconds: Any, cfg: dict) -> str:
        finished = len(self._seen)
        what = f"{self.metric}={value:.4f}" if isinstance(value, (int, float)) else ""
        if state == "stopped":
            what = f"stopped by the scheduler at epoch {result_epoch(trial)}"
        elif state == "failed":
            err = (trial.last_result or {}).get("error") or getattr(trial, "error_file", "")
            what = f"failed: {err}" if err else "failed"
        took = f" {seconds:.1f}s" if isinstance(seconds, (int, float)) else ""
        return (
            f"[{min(finished, self.total)}/{self.total}] {trial.trial_id} "
            f"{cfg.get('cell', '')};seed={cfg.get('seed', '')} {what}{took}"
        )

    # -- rendering

    @property
    def interrupted(self) -> bool:
        """Trials are left to run (the sweep was stopped before its end)."""
        return self.counts["pending"] + self.counts["running"] > 0

    def eta(self) -> float | None:
        """Seconds left: mean trial time x trials left / concurrency."""
        left = self.counts["pending"] + self.counts["running"]
        if left == 0:
            return 0.0
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        return mean * left / self.concurrency

    def render(self) -> Text:
        c = self.counts
        elapsed = time.monotonic() - self.started
        text = Text()
        text.append(f"{self.name}  ", style="bold")
        text.append(f"{c['done']} done", style="green")
        text.append(f" · {c['running']} running", style="cyan")
        text.append(f" · {c['failed']} failed", style="red" if c["failed"] else "")
        if c["stopped"]:
            text.append(f" · {c['stopped']} stopped")
        text.append(f" · {c['pending']} pending · {self.total} total")
        text.append(f" · elapsed {format_duration(elapsed)} · ETA {format_duration(self.eta())}")
        if self.best is not None:
            cfg = self.best.trial
            best = f"\nbest {self.metric} {self.best.value:.4f} (mean of {self.best.n}): "
            text.append(best, style="bold")
            text.append(cfg.get("cell", ""))
            if cfg.get("variant"):
                text.append(f" ({cfg['variant']})")
        return text


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
