"""One data root for every command: ``--data-dir`` > the spec's ``data_dir`` > ``$DROPATTACK_DATA``,
and a command that would read data that is not there fails at once, in one line naming the fix."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from sweeps.cli import main
from sweeps.specs.data import data_problems
from sweeps.specs.load import load_spec

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
COMMANDS = ("plan", "sweep", "train", "confirm", "landscape", "submit")


@pytest.fixture(autouse=True)
def _fresh_clone(monkeypatch, tmp_path):
    """No $DROPATTACK_DATA and no sample folder beside the checkout, as on a fresh clone."""
    monkeypatch.delenv("DROPATTACK_DATA", raising=False)
    monkeypatch.setenv("DROPATTACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("models.data.paths.SAMPLE_DIR", tmp_path / "no-such-folder")


@pytest.fixture
def imdb_root(tmp_path) -> Path:
    if not (SHARED_DATA / "imdb" / "Train2500.csv").is_file():
        pytest.skip(f"{SHARED_DATA} not found: the shared real data samples are absent")
    root = tmp_path / "data"
    (root / "imdb").mkdir(parents=True)
    shutil.copy(SHARED_DATA / "imdb" / "Train2500.csv", root / "imdb")
    return root


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_that_reads_data_takes_data_dir(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "--data-dir DIR" in capsys.readouterr().out


def test_plan_without_data_fails_fast_in_one_line_naming_the_fix(capsys):
    started = time.monotonic()
    assert main(["plan", "table3"]) == 2
    took = time.monotonic() - started
    line = _error(capsys)
    assert line.startswith("dropattack plan: error: imdb: no data folder")
    assert "dropattack data fetch imdb --to DIR" in line and "--data-dir DIR" in line
    assert took < 20, took  # no hub retries: it used to spend 28 s on them, imports aside


def test_sweep_and_plan_name_the_folder_that_lacks_the_files(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["sweep", "table3", "--data-dir", str(empty)]) == 2
    line = _error(capsys)
    assert f"imdb: no CSV files in {empty / 'imdb'}" in line and "Train.csv" in line
    assert main(["plan", "table2", "--data-dir", str(empty)]) == 2
    line = _error(capsys)
    assert "no CSV files" in line and "more: `dropattack data list`" in line
    with pytest.raises(SystemExit) as e:
        main(["plan", "table3", "--data-dir", str(tmp_path / "nope")])
    assert e.value.code == 2
    assert "argument --data-dir: expected an existing folder" in _error(capsys)


def _spec(tmp_path: Path, spec_dir: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\n"
        f"defaults: {{task: imdb-lstm, data_dir: {spec_dir}, train_size: 100}}\n"
        f"trials:\n  - {{method: standard, data_dir: {spec_dir}}}\n  - {{method: dropattack}}\n"
    )
    return path


def test_the_flag_wins_over_the_spec_which_wins_over_the_environment(
    imdb_root, tmp_path, monkeypatch
):
    empty = tmp_path / "empty"
    empty.mkdir()
    spec_file = _spec(tmp_path, imdb_root)
    monkeypatch.setenv("DROPATTACK_DATA", str(empty))
    spec = load_spec(spec_file)  # the spec's data_dir, not the environment's
    assert data_problems(spec) == []
    flagged = load_spec(spec_file, str(empty))
    from sweeps.specs.space import expand_grid

    assert {t["data_dir"] for t in expand_grid(flagged)} == {str(empty.resolve())}
    assert len(data_problems(flagged)) == 1 and "no CSV files" in data_problems(flagged)[0]
    # without a data_dir in the spec the environment's root is read
    bare = tmp_path / "bare.yaml"
    bare.write_text("name: bare\ndefaults: {task: imdb-lstm}\n")
    assert "DROPATTACK_DATA" in data_problems(load_spec(bare))[0]
    monkeypatch.setenv("DROPATTACK_DATA", str(imdb_root))
    assert data_problems(load_spec(bare)) == []


def test_a_relative_flag_becomes_the_absolute_folder_the_job_reads(imdb_root, monkeypatch):
    monkeypatch.chdir(imdb_root.parent)
    spec = load_spec("table3", "data")
    assert spec.defaults.data_dir == str(imdb_root.resolve())
    assert data_problems(spec) == []


def test_digits_needs_no_data_and_hf_is_not_checked_offline():
    assert data_problems(load_spec("quickstart")) == []
    assert data_problems(load_spec("table3", "hf")) == []
    problems = data_problems(load_spec("table2", "hf"))
    assert [p.split(":")[0] for p in problems] == ["pheme", "mnist", "cifar10"]
    assert "not on Hugging Face datasets" in problems[0]
