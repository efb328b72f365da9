"""``dropattack train`` and ``dropattack tasks`` in-process, and the quickstart as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sweeps.cli import main

REPO = Path(__file__).resolve().parents[2]

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("DROPATTACK_CACHE", str(tmp_path_factory.getbasetemp() / "vocab-cache"))
    monkeypatch.delenv("DROPATTACK_DATA", raising=False)


def run_cli(capsys, *argv: str) -> tuple[int, list[str], str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out.strip().splitlines(), out.err


def test_train_prints_one_line_per_epoch_then_the_json_object(capsys):
    rc, lines, _ = run_cli(
        capsys, "train", "digits-lenet5", "--epochs", "2", "--train-size", "300",
        "--attack", "Input,Conv.1.w", "--eps", "3", "--json",
    )  # fmt: skip
    assert rc == 0 and len(lines) == 3
    assert lines[0].startswith("epoch 1/2  train_loss") and lines[1].startswith("epoch 2/2")
    out = json.loads(lines[-1])
    assert out["attacked"] == ["input", "conv1.weight"] and out["train_size"] == 300
    assert 0 <= out["val_acc"] <= 1 and 0 <= out["test_acc"] <= 1 and "test_f1" in out
    assert out["epochs"] == 2 and out["seconds"] > 0 and out["config"]["eps"] == 3.0


def test_train_without_json_ends_with_a_summary(capsys):
    rc, lines, _ = run_cli(
        capsys, "train", "digits-lenet5", "--epochs", "1", "--train-size", "200",
        "--method", "l2", "--hp", "lam=0.001",
    )  # fmt: skip
    assert rc == 0 and lines[-1].startswith("test_acc ") and "train " in lines[-1]
    assert lines[-3].startswith("ran digits-lenet5 l2 ") and "attacked" not in lines[-3]
    assert lines[-2] == (
        "data sklearn.datasets.load_digits (proportional split): train 200 / val 179 / test 179"
    )


def test_train_records_what_ran_with_every_default_resolved(capsys):
    """No flags: the method's own eps, p, k and groups, the task's input target, the data."""
    rc, lines, _ = run_cli(
        capsys, "train", "digits-lenet5", "--epochs", "1", "--train-size", "200", "--json"
    )
    out = json.loads(lines[-1])
    config = out["config"]
    assert rc == 0 and config["attack"] == ["Input"] and config["attacked"] == ["input"]
    assert (config["eps"], config["p"], config["k"], config["groups"]) == (5, 0.7, 1, "paper")
    assert config["epochs"] == 1 and config["batch_size"] == 32 and config["lr"] == 0.003
    assert config["sizes"] == {"train": 200, "val": 179, "test": 179}
    assert config["data_source"] == "sklearn.datasets.load_digits"
    assert config["data_split"] == "proportional" and config["data_root"]
    history = sum(h["seconds"] for h in out["history"])
    assert out["train_seconds"] == pytest.approx(history) and out["setup_seconds"] > 0
    # a method that takes no attack records none of eps, p, k, groups
    rc, lines, _ = run_cli(
        capsys, "train", "digits-lenet5", "--epochs", "1", "--train-size", "100",
        "--method", "standard", "--json",
    )  # fmt: skip
    config = json.loads(lines[-1])["config"]
    assert rc == 0 and config["attack"] == [] and not {"eps", "p", "k", "groups"} & set(config)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "nope"], "unknown 'nope'; expected one of imdb-lstm"),
        (["train", "digits-lenet5", "--attack", "Embedding"], "valid aliases: Input, Conv.1.w"),
        (["train", "digits-lenet5", "--hp", "lam"], "--hp: expected KEY=VALUE, got 'lam'"),
        (["train", "imdb-lstm", "--data-dir", "/no/such/dir"], "--data-dir: expected an existing"),
        (["train", "digits-lenet5", "--threads", "0"], "--threads: expected an integer >= 1"),
        (
            ["tasks", "--resolve", "mnist-lenet5", "Input,Bogus"],
            "'Bogus' for LeNet-5; valid aliases",
        ),
    ],
)
def test_bad_input_is_a_one_line_error_with_status_2(capsys, argv, message):
    try:
        rc, _, err = run_cli(capsys, *argv)
    except SystemExit as e:  # refused while parsing the flags
        rc, err = e.code, capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


def test_tasks_resolve_prints_the_parameter_names(capsys):
    rc, lines, _ = run_cli(
        capsys,
        "tasks",
        "--resolve",
        "agnews-bigru",
        "Embedding;Gru.ih.w,Gru.ih.w.reverse",
        "--json",
    )
    assert rc == 0 and len(lines) == 1
    assert json.loads(lines[0]) == {
        "task": "agnews-bigru",
        "aliases": ["Embedding", "Gru.ih.w", "Gru.ih.w.reverse"],
        "attacked": ["embedding.weight", "rnn.weight_ih_l0", "rnn.weight_ih_l0_reverse"],
    }


def test_tasks_lists_every_task_with_aliases_and_parameters(capsys):
    rc, lines, _ = run_cli(capsys, "tasks", "--json")
    described = json.loads(lines[0])
    assert rc == 0 and [d["task"] for d in described][-1] == "digits-lenet5"
    vgg = next(d for d in described if d["task"] == "cifar10-vgg16")
    assert vgg["aliases"]["BatchNorm.8.w"] == ["features.25.weight"]
    rc, lines, _ = run_cli(capsys, "tasks", "mnist-lenet5")
    assert lines[0].startswith("mnist-lenet5  (LeNet-5 on mnist; acc; 10 epochs, batch 128")
    assert any(line.split() == ["Fc.1.w2", "fc1.weight"] for line in lines)


def test_train_logs_one_flat_mlflow_run(capsys, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # a sqlite store keeps artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc, lines, _ = run_cli(
        capsys, "train", "digits-lenet5", "--epochs", "2", "--train-size", "200",
        "--mlflow-uri", uri, "--experiment", "cli-test", "--json",
    )  # fmt: skip
    assert rc == 0
    out = json.loads(lines[-1])
    client = mlflow.tracking.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cli-test").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["dropattack.role"] == "trial"
    params = run.data.params
    assert params["attacked"] == "input" and params["train_size"] == "200"
    # what ran, resolved: the input target, the method's own values, the data
    assert params["attack"] == "Input" and (params["eps"], params["p"], params["k"]) == (
        "5.0",
        "0.7",
        "1",
    )
    assert params["val_size"] == "179" and params["test_size"] == "179"
    assert params["data_source"] == "sklearn.datasets.load_digits" and params["batch_size"] == "32"
    for key in ("train_seconds", "setup_seconds", "seconds"):
        assert run.data.metrics[key] == pytest.approx(out[key])
    assert run.data.metrics["test_acc"] == pytest.approx(out["test_acc"])
    history = client.get_metric_history(run.info.run_id, "epoch_val_acc")
    assert [h.step for h in history] == [1, 2]
    assert (tmp_path / "mlruns").is_dir()


@pytest.mark.slow  # a whole training, timed
def test_quickstart_command_reaches_090_test_accuracy_within_a_minute():
    env = {**os.environ, "DROPATTACK_THREADS": "1"}  # the test machine's cores are shared
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "train", "digits-lenet5", "--epochs", "2", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["test_acc"] > 0.9 and out["epochs"] == 2
    assert wall < 60, f"took {wall:.1f} s"
