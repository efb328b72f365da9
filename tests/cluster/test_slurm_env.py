"""What ``submit --slurm`` hands Slurm: a list of variable names, never a secret.

Slurm keeps a job's environment in its job record; the MLflow login goes to the job through
a file only its owner can read (the job itself is tested on a real Slurm in test_slurm.py).
"""

from __future__ import annotations

import pytest

from sweeps.cluster import slurm


def test_nothing_secret_is_exported():
    for name in slurm.EXPORTED:
        assert not any(w in name for w in ("PASSWORD", "TOKEN", "SECRET", "KEY")), name
    assert "RAY_AUTH_TOKEN" not in slurm.EXPORTED
    assert not set(slurm.LOGIN) & set(slurm.EXPORTED)


def test_login_file_is_private(tmp_path):
    env = {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p/w:1"}
    path = slurm.write_login(tmp_path / "runs", "exp", env)
    assert path == tmp_path / "runs" / ".login" / "exp.mlflow"
    assert path.read_text() == "u\np/w:1\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert slurm.write_login(tmp_path / "runs", "exp", {}) is None
    with pytest.raises(slurm.SlurmError, match="MLFLOW_TRACKING_PASSWORD: a value with a line"):
        slurm.write_login(tmp_path / "runs", "exp", {"MLFLOW_TRACKING_PASSWORD": "a\nb"})


def test_login_file_replaces_a_link(tmp_path):
    (tmp_path / "runs" / ".login").mkdir(parents=True)
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "runs" / ".login" / "exp.mlflow").symlink_to(target)
    slurm.write_login(tmp_path / "runs", "exp", {"MLFLOW_TRACKING_USERNAME": "u"})
    assert target.read_text() == "keep"


@pytest.mark.parametrize(
    "option", ["--export=ALL", "--export", "--export=MLFLOW_TRACKING_PASSWORD"]
)
def test_sbatch_export_option_is_refused(tmp_path, option):
    sweep = slurm.SlurmSweep("quickstart", "q", tmp_path, "http://127.0.0.1:9")
    with pytest.raises(slurm.SlurmError, match=f"sbatch option {option}: the job's environment"):
        slurm.submit(sweep, sbatch_args=[option])
