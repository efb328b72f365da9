"""Faults during a sweep on a multi-node Ray cluster with MLflow on PostgreSQL, all real.

The cluster is a Ray head without CPUs and two 1-CPU worker nodes on 127.0.0.1 (separate
``ray start`` process groups); MLflow is ``mlflow server`` backed by PostgreSQL; the sweep is
the ``dropattack sweep`` command in a subprocess, so the driver can be killed. Each sweep is
four digits-lenet5 DropAttack trials of four epochs (an eps x p grid, one seed). Afterwards
every check reads MLflow back:

- a worker node killed mid-sweep (SIGKILL of its raylet, agents and trial processes): the
  sweep finishes, the interrupted trial is retried on the other node from its last
  checkpoint, and every cell has exactly one child run, FINISHED, with all its epochs.
  "Exactly one" is literal: a retried (or resumed) trial finds and reopens its own MLflow
  run, so an interrupted attempt leaves no second run, and no run is left RUNNING or FAILED;
- the driver killed mid-sweep (SIGKILL), then ``--resume``: every cell exactly once, the
  trials that had finished are not trained again;
- the MLflow server stopped for 60 s mid-sweep and started again on the same port: no trial
  fails or is retried, and every epoch metric of every trial is in MLflow exactly once with
  the value of the trial's own ``history.json`` (and in PostgreSQL's ``metrics`` table),
  records made during the outage included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Run

from sweeps.execution.state import STATE_FILE
from sweeps.records.tracking import TAG
from sweeps.specs.load import load_spec
from sweeps.specs.space import expand_grid

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 4
EPOCH_METRICS = ("epoch_train_loss", "epoch_train_acc", "epoch_val_acc", "epoch_val_f1")
HISTORY_FIELDS = {
    "epoch_train_loss": "train_loss",
    "epoch_train_acc": "train_acc",
    "epoch_val_acc": "val_acc",
    "epoch_val_f1": "val_f1",
}
SPEC = """
name: {name}
defaults: {{task: digits-lenet5, method: dropattack, attack: [Input, Conv.1.w], epochs: {epochs}}}
space: {{eps: [1, 5], p: [0.3, 0.7]}}
seeds: [0]
resources: {{cpus: 1, max_failures: 2}}
"""
OUTAGE_S = 60


def write_spec(folder: Path, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(SPEC.format(name=name, epochs=EPOCHS)))
    return path


def start_sweep(
    cluster: Any, mlflow_uri: str, spec: Path, runs_dir: Path, log: Path, *extra: str
) -> subprocess.Popen:
    """``dropattack sweep`` as its own process, connected to ``cluster`` (a RayCluster)."""
    cmd = [
        sys.executable, "-m", "sweeps.cli", "sweep", str(spec), "--address", cluster.address,
        "--mlflow-uri", mlflow_uri, "--runs-dir", str(runs_dir), "--no-live", *extra,
    ]  # fmt: skip
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=cluster.env)


def wait_until(
    check: Callable[[], bool], timeout: float, proc: subprocess.Popen, log: Path, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended ({proc.returncode}) before {what}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f}s:\n{log_tail(log)}")
        time.sleep(0.5)


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"the sweep did not end within {timeout:.0f}s:\n{log_tail(log)}")


def children(client: MlflowClient, experiment: str) -> tuple[list[Run], list[Run]]:
    """(parent runs, child runs) of an experiment; none when it does not exist yet."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return [], []
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(TAG["role"]) == "sweep"]
    kids = [r for r in runs if r.data.tags.get(TAG["role"]) == "trial"]
    return parents, kids


def tune_errors(runs_dir: Path, experiment: str) -> dict[str, str]:
    """Trials Tune saw fail (and retried): Tune trial id -> its ``error.txt``."""
    out = {}
    for error in (runs_dir / "ray" / experiment).glob("t*_*/error.txt"):
        # sweeps.specs.names.folder_name ends the folder with Tune's trial id, "<run>_<index>"
        trial_id = "_".join(error.parent.name.rsplit("_", 2)[-2:])
        out[trial_id] = error.read_text(errors="replace")
    return out


def assert_every_cell_once(client: MlflowClient, experiment: str, spec: Path) -> list[Run]:
    """One parent run, FINISHED; exactly one child run per trial, FINISHED, complete."""
    trials = expand_grid(load_spec(spec))
    parents, kids = children(client, experiment)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert Counter(r.data.tags[TAG["trial_key"]] for r in kids) == Counter(t["key"] for t in trials)
    for run in kids:
        assert run.info.status == "FINISHED", (run.info.run_name, run.data.tags)
        assert TAG["error"] not in run.data.tags
        assert {"val_acc", "test_acc", "test_f1"} <= set(run.data.metrics)
        assert run.data.tags[TAG["parent"]] == parents[0].info.run_id
        steps = {m.step for m in client.get_metric_history(run.info.run_id, "epoch_val_acc")}
        assert steps == set(range(1, EPOCHS + 1)), (run.info.run_name, steps)
    return kids


def test_killed_worker_node_trials_are_retried_elsewhere(ray_cluster, mlflow_pg, tmp_path):
    name = "faults-worker"
    victim, survivor = ray_cluster.ensure_workers(2)
    spec, runs_dir, log = write_spec(tmp_path, name), tmp_path / "runs", tmp_path / "sweep.log"
    client = MlflowClient(mlflow_pg.uri)
    proc = start_sweep(ray_cluster, mlflow_pg.uri, spec, runs_dir, log)

    def both_trials_past_two_epochs() -> bool:
        if not victim.trial_processes():
            return False
        running = [r for r in children(client, name)[1] if r.info.status == "RUNNING"]
        return len(running) == 2 and all(
            len(client.get_metric_history(r.info.run_id, "epoch_val_acc")) >= 2 for r in running
        )

    try:
        wait_until(both_trials_past_two_epochs, 240, proc, log, "trials past two epochs")
        killed = ray_cluster.kill(victim)
        t_kill_ms = time.time() * 1000
        assert killed, "no trial process on the killed node"
        code = finish(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert victim.raylet() is None and survivor.raylet() is not None
    assert code == 0, log_tail(log)
    assert f"{name}: 4 done (0 before this run), 0 failed" in log.read_text()

    kids = assert_every_cell_once(client, name, spec)
    retried = tune_errors(runs_dir, name)
    assert retried, f"no trial was interrupted by the kill:\n{log_tail(log)}"
    by_trial_id = {r.data.tags[TAG["trial_id"]]: r for r in kids}
    for trial_id, error in retried.items():
        assert "actor" in error.lower(), error  # the trial's worker died with the node
        run = by_trial_id[trial_id]
        # The same MLflow run went on: epochs from before the kill are kept, the rest and the
        # end came from the retry on the surviving node, which continued from the last
        # checkpoint: at most the epoch the kill interrupted between its MLflow record and
        # its checkpoint is trained twice, not the two or more epochs logged before.
        history = client.get_metric_history(run.info.run_id, "epoch_val_acc")
        before = {m.step for m in history if m.timestamp < t_kill_ms}
        after = {m.step for m in history if m.timestamp > t_kill_ms}
        assert len(before) >= 2 and after and t_kill_ms < run.info.end_time, (before, after)
        assert len(before & after) <= 1, f"retrained from scratch: {before} then {after}"
        assert "history.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_killed_driver_then_resume_runs_every_cell_once(ray_cluster, mlflow_pg, tmp_path):
    name = "faults-driver"
    ray_cluster.ensure_workers(2)
    spec, runs_dir, log = write_spec(tmp_path, name), tmp_path / "runs", tmp_path / "sweep.log"
    client = MlflowClient(mlflow_pg.uri)
    proc = start_sweep(ray_cluster, mlflow_pg.uri, spec, runs_dir, log)
    finished_before: dict[str, int] = {}

    def a_trial_finished() -> bool:
        done = [r for r in children(client, name)[1] if r.info.status == "FINISHED"]
        finished_before.update({r.data.tags[TAG["trial_key"]]: r.info.end_time for r in done})
        return bool(done)

    try:
        wait_until(a_trial_finished, 240, proc, log, "finished trial")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    _, kids = children(client, name)
    assert sum(r.info.status == "FINISHED" for r in kids) < 4, "killed too late"
    state = json.loads((runs_dir / "ray" / name / STATE_FILE).read_text())
    assert state["status"] == "running"

    proc = start_sweep(ray_cluster, mlflow_pg.uri, spec, runs_dir, log, "--resume")
    code = finish(proc, log)
    assert code == 0, log_tail(log)
    kids = assert_every_cell_once(client, name, spec)
    end_times = {r.data.tags[TAG["trial_key"]]: r.info.end_time for r in kids}
    for key, end in finished_before.items():
        assert end_times[key] == end, f"{key} was trained again after the resume"
    assert not tune_errors(runs_dir, name)


def test_mlflow_outage_loses_no_metric_and_fails_no_trial(
    ray_cluster, mlflow_pg, postgres, tmp_path
):
    name = "faults-outage"
    ray_cluster.ensure_workers(2)
    spec, runs_dir, log = write_spec(tmp_path, name), tmp_path / "runs", tmp_path / "sweep.log"
    client = MlflowClient(mlflow_pg.uri)
    proc = start_sweep(ray_cluster, mlflow_pg.uri, spec, runs_dir, log)

    def logging_epochs() -> bool:
        kids = children(client, name)[1]
        running = [r for r in kids if r.info.status == "RUNNING"]
        return len(kids) < 4 and any("epoch_val_acc" in r.data.metrics for r in running)

    try:
        wait_until(logging_epochs, 240, proc, log, "trial logging epochs")
        t_down = time.time() * 1000
        mlflow_pg.stop()
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the sweep gave up during the outage:\n{log_tail(log)}"
            time.sleep(1)
        t_up = time.time() * 1000
        mlflow_pg.start()
        code = finish(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not mlflow_pg.running:
            mlflow_pg.start()
    assert code == 0, log_tail(log)
    assert f"{name}: 4 done (0 before this run), 0 failed" in log.read_text()
    assert not tune_errors(runs_dir, name), "a trial failed during the outage and was retried"

    kids = assert_every_cell_once(client, name, spec)
    during_outage = 0
    for run in kids:
        folder = tmp_path / run.info.run_id
        folder.mkdir()
        local = client.download_artifacts(run.info.run_id, "history.json", str(folder))
        history = json.loads(Path(local).read_text())
        assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
        for metric, field in HISTORY_FIELDS.items():
            logged = client.get_metric_history(run.info.run_id, metric)
            assert sorted(m.step for m in logged) == list(range(1, EPOCHS + 1)), metric
            by_step = {m.step: m.value for m in logged}
            for h in history:
                assert by_step[h["epoch"]] == pytest.approx(h[field], rel=1e-6), (metric, h)
            during_outage += sum(t_down <= m.timestamp <= t_up for m in logged)
    # The outage hit the logging: records made while the server was down reached it later.
    assert during_outage > 0
    # ... and they are in PostgreSQL, the server's store: one row per trial and epoch.
    import psycopg2

    with psycopg2.connect(postgres.dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT m.run_uuid) FROM metrics m "
            "JOIN runs r ON r.run_uuid = m.run_uuid "
            "JOIN experiments e ON e.experiment_id = r.experiment_id "
            "WHERE e.name = %s AND m.key = 'epoch_val_acc'",
            (name,),
        )
        assert cur.fetchone() == (4 * EPOCHS, 4)
