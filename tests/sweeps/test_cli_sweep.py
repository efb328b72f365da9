"""``dropattack sweep`` on the command line: dry runs and fast, one-line failures."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps import cli
from tests.netutil import free_port

ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["sweep", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_prints_every_trial_and_starts_nothing(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "quickstart", "--dry-run", "--runs-dir", str(tmp_path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "quickstart: grid, 10 trials (5 cells x 2 seeds), max val_acc"
    assert lines[1] == "  where: on CPU, 1 CPU a trial"  # the quickstart's resources
    assert len(lines) == 12
    # each trial by its one readable name (sweeps.specs.names), as the console and MLflow name it
    assert lines[2] == "  0 passes=1 digits-lenet5 baseline s0"
    assert lines[-1] == "  9 passes=3 digits-lenet5 dropattack_ih Input+Conv.1.w eps=5 p=0.7 k=1 s1"
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()


def test_dry_run_of_a_sampled_search_describes_the_space(capsys):
    code, out, _ = run_cli(capsys, "search", "--dry-run")
    assert code == 0
    assert out.startswith("search: tpe search, 40 trials, seed 0, max val_acc")
    assert "  eps: [0.01, 9] (log)" in out and "  k: [1, 5]" in out


def test_spec_error_is_one_message_with_exit_2(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ndefaults: {task: digits-lenet5}\nspace: {p: [1.5]}\n")
    code, out, err = run_cli(capsys, str(path), "--dry-run")
    assert code == 2 and out == ""
    assert err.startswith(f"dropattack sweep: error: {path}: space.p[0]: expected 0 <= p <= 1")


def test_unreachable_mlflow_fails_fast(capsys, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    code, _, err = run_cli(capsys, "quickstart", "--mlflow-uri", uri, "--runs-dir", str(tmp_path))
    assert code == 2 and time.monotonic() - t0 < 15
    assert err.startswith(f"dropattack sweep: error: --mlflow-uri: cannot reach MLflow at {uri}")
    assert err.count("\n") == 1


def test_unreachable_ray_address_fails_fast(capsys, tmp_path, mlflow_server):
    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    code, _, err = run_cli(
        capsys, "quickstart", "--address", address, "--mlflow-uri", mlflow_server.uri,
        "--runs-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 2 and time.monotonic() - t0 < 15
    assert err.startswith(f"dropattack sweep: error: --address: cannot reach Ray at {address}")


def test_remote_cluster_needs_a_tracking_server(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "quickstart", "--address", "ray://127.0.0.1:10001", "--runs-dir", str(tmp_path)
    )
    assert code == 2
    assert "cannot write to the local store sqlite:///" in err and "--mlflow-uri http://" in err


def test_resume_without_a_sweep(capsys, tmp_path):
    code, _, err = run_cli(capsys, "quickstart", "--resume", "--runs-dir", str(tmp_path))
    assert code == 2 and "--resume: no sweep to resume at" in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--gpus-per-trial", "1.5", "a fraction in [0, 1] or a whole number of GPUs"),
        ("--max-concurrent", "0", "expected an integer >= 1"),
    ],
)
def test_bad_flags(capsys, flag, value, message):
    with pytest.raises(SystemExit) as info:
        cli.main(["sweep", "quickstart", flag, value])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_console_shows_the_sweep_not_library_logs(ray_local, tmp_path):
    """MLflow and Optuna, imported while Ray starts, do not print their INFO logs (a new
    sqlite store's migrations, a new study) into the sweep's console."""
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: tiny\n"
        "defaults: {task: digits-lenet5, epochs: 1, train_size: 100}\n"
        "space: {eps: {low: 1, high: 5}}\n"
        "search: {algorithm: tpe, num_samples: 2}\n"
        "resources: {cpus: 1, gpus: auto}\n"  # a Ray without GPUs: the CPU
    )
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "sweep", str(path), "--address", ray_local]
        + ["--runs-dir", str(tmp_path / "runs"), "--no-live"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert out.startswith(
        f"tiny: 2 trials on CPU, 1 CPU a trial, on Ray at {ray_local}, MLflow at sqlite:///"
    ), out
    assert "tiny: 2 done" in out
    noise = [line for line in out.splitlines() if " INFO " in line or "[I 20" in line]
    assert not noise, noise


def test_python_m_sweeps_cli_prints_usage_errors_as_one_line(tmp_path):
    """``python -m sweeps.cli`` runs the module as ``__main__``; its errors must still be the
    one-line messages of ``sweeps.commands.UsageError``, not tracebacks."""
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "sweep", "quickstart", "--resume"]
        + ["--runs-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("dropattack sweep: error: --resume: no sweep to resume at")
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a/b", ".hidden", "a b", "ok\n", ""])
@pytest.mark.parametrize("command", ["sweep", "submit", "train"])
def test_experiment_is_checked_while_parsing(capsys, tmp_path, command, name):
    """``--experiment`` becomes runs/ray/<name>: held to the spec-name rule before anything
    runs, so no folder outside the runs folder is created or moved aside."""
    first = {"sweep": "quickstart", "submit": "quickstart", "train": "digits-lenet5"}[command]
    argv = [command, first, "--experiment", name]
    if command == "sweep":
        argv += ["--runs-dir", str(tmp_path / "runs")]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "error: argument --experiment: expected letters, digits, '-', '_' or '.'" in err
    assert repr(name) in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["sweep", "quickstart", "--mlflow-uri", "http://bob:hunter2@h:5000"], "--mlflow-uri"),
        (["sweep", "quickstart", "--address", "ray://bob:hunter2@h:10001"], "--address"),
        (["report", "x", "--mlflow-uri", "https://bob:hunter2@h"], "--mlflow-uri"),
        (["confirm", "x", "--mlflow-uri", "http://bob:hunter2@h:5000"], "--mlflow-uri"),
        (["landscape", "x", "--mlflow-uri", "http://bob:hunter2@h:5000"], "--mlflow-uri"),
        (["train", "digits-lenet5", "--mlflow-uri", "http://bob:hunter2@h:5000"], "--mlflow-uri"),
    ],
)
def test_credentials_in_uris_are_refused_naming_the_flag(capsys, argv, flag):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "error:" in x]
    assert info.value.code == 2 and "hunter2" not in err
    assert f"error: argument {flag}: credentials in the URI (user:password@)" in line
    assert "MLFLOW_TRACKING_USERNAME" in line


def test_the_driver_refuses_unsafe_names_from_the_library(tmp_path, monkeypatch):
    from sweeps.execution.driver import SweepError, SweepOptions, run_sweep
    from sweeps.specs.load import load_spec

    spec = load_spec("quickstart")
    with pytest.raises(SweepError, match="--experiment: expected letters"):
        run_sweep(spec, SweepOptions(experiment="../x", runs_dir=tmp_path / "runs"))
    with pytest.raises(
        SweepError, match=r"--mlflow-uri: credentials in the URI \(http://\*\*\*@h:1\)"
    ):
        run_sweep(spec, SweepOptions(mlflow_uri="http://a:b@h:1", runs_dir=tmp_path / "runs"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://a:b@h:1")
    with pytest.raises(SweepError, match="--mlflow-uri: credentials"):
        run_sweep(spec, SweepOptions(runs_dir=tmp_path / "runs"))
    assert not (tmp_path / "x").exists()


def test_readme_and_the_quickstart_spec_give_the_same_duration():
    """The README once said about 25 s and the spec about a minute."""
    said = []
    for path in (ROOT / "README.md", ROOT / "sweeps" / "specs" / "quickstart.yaml"):
        text = " ".join(line.lstrip("# ") for line in path.read_text().splitlines())
        said.append(re.findall(r"about (\d+) s on 2 (?:otherwise )?idle", text))
    readme, spec = said
    assert spec and readme and set(readme) == set(spec), said
