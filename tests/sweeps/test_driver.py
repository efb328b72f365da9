"""Sweeps end to end on a real local Ray and a real ``mlflow server`` on 127.0.0.1.

Trials are real (digits-lenet5 on 200 training images); every check reads MLflow back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from sweeps.execution.driver import SweepError, SweepOptions, run_sweep
from sweeps.execution.state import STATE_FILE
from sweeps.records.tracking import TAG
from sweeps.specs.load import load_spec
from sweeps.specs.names import config_name, trial_name
from sweeps.specs.space import expand_grid

ROOT = Path(__file__).resolve().parents[2]

GRID = """
name: {name}
paper_table: quickstart
defaults: {{task: digits-lenet5, epochs: 2, train_size: 200}}
trials:
  - {{method: standard, variant: baseline}}
  - {{method: dropattack, attack: "Input;Conv.1.w", variant: dropattack_ih}}
space: {{eps: [1, 5], p: [0.5]}}
seeds: [0, 1]
resources: {{cpus: 1, gpus: auto, max_failures: 1}}
"""


def write_spec(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text.format(name=name)))
    return path


def children(client: MlflowClient, experiment: str) -> tuple[list, list]:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(TAG["role"]) == "sweep"]
    kids = [r for r in runs if r.data.tags.get(TAG["role"]) == "trial"]
    return parents, kids


def test_grid_sweep_end_to_end(ray_local, mlflow_server, tmp_path, capsys):
    path = write_spec(tmp_path, GRID, "e2e")
    spec = load_spec(path)
    trials = expand_grid(spec)
    said: list[str] = []
    result = run_sweep(
        spec,
        SweepOptions(
            mlflow_uri=mlflow_server.uri,
            runs_dir=tmp_path / "runs",
            live=False,
            command="cmd x --address ray://bob:hunter2@head:10001",
            status=said.append,
        ),
    )
    ray_name = "the Ray this process already uses"
    assert said == [
        f"e2e: 6 trials on CPU, 1 CPU a trial, on {ray_name}, MLflow at {mlflow_server.uri}"
    ]
    assert result.counts == {"done": 6, "failed": 0, "stopped": 0, "unfinished": 0, "skipped": 0}
    assert not result.interrupted and len(result.trial_seconds) == 6
    assert result.best is not None and result.best["key"] in {t["key"] for t in trials}

    client = MlflowClient(mlflow_server.uri)
    parents, kids = children(client, "e2e")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "e2e"
    assert parent.data.tags[TAG["spec_hash"]] == spec.hash
    assert parent.data.tags[TAG["command"]] == "cmd x --address ray://***@head:10001"  # no secret
    assert parent.data.tags[TAG["paper_table"]] == "quickstart"
    assert parent.data.metrics["trials_done"] == 6
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert names == {"spec.yaml", "trials.json"}

    assert len(kids) == 6
    by_key = {r.data.tags[TAG["trial_key"]]: r for r in kids}
    assert set(by_key) == {t["key"] for t in trials}
    for t in trials:
        run = by_key[t["key"]]
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        assert tags[TAG["parent"]] == parent.info.run_id
        assert tags[TAG["cell"]] == t["cell"] and tags[TAG["variant"]] == t["variant"]
        assert tags[TAG["trial_id"]] and tags[TAG["paper_table"]] == "quickstart"
        assert params["task"] == "digits-lenet5" and params["method"] == t["method"]
        assert params["seed"] == str(t["seed"]) and params["train_size"] == "200"
        assert params["epochs"] == "2"
        if t["method"] == "dropattack":
            assert params["attack"] == "Input;Conv.1.w"
            assert params["attacked"] == "input,conv1.weight"
            assert float(params["eps"]) == t["eps"] and params["p"] == "0.5"
            assert params["k"] == "1"
        else:
            assert params["attack"] == "" and "eps" not in params
        for key in ("val_acc", "val_f1", "test_acc", "test_f1"):
            assert 0.0 <= metrics[key] <= 1.0
        assert metrics["best_epoch"] in (1.0, 2.0) and metrics["trial_seconds"] > 0
        # time split: set-up (run, data, model) and training; the whole trial holds both
        history_seconds = [m.value for m in client.get_metric_history(run.info.run_id, "seconds")]
        assert history_seconds and metrics["train_seconds"] <= metrics["seconds"]
        assert metrics["setup_seconds"] > 0 and metrics["train_seconds"] > 0
        assert metrics["trial_seconds"] >= metrics["setup_seconds"] + metrics["train_seconds"]
        # one name: MLflow run name, name tag, Ray folder; what ran, resolved
        assert run.info.run_name == trial_name(t) and tags[TAG["name"]] == config_name(t)
        assert params["val_size"] == "179" and params["test_size"] == "179"
        assert params["data_source"] == "sklearn.datasets.load_digits"
        assert params["batch_size"] == "32" and params["lr"] == "0.003"
        history = client.get_metric_history(run.info.run_id, "epoch_val_acc")
        assert sorted(m.step for m in history) == [1, 2]
        best = max(m.value for m in history)
        assert metrics["val_acc"] == pytest.approx(best)
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts == ["checkpoint", "history.json"]
    state = json.loads((tmp_path / "runs" / "ray" / "e2e" / STATE_FILE).read_text())
    assert state["status"] == "finished" and state["parent_run_id"] == parent.info.run_id
    folders = {p.name for p in (tmp_path / "runs" / "ray" / "e2e").iterdir() if p.is_dir()}
    assert {f"t{t['index']}_{trial_name(t)}" for t in trials} == {
        f.rsplit("_", 2)[0] for f in folders
    }

    # the console's per-trial time is the training time MLflow holds, and the report's cost
    by_name = {r.info.run_name: r for r in kids}
    ended = re.findall(
        r"\] (.+ s\d)  val_acc=\S+  train (\S+)s, setup (\S+)s", capsys.readouterr().err
    )
    assert len(ended) == 6
    for name, train, setup in ended:
        metrics = by_name[name].data.metrics
        assert float(train) == round(metrics["train_seconds"], 1)
        assert float(setup) == round(metrics["setup_seconds"], 1)
    from sweeps.report import build_report

    report = build_report(
        "e2e", tracking_uri=mlflow_server.uri, out_dir=tmp_path / "r", formats="json"
    )
    for cell in report.analysis.cells:
        runs = [r for r in kids if r.data.tags[TAG["cell"]] == cell.key]
        assert cell.name == runs[0].data.tags[TAG["name"]]
        assert sorted(cell.run_ids) == sorted(r.info.run_id for r in runs)
        assert cell.mean_seconds == pytest.approx(
            sum(r.data.metrics["train_seconds"] for r in runs) / len(runs)
        )


FAILING = """
name: {name}
defaults: {{task: digits-lenet5, epochs: 1, train_size: 200}}
trials:
  - {{method: standard, variant: ok}}
  - {{method: standard, lr: 1.0e6, variant: diverges}}
  - {{method: dropattack, variant: also-ok}}
seeds: [0]
resources: {{cpus: 1, max_failures: 2}}
"""


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(ray_local, mlflow_server, tmp_path):
    spec = load_spec(write_spec(tmp_path, FAILING, "failing"))
    result = run_sweep(
        spec, SweepOptions(mlflow_uri=mlflow_server.uri, runs_dir=tmp_path / "runs", live=False)
    )
    assert result.counts["done"] == 2 and result.counts["failed"] == 1
    _, kids = children(MlflowClient(mlflow_server.uri), "failing")
    status = {r.data.tags[TAG["variant"]]: r for r in kids}
    assert len(kids) == 3
    assert status["ok"].info.status == "FINISHED" and status["also-ok"].info.status == "FINISHED"
    failed = status["diverges"]
    assert failed.info.status == "FAILED"
    assert failed.data.tags[TAG["error"]].startswith("NonFiniteLossError: training loss is")
    assert failed.data.tags[TAG["error_kind"]] == "deterministic"  # not retried
    assert "test_acc" not in failed.data.metrics


def test_unfinished_sweep_is_not_overwritten_and_resume_needs_a_sweep(mlflow_server, tmp_path):
    spec = load_spec(write_spec(tmp_path, GRID, "guard"))
    opts = SweepOptions(mlflow_uri=mlflow_server.uri, runs_dir=tmp_path / "runs", resume=True)
    with pytest.raises(SweepError, match="--resume: no sweep to resume at"):
        run_sweep(spec, opts)
    folder = tmp_path / "runs" / "ray" / "guard"
    folder.mkdir(parents=True)
    again = SweepOptions(mlflow_uri=mlflow_server.uri, runs_dir=tmp_path / "runs")
    (folder / STATE_FILE).write_text(json.dumps({"status": "running", "spec_hash": spec.hash}))
    with pytest.raises(SweepError, match=r"did not finish \(it is still running, or its driver"):
        run_sweep(spec, again)  # maybe still running: only an explicit --resume continues it
    (folder / STATE_FILE).write_text(json.dumps({"status": "finished", "spec_hash": "x"}))
    with pytest.raises(SweepError, match="of another spec .*--experiment NAME.*--resume"):
        run_sweep(spec, again)  # another spec under a swept name: refused, not replaced
    (folder / "tuner.pkl").write_bytes(b"")
    with pytest.raises(SweepError, match="spec 'guard' changed since the sweep"):
        run_sweep(spec, opts)


RESUME = """
name: {name}
defaults: {{task: digits-lenet5, epochs: 3, train_size: 300}}
space: {{eps: [1, 5], p: [0.3, 0.7]}}
seeds: [0, 1]
resources: {{cpus: 1, max_concurrent: 2}}
"""


def test_interrupted_sweep_resumes_with_every_cell_exactly_once(ray_local, mlflow_server, tmp_path):
    """Ctrl-C, then ``--resume``. (A driver killed by SIGKILL, then resumed, is
    tests/cluster/test_faults.py's, on a multi-node cluster.)"""
    name = "resume-sigint"
    path = write_spec(tmp_path, RESUME, name)
    trials = expand_grid(load_spec(path))
    assert len(trials) == 8
    runs_dir = tmp_path / "runs"
    cmd = [
        sys.executable, "-m", "sweeps.cli", "sweep", str(path), "--address", ray_local,
        "--mlflow-uri", mlflow_server.uri, "--runs-dir", str(runs_dir), "--no-live",
    ]  # fmt: skip
    log_path = tmp_path / "first.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        client = MlflowClient(mlflow_server.uri)
        deadline = time.monotonic() + 240
        finished_before: dict[str, int] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            if client.get_experiment_by_name(name) is not None:
                done = [r for r in children(client, name)[1] if r.info.status == "FINISHED"]
                if len(done) >= 2:
                    finished_before = {r.data.tags[TAG["trial_key"]]: r.info.end_time for r in done}
                    break
            time.sleep(0.3)
        assert proc.poll() is None, log_path.read_text()[-3000:]
        os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=120)
    parents, kids = children(client, name)
    assert len([r for r in kids if r.info.status == "FINISHED"]) < 8, "interrupted too late"
    state = json.loads((runs_dir / "ray" / name / STATE_FILE).read_text())
    # a graceful stop: the sweep says so and how to go on
    assert code == 130, log_path.read_text()[-3000:]
    assert "interrupted; continue with: dropattack sweep" in log_path.read_text()
    assert state["status"] == "interrupted" and parents[0].info.status == "KILLED"
    assert "RUNNING" not in {r.info.status for r in kids}  # closed KILLED, resumed below

    result = run_sweep(
        load_spec(path),
        SweepOptions(mlflow_uri=mlflow_server.uri, runs_dir=runs_dir, resume=True, live=False),
    )
    assert not result.interrupted and result.counts["failed"] == 0
    assert result.counts["done"] == 8

    parents, kids = children(client, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    per_key = Counter(r.data.tags[TAG["trial_key"]] for r in kids)
    assert per_key == Counter(t["key"] for t in trials)  # each cell and seed exactly once
    assert all(r.info.status == "FINISHED" for r in kids)
    end_times = {r.data.tags[TAG["trial_key"]]: r.info.end_time for r in kids}
    for key, end in finished_before.items():
        assert end_times[key] == end, f"{key} was trained again after the resume"
    for r in kids:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "epoch_val_acc")]
        assert sorted(set(steps)) == [1, 2, 3], steps


TPE = """
name: {name}
defaults: {{task: digits-lenet5, method: dropattack, epochs: 2, train_size: 200}}
space:
  attack: {{digits-lenet5: [Input, "Input;Conv.1.w"]}}
  task: [digits-lenet5]
  eps: {{low: 0.1, high: 5, log: true}}
  p: {{low: 0.1, high: 1.0}}
seeds: [0]
search:
  algorithm: tpe
  num_samples: 4
  scheduler: asha
  grace_period: 1
  reduction_factor: 2
  storage: {storage}
resources: {{cpus: 1}}
"""


def test_tpe_search_with_asha_keeps_its_study_in_storage(ray_local, mlflow_server, tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    text = TPE.replace("{storage}", storage)
    spec = load_spec(write_spec(tmp_path, text, "tpe"))
    result = run_sweep(
        spec, SweepOptions(mlflow_uri=mlflow_server.uri, runs_dir=tmp_path / "runs", live=False)
    )
    assert result.optuna["storage"] == storage
    assert not result.interrupted and result.counts["unfinished"] == 0
    assert result.counts["done"] + result.counts["stopped"] == 4
    study = optuna.load_study(study_name=result.optuna["study"], storage=storage)
    assert len(study.trials) == 4
    assert {"eps", "p", "attack@digits-lenet5"} <= set(study.trials[0].params)
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    client = MlflowClient(mlflow_server.uri)
    _, kids = children(client, "tpe")
    assert len(kids) == 4
    for r in kids:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "epoch_val_acc")]
        if r.info.status == "FINISHED":
            assert "test_acc" in r.data.metrics and sorted(steps) == [1, 2]
            assert TAG["stopped"] not in r.data.tags
        else:  # stopped by ASHA after its first epoch
            assert r.info.status == "KILLED" and r.data.tags[TAG["stopped"]] == "tune"
            assert "test_acc" not in r.data.metrics and steps == [1]
        assert r.data.tags[TAG["trial_key"]].endswith(tuple(f"sample={i}" for i in range(4)))
    assert sum(r.info.status == "FINISHED" for r in kids) == result.counts["done"] >= 1


_NEW_MODULES = """
import json, sys
import ray
from sweeps.cluster import connect
from sweeps.specs.load import load_spec

load_spec("quickstart")  # what the command has imported when the sweep starts
connect.import_for_ray_init()
before = set(sys.modules)
if sys.argv[1] == "init":
    connect.init_ray(sys.argv[2] or None)  # a new local Ray, or the one at this address
else:
    for name in (
        "ray.tune", "sweeps.execution.search", "sweeps.records.tracking",
        "sweeps.execution.trainable",
    ):
        __import__(name)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _new_modules(step: str, address: str = "") -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _NEW_MODULES, step, address],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.slow  # starts Ray
@pytest.mark.parametrize("where", ["local", "address"])
def test_ray_init_and_the_import_thread_never_import_the_same_module(where, request):
    """The driver imports Tune, MLflow and the trainable in a thread while ``ray.init`` runs
    (starting a local Ray, or connecting to one at an address); two threads importing one
    module at once can deadlock, so ``RAY_INIT_IMPORTS`` must hold whatever ``ray.init``
    would otherwise import that the thread also imports."""
    address = request.getfixturevalue("ray_local") if where == "address" else ""
    by_init = _new_modules("init", address)
    by_thread = _new_modules("thread")
    assert by_thread, "the thread imports nothing: the check would prove nothing"
    assert not by_init & by_thread, sorted(by_init & by_thread)
