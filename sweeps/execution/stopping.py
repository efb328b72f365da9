"""A request to stop a sweep gracefully: SIGTERM, or SIGUSR1 (what Slurm's ``--signal`` sends).

A batch scheduler asks a job to end by a signal: Slurm sends the one ``--signal`` names
shortly before the time limit, and SIGTERM when the job is cancelled or preempted. Python's
default for both is to die on the spot, which leaves the MLflow parent run RUNNING and the
sweep's state unwritten. Inside :func:`catching` both become the graceful stop of a first
Ctrl-C instead: Ray Tune starts no new trial, saves the experiment, and stops the running
trials (each keeps its last epoch checkpoint; its MLflow run is closed KILLED); the driver
then writes the sweep's state as interrupted, and ``--resume`` continues it.

While ``Tuner.fit`` runs, Tune has its own SIGUSR1 handler (it sets Tune's "interrupted"
event); SIGTERM is passed on to it. A request that comes earlier (while Ray starts) is
passed on as soon as Tune's handler is in place, so Tune stops at its first step and still
saves an experiment that ``--resume`` restores. ``ray.init`` puts a handler of Ray's own
on SIGTERM (it prints a stack and aborts), so the driver calls :func:`reclaim` after it.
Nothing here imports Ray.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["STOP_SIGNALS", "catching", "reclaim", "requested"]

#: Signals that ask for a graceful stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

_requested: list[str] = []  # names of the stop signals received, in order
_done = threading.Event()  # set when the catching block ends
_watcher: list[threading.Thread] = []
_active: list[bool] = []  # one entry while a catching block runs in the main thread


def requested() -> str | None:
    """The name of the first stop signal received in the current :func:`catching` block
    (``SIGTERM`` or ``SIGUSR1``; one that reached Tune's own handler is not seen), else
    ``None``."""
    return _requested[0] if _requested else None


def _tune_handler() -> Any:
    """Tune's SIGUSR1 handler while ``Tuner.fit`` runs, else ``None``."""
    handler = signal.getsignal(signal.SIGUSR1)
    return handler if callable(handler) and handler is not _handle else None


def _handle(signum: int, frame: Any) -> None:
    _requested.append(signal.Signals(signum).name)
    tune = _tune_handler()
    if tune is not None:
        tune(signal.SIGUSR1, frame)
    elif not _watcher:
        thread = threading.Thread(target=_pass_on_when_tune_runs, daemon=True)
        _watcher.append(thread)
        thread.start()


def _pass_on_when_tune_runs() -> None:
    """Wait until Tune's handler is installed, then deliver SIGUSR1 to it (a signal handler
    runs in the main thread, where Tune's may reset SIGINT)."""
    while not _done.wait(0.1):
        if _tune_handler() is not None:
            os.kill(os.getpid(), signal.SIGUSR1)
            return


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """Turn SIGTERM and SIGUSR1 into a graceful stop of the sweep while the block runs.

    Main thread only (elsewhere a no-op, as Python allows handlers only there). The
    previous handlers come back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    _watcher.clear()
    _done.clear()
    previous = {s: signal.signal(s, _handle) for s in STOP_SIGNALS}
    _active.append(True)
    try:
        yield
    finally:
        _active.clear()
        _done.set()
        for s, handler in previous.items():
            signal.signal(s, handler)
        for thread in _watcher:
            thread.join(timeout=1)


def reclaim() -> None:
    """Handle SIGTERM here again inside a :func:`catching` block (after ``ray.init``, whose
    core worker installs its own handler); SIGUSR1 too unless Tune's handler holds it."""
    if not _active or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _handle)
    if _tune_handler() is None:
        signal.signal(signal.SIGUSR1, _handle)
