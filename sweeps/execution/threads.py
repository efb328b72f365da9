"""How many torch threads a training process uses when nobody says: the CPUs others leave idle.

torch's own default is one thread per core. Beside another busy process its threads wait for
each other at every operation (OpenMP spins, then sleeps): ``dropattack train digits-lenet5``
took 15 s an epoch instead of 0.5 s with one thread on a shared 2-core machine
(``bench/threads.py``, figures in docs/benchmarks.md). The default here counts the CPUs this
process may run on, takes off the load the others put on them (the 1-minute load average),
and keeps at least one: a quiet machine gets every core, a shared one a single thread.
"""

from __future__ import annotations

import math
import os

__all__ = ["ENV", "available_cpus", "default_threads"]

#: Environment variable that fixes the thread count (``dropattack train --threads``'s default).
ENV = "DROPATTACK_THREADS"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: taskset, cgroups' cpusets, Slurm)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_threads(cpus: int | None = None, load: float | None = None) -> int:
    """Threads for one training process: ``cpus`` (default :func:`available_cpus`) less the
    ``load`` of other processes (default the 1-minute load average), rounded down, at least 1.
    """
    cpus = available_cpus() if cpus is None else cpus
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this system: be safe
            return 1
    return max(1, min(cpus, math.floor(cpus - load + 0.5)))
