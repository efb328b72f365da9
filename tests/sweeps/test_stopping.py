"""Stop requests by signal (:mod:`sweeps.execution.stopping`), with real signals sent to this
process.

The sweep-level behaviour (a SIGTERM'd or SIGUSR1'd sweep stops, saves and resumes with every
trial once) is tested through Slurm in tests/cluster/test_slurm.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from sweeps.execution import stopping


def _tune_like_handler(event: threading.Event):
    """What Tune installs for SIGUSR1 while ``Tuner.fit`` runs: set its "interrupted" event."""

    def handler(signum, frame):  # noqa: ANN001, ANN202
        event.set()

    return handler


def test_sigterm_is_recorded_not_fatal_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with stopping.catching():
        assert stopping.requested() is None
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs at the next bytecode boundary
        assert stopping.requested() == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_request_before_tune_runs_reaches_tune_once_it_does():
    interrupted = threading.Event()
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        with stopping.catching():
            os.kill(os.getpid(), signal.SIGUSR1)  # Slurm's --signal, while Ray still starts
            time.sleep(0.3)
            assert stopping.requested() == "SIGUSR1" and not interrupted.is_set()
            signal.signal(signal.SIGUSR1, _tune_like_handler(interrupted))  # Tuner.fit starts
            deadline = time.monotonic() + 5
            while not interrupted.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert interrupted.is_set()
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_sigterm_while_tune_runs_is_its_graceful_stop():
    interrupted = threading.Event()
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        with stopping.catching():
            signal.signal(signal.SIGUSR1, _tune_like_handler(interrupted))
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert interrupted.is_set()
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_reclaim_takes_sigterm_back_from_a_handler_installed_later():
    other: list[int] = []
    with stopping.catching():
        signal.signal(signal.SIGTERM, lambda s, f: other.append(s))  # as ray.init does
        stopping.reclaim()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stopping.requested() == "SIGTERM" and other == []
