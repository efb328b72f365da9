"""The default torch thread count: the CPUs a process may use, less what others keep busy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.execution.threads import available_cpus, default_threads

DROPATTACK = Path(sys.executable).parent / "dropattack"


@pytest.mark.parametrize(
    ("cpus", "load", "expected"),
    [
        (2, 0.0, 2),  # a quiet machine: every core, as torch's own default
        (2, 0.3, 2),
        (2, 1.0, 1),  # another job on one of the two cores
        (2, 23.0, 1),  # a shared 2-core machine under load: never 0, never 2
        (16, 3.2, 13),
        (16, 0.0, 16),
        (1, 0.0, 1),
    ],
)
def test_default_threads_leaves_the_busy_cpus_to_their_processes(cpus, load, expected):
    assert default_threads(cpus, load) == expected


def test_available_cpus_follows_the_affinity_mask():
    assert available_cpus() == len(os.sched_getaffinity(0))


def test_train_pinned_to_one_cpu_uses_one_thread(tmp_path):
    """``dropattack train`` as a user runs it, on one CPU of an idle-looking machine (taskset,
    a Slurm or cgroup cpuset): one thread, said in its JSON."""
    env = {k: v for k, v in os.environ.items() if k != "DROPATTACK_THREADS"}
    argv = [str(DROPATTACK), "train", "digits-lenet5", "--epochs", "1", "--train-size", "100"]
    proc = subprocess.run(
        [*argv, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1])["threads"] == 1
