"""Every command's bad input as a new user types it: one line naming the flag, exit status 2,
no traceback, before anything heavy runs; and the top level (``--help``, ``--version``, a
closed pipe) as the ``dropattack`` console script answers it.

The bad-input cases run in this process through :func:`sweeps.cli.main` (the commands'
modules are imported once); the top-level ones run the real console script.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps import cli
from tests.netutil import free_port

ROOT = Path(__file__).resolve().parents[2]
DROPATTACK = Path(sys.executable).parent / "dropattack"
CLOSED = f"http://127.0.0.1:{free_port()}"  # nothing listens there
DB = f"postgresql://127.0.0.1:{free_port()}/mlflow"  # nor there
FILE = "FILE"  # replaced by an existing regular file


def run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's errors
        code = e.code
    return code, capsys.readouterr().err


# (argv, what the one line must name)
CASES = [
    # report: output folder, tracking URI, store
    (["report", "q", "--out", FILE], "argument --out: expected a folder, but"),
    (["report", "q", "--out", f"{FILE}/x"], "argument --out: expected a folder, but"),
    (["report", "q", "--out", "/dev/null/x"], "argument --out: expected a folder"),
    (["report", "q", "--out", "/proc/forbidden"], "argument --out: cannot create"),
    (["report", "q", "--out", "/sys/forbidden"], "argument --out: cannot create"),
    (["report", "q", "--mlflow-uri", "./mlruns-x"], "argument --mlflow-uri: expected a tracking"),
    (["report", "q", "--mlflow-uri", "ftp://host/x"], "argument --mlflow-uri: expected a"),
    (["report", "q", "--mlflow-uri", "http://:5000"], "argument --mlflow-uri: expected http://"),
    (["report", "q", "--mlflow-uri", CLOSED], "--mlflow-uri: cannot reach MLflow at"),
    (["report", "q", "--runs-dir", "EMPTY"], "--runs-dir EMPTY: no MLflow store at"),
    (["report", "q", "--mlflow-uri", DB], "--mlflow-uri: cannot reach the postgresql tracking"),
    # EXPERIMENT becomes a path (RUNS_DIR/reports/EXPERIMENT): checked where it is parsed
    (["report", ".."], "argument experiment: expected letters, digits"),
    (["report", "../x", "--runs-dir", "EMPTY"], "argument experiment: expected letters"),
    (["runs", "a/b"], "argument experiment: expected letters, digits"),
    (["confirm", "/abs"], "argument experiment: expected letters, digits"),
    (["confirm", ".hidden"], "argument experiment: expected letters, digits"),
    # runs: the same store checks
    (["runs", "q", "--mlflow-uri", "./mlruns-x"], "argument --mlflow-uri: expected a tracking"),
    (["runs", "q", "--runs-dir", "EMPTY"], "--runs-dir EMPTY: no MLflow store at"),
    (["runs", "q", "--mlflow-uri", CLOSED], "--mlflow-uri: cannot reach MLflow at"),
    # landscape: the same, checked before any weights load
    (["landscape", "r1", "--out", "/dev/null/x"], "argument --out: expected a folder"),
    (["landscape", "r1", "--out", FILE], "argument --out: expected a folder, but"),
    (["landscape", "r1", "--mlflow-uri", "mlruns"], "argument --mlflow-uri: expected a"),
    (["landscape", "r1", "--mlflow-uri", CLOSED], "--mlflow-uri: cannot reach MLflow at"),
    (["landscape", "r1", "--runs-dir", "EMPTY"], "--runs-dir EMPTY: no MLflow store at"),
    (["landscape", "r1", "--samples", "0"], "argument --samples: expected an integer >= 1"),
    (["landscape", "r1", "--grid", "4"], "argument --grid/--steps: expected an odd"),
    # sweep: before Ray starts
    (["sweep", "quickstart", "--mlflow-uri", "./mlruns-x"], "argument --mlflow-uri: expected"),
    (["sweep", "quickstart", "--mlflow-uri", "sqlite:////dev/null/x/m.db"], "--mlflow-uri: sqlite"),
    (
        ["sweep", "quickstart", "--mlflow-uri", "sqlite://rel.db"],
        "--mlflow-uri: expected sqlite:///",
    ),
    (["sweep", "quickstart", "--mlflow-uri", CLOSED], "--mlflow-uri: cannot reach MLflow at"),
    (["sweep", "quickstart", "--runs-dir", FILE], "argument --runs-dir: expected a folder, but"),
    (["sweep", "quickstart", "--runs-dir", "/proc/x"], "argument --runs-dir: cannot create"),
    (["sweep", "quickstart", "--address", "nohost"], "argument --address: expected auto"),
    (["sweep", "/nonexistent/dir/spec.yaml"], "/nonexistent/dir/spec.yaml: no such spec file"),
    (["sweep", "nosuchspec"], "unknown spec 'nosuchspec'"),
    # confirm
    (["confirm", "q", "--runs-dir", "EMPTY"], "--runs-dir EMPTY: no MLflow store at"),
    (["confirm", "q", "--runs-dir", "/dev/null/x"], "argument --runs-dir: expected a folder"),
    (["confirm", "q", "--mlflow-uri", "/tmp/mlruns"], "argument --mlflow-uri: expected a"),
    (["confirm", "q", "--seeds", "0"], "argument --seeds: expected an integer >= 1"),
    # train and tasks
    (["train", "digits-lenet5", "--vectors", "/nonexistent/v.txt"], "argument --vectors: expected"),
    (["train", "digits-lenet5", "--vectors", "/proc"], "argument --vectors: expected a readable"),
    (["train", "digits-lenet5", "--mlflow-uri", "runs"], "argument --mlflow-uri: expected a"),
    (["train", "digits-lenet5", "--mlflow-uri", CLOSED], "--mlflow-uri: cannot reach MLflow at"),
    (["train", "digits-lenet5", "--threads", "0"], "argument --threads: expected an integer >= 1"),
    (["train", "digits-lenet5", "--lr", "-1"], "argument --lr: expected a positive number"),
    (["train", "digits-lenet5", "--data-dir", "/nonexistent/d"], "--data-dir: expected"),
    (["train", "nosuchtask", "--epochs", "1"], "unknown 'nosuchtask'"),
    (["tasks", "nosuchtask"], "unknown 'nosuchtask'"),
    (["tasks", "--resolve", "digits-lenet5", "Nope"], "unknown alias or parameter 'Nope'"),
    # submit and jobs: the job API address, files shipped with the job
    (["submit", "quickstart", "--requirements", "/nonexistent/r.txt"], "argument --requirements"),
    (["submit", "quickstart", "--working-dir", FILE], "argument --working-dir: expected an"),
    (["submit", "quickstart", "--address", "ray://h:10001"], "argument --address: ray://h:10001"),
    (["submit", "quickstart", "--mlflow-uri", "mlruns"], "argument --mlflow-uri: expected a"),
    (["submit", "quickstart", "--address", CLOSED], f"Ray job API at {CLOSED}"),
    # submit --slurm: the batch script and the state folder, before sbatch or MLflow
    (["submit", "quickstart", "--slurm", "--script", "/nonexistent/x.sbatch"], "argument --script"),
    (["submit", "quickstart", "--slurm", "--script", "/tmp"], "argument --script: expected a"),
    (["submit", "quickstart", "--slurm", "--runs-dir", FILE], "--runs-dir: expected a folder"),
    (["submit", "quickstart", "--slurm", "--runs-dir", "/proc/x"], "--runs-dir: cannot create"),
    (["jobs", "status", "x", "--address", "ray://h:1"], "argument --address: ray://h:1 is a"),
    (["jobs", "list", "--address", "http://h:port"], "argument --address: bad port"),
    (["jobs", "logs", "x", "--address", CLOSED], f"Ray job API at {CLOSED}"),
    (["jobs", "stop", "x", "--wait", "-1"], "argument --wait: expected a number >= 0"),
]


def _case_id(argv: list[str]) -> str:
    """The case's command, with the free ports named: every worker collects the same ids."""
    return " ".join(argv).replace(CLOSED, "CLOSED").replace(DB, "DB")


@pytest.mark.parametrize(("argv", "names"), CASES, ids=[_case_id(c[0]) for c in CASES])
def test_bad_input_is_one_line_naming_the_flag_with_exit_2(argv, names, capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "empty").mkdir()
    values = {FILE: str(afile), "EMPTY": str(tmp_path / "empty")}
    argv = [values.get(a, a.replace(FILE, str(afile))) for a in argv]
    names = names.replace("EMPTY", values["EMPTY"])
    code, err = run(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"dropattack {argv[0]}"), err
    assert names in err, err
    assert not (tmp_path / "empty" / "mlflow.db").exists()  # nothing created while failing


def test_existing_output_folder_and_missing_parents_are_fine(tmp_path):
    """``--out`` and ``--runs-dir`` create missing parents (as ``mkdir -p``); the check
    leaves nothing behind."""
    from sweeps.commands.argtypes import output_dir

    assert output_dir(str(tmp_path)) == str(tmp_path)
    assert output_dir(str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def test_bad_plain_path_uri_fails_before_ray_or_mlflow_is_imported(tmp_path):
    """``--mlflow-uri ./mlruns-x`` (a plain path): refused while parsing, with the sqlite URI
    to use instead; neither Ray nor MLflow is imported (both take seconds)."""
    code = (
        "import sys\nfrom sweeps.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    print(e.code, 'ray' in sys.modules, 'mlflow' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "sweep", "quickstart", "--mlflow-uri", "./mlruns-x"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.split() == ["2", "False", "False"], proc.stdout + proc.stderr
    assert f"use sqlite:///{tmp_path}/mlruns-x/mlflow.db" in proc.stderr


def test_a_plain_path_in_mlflow_tracking_uri_is_named(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "./mlruns")
    code, err = run(["report", "q", "--runs-dir", str(tmp_path)], capsys)
    assert code == 2 and err.startswith("dropattack report: error: MLFLOW_TRACKING_URI: "), err


# --------------------------------------------------------------------------- the top level


def console(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [str(DROPATTACK), *argv], capture_output=True, text=True, timeout=60, env=env, **kwargs
    )


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_top_level_help_lists_every_command_on_one_line(flag):
    proc = console(flag)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    for name, summary in cli.COMMANDS.items():
        assert any(line.split() == [name, *summary.split()] for line in lines), (name, lines)
    assert "--version" in proc.stdout


def test_version():
    proc = console("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"dropattack {importlib.metadata.version('dropattack')}\n"


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_help_text_formats():
    """argparse %-formats every help string: a bare ``%`` (``95% CI``) crashes ``--help``."""
    parsers = list(_parsers(cli.build_parser(every=True)))
    names = {p.prog for p in parsers}
    assert {f"dropattack {c}" for c in cli.COMMANDS} <= names
    assert "dropattack jobs status" in names
    for p in parsers:
        assert p.format_help(), p.prog


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """``dropattack tasks | head -1``: no BrokenPipeError traceback, SIGPIPE's exit status."""
    proc = subprocess.Popen(
        [str(DROPATTACK), "tasks"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # the reader has gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == cli.EXIT_BROKEN_PIPE and err == "", err


# --------------------------------------------------------------------------- bad ids


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A sqlite store with one sweep ``exp``: a parent run and one finished trial run."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("ids")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("exp", artifact_location=str(root / "artifacts"))
    parent = client.create_run(exp, tags={"dropattack.role": "sweep"}).info.run_id
    child = client.create_run(exp, tags={"mlflow.parentRunId": parent}).info.run_id
    client.log_param(child, "task", "digits-lenet5")
    client.set_terminated(child, "FINISHED")
    client.set_terminated(parent, "FINISHED")
    return uri


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["report", "nosuch"], "no MLflow experiment named 'nosuch'"),
        (["report", "exp", "--parent", "nope"], "--parent 'nope' is not a sweep parent run"),
        (["confirm", "exp", "--parent", "nope"], "--parent 'nope' is not a sweep parent run"),
        (["landscape", "0123456789abcdef0123456789abcdef"], "no MLflow run '0123456789abcdef"),
        (["runs", "nosuch"], "no MLflow experiment named 'nosuch'"),
    ],
    ids=["report-experiment", "report-parent", "confirm-parent", "landscape-run", "runs-exp"],
)
def test_unknown_ids_are_one_line(store, argv, names, capsys):
    code, err = run([*argv, "--mlflow-uri", store], capsys)
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert names in err, err
