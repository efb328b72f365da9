"""The runs folder is trusted (a resumed sweep unpickles Tune's state from it): private."""

from __future__ import annotations

import pytest

from sweeps.execution import driver
from sweeps.execution.state import make_private
from sweeps.specs.load import load_spec


def test_a_new_runs_folder_is_0700(tmp_path):
    folder = tmp_path / "a" / "runs"
    make_private(folder)
    assert folder.stat().st_mode & 0o777 == 0o700


def test_an_open_runs_folder_of_this_user_is_closed(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    (folder / "keep").write_text("x")
    make_private(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "keep").read_text() == "x"


def test_the_sweep_makes_its_runs_folder_private(tmp_path):
    """Even a sweep that stops at once (no MLflow there) leaves its runs folder 0700."""
    runs = tmp_path / "runs"
    options = driver.SweepOptions(runs_dir=runs, mlflow_uri="http://127.0.0.1:9")
    with pytest.raises(Exception, match="127.0.0.1:9"):
        driver.run_sweep(load_spec("quickstart"), options)
    assert runs.stat().st_mode & 0o777 == 0o700
