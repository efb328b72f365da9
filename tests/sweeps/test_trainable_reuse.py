"""A worker Tune reuses for the next trial waits for the trial it stopped to close its run.

With ``reuse_actors`` (the specs' default), Tune hands a stopped trial's worker to the next
trial and waits ``TUNE_FUNCTION_THREAD_TIMEOUT_S`` for the stopped trial's thread, which closes
its MLflow run KILLED. Ray's 2 s default was too short on a busy machine: ASHA stopped a trial,
and the next one failed with "Could not re-use actor". Importing the trainable (what a Ray
worker does before it runs a trial) sets a longer wait, unless the user set one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = "import os, sweeps.execution.trainable as t; print(os.environ[t.THREAD_TIMEOUT_ENV])"


def _timeout_after_import(**env: str) -> float:
    base = {k: v for k, v in os.environ.items() if k != "TUNE_FUNCTION_THREAD_TIMEOUT_S"}
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("env", "expected"), [({}, 60.0), ({"TUNE_FUNCTION_THREAD_TIMEOUT_S": "7"}, 7.0)]
)
def test_importing_the_trainable_gives_a_stopped_trial_time_to_close(env, expected):
    assert _timeout_after_import(**env) == expected
