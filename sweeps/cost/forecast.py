"""How long a sweep will take: a list schedule of its trials' predicted durations.

A sweep runs its trials in order on ``slots`` parallel workers, each trial going to the first
worker that frees up (what Tune does with ``max_concurrent_trials`` and a fixed trial list):
:func:`list_schedule` simulates that, not ``total / slots``, so a few long trials at the end
count as they will. :class:`Forecast` is what the live view asks for its ETA: the plan's
predictions, corrected by how long the trials that ended actually took.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Forecast", "format_duration", "list_schedule"]


def list_schedule(
    durations: Iterable[float], slots: int, busy: Sequence[float] = (), start: float = 0.0
) -> float:
    """When the last of ``durations`` ends, run in order on ``slots`` workers.

    Args:
        durations: seconds of each trial, in the order they start.
        slots: workers (trials at once), at least 1.
        busy: seconds until each busy worker frees up (running trials); the other workers
            are free at ``start``.
        start: when the free workers become available (start-up).
    """
    n = max(1, int(slots))
    free = sorted(busy)[:n]
    free += [start] * (n - len(free))
    heapq.heapify(free)
    end = max(free) if busy else start
    for d in durations:
        t = heapq.heappop(free) + max(0.0, d)
        end = max(end, t)
        heapq.heappush(free, t)
    return end


@dataclass
class Forecast:
    """The sweep's ETA from the plan's per-trial predictions, corrected as trials end.

    Attributes:
        predicted: predicted seconds by trial key (the sweep's ``key``).
        order: trial keys in the order the sweep starts them.
        slots: trials at once.
        startup: seconds before the first trial starts (Ray, workers).
        default: the prediction for a trial key not in ``predicted`` (sampled searches).
        wall_seconds: the plan's predicted wall time of the whole sweep.
    """

    predicted: dict[str, float]
    order: list[str]
    slots: int
    startup: float = 0.0
    default: float | None = None
    wall_seconds: float | None = None
    total: int | None = None
    _scale: float = field(default=1.0, repr=False)

    def predict(self, key: str | None) -> float | None:
        if key is not None and key in self.predicted:
            return self.predicted[key]
        return self.default

    def correction(self, ended: Mapping[str, float]) -> float:
        """Actual over predicted seconds of the trials that ended (1 before any)."""
        actual = predicted = 0.0
        for key, seconds in ended.items():
            p = self.predict(key)
            if p and seconds and seconds > 0:
                actual += seconds
                predicted += p
        return actual / predicted if predicted > 0 else 1.0

    def eta(
        self,
        ended: Mapping[str, float],
        running: Mapping[str, float],
        elapsed: float,
        finished: int | None = None,
    ) -> float | None:
        """Seconds left.

        Args:
            ended: key -> measured seconds of trials that ended (done, failed, stopped).
            running: key -> seconds each running trial has run.
            elapsed: seconds since the sweep started (start-up not yet over counts).
            finished: trials that ended, when some have no key (defaults to ``len(ended)``).
        """
        scale = self.correction(ended)
        busy = []
        for key, ran in running.items():
            p = self.predict(key)
            if p is None:
                return None
            busy.append(max(0.0, p * scale - ran))
        taken = set(ended) | set(running)
        pending = [k for k in self.order if k not in taken]
        total = self.total if self.total is not None else len(self.order)
        unknown = total - (finished if finished is not None else len(ended))
        unknown -= len(running) + len(pending)
        durations = []
        for key in pending:
            p = self.predict(key)
            if p is None:
                return None
            durations.append(p * scale)
        if unknown > 0:
            if self.default is None:
                return None
            durations += [self.default * scale] * unknown
        start = max(0.0, self.startup - elapsed)
        return list_schedule(durations, self.slots, busy, start)


def format_duration(seconds: float | None) -> str:
    """``M:SS`` or ``H:MM:SS``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )
