"""Sweeps on a real Slurm: the shipped batch script, submitted by ``dropattack submit --slurm``.

A Slurm of our own (:mod:`tests.slurm`: two nodes of one CPU each on this machine) runs the
jobs, which span both nodes; MLflow is the session's real ``mlflow server``. The checks:

- a spec that does not validate, an MLflow server that does not answer, another spec's sweep
  under the name and a resume with nothing to resume are refused with one line before
  anything reaches Slurm (no job appears);
- the quickstart sweep finishes inside one job: Ray over the allocation (the head on the
  first node, a worker joined from the second, one CPU each as Slurm granted), the ten
  trials FINISHED in MLflow under one parent run, no Ray process left after the job;
- a job whose data is not where its nodes will read it is refused before it queues;
- a task from the user's own folder runs on every node of the job.

The time-limit requeue, the cancel and ``--resume`` are in ``test_slurm_requeue.py`` (a Slurm
of their own, so that both run at once).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from sweeps.execution.state import STATE_FILE
from sweeps.records.tracking import TAG
from sweeps.specs.load import load_spec
from tests.procutil import processes
from tests.slurm import SlurmCluster, SlurmUnavailable, start_slurm

EXAMPLE_TASK = Path(__file__).resolve().parents[2] / "docs" / "examples" / "own-task" / "own_task"

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    try:
        cluster = start_slurm()
    except SlurmUnavailable as e:
        pytest.skip(f"no Slurm for the Slurm tests: {e}")
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(cluster.root, ignore_errors=True)


def submit(
    slurm: SlurmCluster, cwd: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``dropattack submit ... --slurm`` as a user types it, with this venv first on PATH
    (the job inherits it and finds ``dropattack``, ``ray`` and ``python3`` there)."""
    env = {**slurm.env, "PATH": f"{VENV_BIN}:{slurm.env.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(extra_env or {})
    return subprocess.run(
        [str(VENV_BIN / "dropattack"), "submit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def wait_job(slurm: SlurmCluster, job_id: str, log: Path, timeout: float, done) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        job = slurm.job(job_id)
        if done(job):
            return job
        assert not ended(job) or done is ended, (job, tail(log), slurm.logs())
        if time.monotonic() > deadline:
            pytest.fail(
                f"job {job_id} is {job.get('JobState')} after {timeout:.0f}s:\n{tail(log)}\n"
                f"{slurm.logs()}"
            )
        time.sleep(1)


def ended(job: dict) -> bool:
    return job.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL")


def tail(path: Path, chars: int = 5000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    lines = [ln for ln in text.splitlines() if " INFO " not in ln and " SUCC " not in ln]
    return "\n".join(lines)[-chars:]


def children(client: MlflowClient, experiment: str) -> tuple[list, list]:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return [], []
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return (
        [r for r in runs if r.data.tags.get(TAG["role"]) == "sweep"],
        [r for r in runs if r.data.tags.get(TAG["role"]) == "trial"],
    )


def ray_left(job_id: str, folder: Path) -> list[str]:
    """Processes left from the job's Ray: its temp folder in their arguments (raylet, GCS,
    agents), or their working directory in ``folder`` (trial workers, which rename
    themselves ``ray::...`` and work in their trial's folder)."""
    mark = f"/da-ray-{job_id}."
    left = []
    for p in processes().values():
        try:
            cwd = os.readlink(f"/proc/{p.pid}/cwd")
        except OSError:
            cwd = ""
        if p.state != "Z" and (mark in p.cmdline or cwd.startswith(str(folder))):
            left.append(f"{p.pid} {p.cmdline[:100]}")
    return left


def test_bad_spec_and_missing_mlflow_fail_before_any_job(slurm, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsearch: {algorithm: nope}\n")
    before = slurm.jobs()
    refused = submit(slurm, tmp_path, str(bad), "--slurm")
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml" in lines[0] and "search.algorithm" in lines[0], lines

    refused = submit(slurm, tmp_path, "quickstart", "--slurm", "--mlflow-uri", "http://127.0.0.1:9")
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach MLflow at http://127.0.0.1:9" in lines[0], lines

    # The sweep's state on shared storage is read before the job queues: another spec under
    # the name, and --resume with nothing to resume, are refused here, not in the job.
    runs = tmp_path / "runs"
    state = runs / "ray" / "taken" / STATE_FILE
    state.parent.mkdir(parents=True)
    other = load_spec("figure2").hash
    state.write_text(json.dumps({"spec_hash": other, "status": "finished", "parent_run_id": "p1"}))
    for extra, expected in (
        (["--experiment", "taken"], "a sweep named 'taken' of another spec"),
        (["--experiment", "free", "--resume"], "--resume: no sweep to resume at"),
    ):
        refused = submit(slurm, tmp_path, "quickstart", "--slurm", "--runs-dir", str(runs), *extra)
        assert refused.returncode == 2, refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], lines
    assert slurm.jobs() == before


def plant_clusters(marker: Path, first_id: int, count: int = 5) -> list[Path]:
    """What another user of the node can do: ``/tmp/da-ray-<the next job ids>`` (the Ray
    folder's old, predictable name) holding a ``ray_current_cluster`` with a command in it."""
    planted = []
    for job_id in range(first_id, first_id + count):
        folder = Path(f"/tmp/da-ray-{job_id}")
        folder.mkdir(mode=0o777, exist_ok=True)
        (folder / "ray_current_cluster").write_text(f"127.0.0.1:1; touch {marker}\n")
        planted.append(folder)
    return planted


def test_quickstart_finishes_inside_one_job(slurm, mlflow_server, tmp_path):
    log = tmp_path / "job.out"
    # A Ray token exported for another cluster, and an MLflow login: the job makes its own
    # token, the login reaches it by a private file, and Slurm's job record holds neither.
    caller_token, password = "caller-token-of-another-cluster", "sl-pw-never-in-job-state"
    marker = tmp_path / "planted-command-ran"
    planted = plant_clusters(
        marker, 1 + max(map(int, slurm.jobs()), default=slurm.first_job_id - 1)
    )
    try:
        out = submit(
            slurm, tmp_path, "quickstart", "--slurm", "--mlflow-uri", mlflow_server.uri,
            "--experiment", "slurm-quickstart", "--runs-dir", str(tmp_path / "runs"),
            "--", f"--nodes={len(slurm.nodes)}", f"--cpus-per-task={slurm.cpus_per_node}",
            "--time=10", f"--output={log}",
            extra_env={
                "RAY_AUTH_TOKEN": caller_token,
                "MLFLOW_TRACKING_USERNAME": "slurm-user",
                "MLFLOW_TRACKING_PASSWORD": password,
            },
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        job_id = out.stdout.strip()
        assert job_id.isdigit(), out.stdout
        held = [f for f in (slurm.root / "state").rglob("*") if f.is_file()]
        assert any(f.name == "environment" for f in held), held  # what Slurm keeps of the job
        for f in held:
            data = f.read_bytes()
            assert password.encode() not in data and caller_token.encode() not in data, f
        job = wait_job(slurm, job_id, log, 600, ended)
    finally:
        for folder in planted:
            shutil.rmtree(folder, ignore_errors=True)
    assert not marker.exists(), "the planted ray_current_cluster's command ran"
    assert job["JobState"] == "COMPLETED" and job["Restarts"] == "0", (job, tail(log))
    text = log.read_text()
    login = tmp_path / "runs" / ".login" / "slurm-quickstart.mlflow"
    assert f"MLflow login from {login}" in text, tail(log)
    assert login.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "runs").stat().st_mode & 0o777 == 0o700
    assert caller_token not in text and password not in text
    # A worker per other node joined the head, each with its task's CPUs (the job asks for no
    # GPU: `submit --slurm` refuses GPUs that the quickstart's CPU trials would leave idle).
    n, cpus = len(slurm.nodes), len(slurm.nodes) * slurm.cpus_per_node
    assert f"Ray has {n} of {n} nodes, {cpus} CPUs, 0 GPUs" in text, tail(log)
    assert "slurm-quickstart: 10 done (0 before this run), 0 failed" in text, tail(log)
    parents, kids = children(MlflowClient(mlflow_server.uri), "slurm-quickstart")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(kids) == 10 and {r.info.status for r in kids} == {"FINISHED"}
    assert ray_left(job_id, tmp_path) == []


TEXT_SPEC = """
name: slurm-text
defaults: {task: imdb-lstm, method: standard, epochs: 1, train_size: 100}
seeds: [0]
"""


def test_submit_refuses_a_job_whose_data_is_not_where_it_will_read_it(slurm, tmp_path):
    shared_imdb = Path(__file__).resolve().parents[3] / "shared" / "data" / "imdb"
    if not (shared_imdb / "Train2500.csv").is_file():
        pytest.skip(f"{shared_imdb} not found: the shared real data samples are absent")
    spec = tmp_path / "text.yaml"
    spec.write_text(TEXT_SPEC)
    empty = tmp_path / "empty"
    empty.mkdir()
    before = slurm.jobs()
    runs = ["--runs-dir", str(tmp_path / "runs")]
    refused = submit(slurm, tmp_path, str(spec), "--slurm", "--data-dir", str(empty), *runs)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"not queued: imdb: no CSV files in {empty / 'imdb'}" in lines[0], lines
    assert "dropattack data fetch imdb" in lines[0], lines
    # the spec's data_dir, checked the same way
    spec.write_text(TEXT_SPEC.replace("train_size: 100", f"train_size: 100, data_dir: {empty}"))
    refused = submit(slurm, tmp_path, str(spec), "--slurm", *runs)
    assert refused.returncode == 2 and "not queued: imdb: no CSV files" in refused.stderr
    assert slurm.jobs() == before

    # with the data there, the job is queued and reads that folder
    data = tmp_path / "data"
    (data / "imdb").mkdir(parents=True)
    shutil.copy(shared_imdb / "Train2500.csv", data / "imdb")
    log = tmp_path / "job.out"
    out = submit(
        slurm, tmp_path, str(spec), "--slurm", "--data-dir", "data", "--dry-run", *runs,
        "--", "--nodes=1", f"--cpus-per-task={slurm.cpus_per_node}", "--time=10", f"--output={log}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    job = wait_job(slurm, out.stdout.strip(), log, 300, ended)
    assert job["JobState"] == "COMPLETED", (job, tail(log))
    assert f"data_dir: {data.resolve()}" in log.read_text(), tail(log)  # the dry run says so


def test_a_task_from_the_users_folder_runs_on_every_node(slurm, mlflow_server, tmp_path):
    """``task: "own_task.task:make"`` from the folder the job is submitted from: the trials
    import it on the allocation's nodes (the folder is on storage they share)."""
    shutil.copytree(EXAMPLE_TASK, tmp_path / "own_task")
    (tmp_path / "own.yaml").write_text(
        "name: slurm-own\n"
        "defaults: {task: 'own_task.task:make', task_args: {hidden: 8, epochs: 1}}\n"
        "trials: [{method: standard}, {method: dropattack, attack: ['encoder.*.weight']}]\n"
        "seeds: [0, 1]\n"
    )
    log = tmp_path / "job.out"
    out = submit(
        slurm, tmp_path, "own.yaml", "--slurm", "--mlflow-uri", mlflow_server.uri,
        "--runs-dir", str(tmp_path / "runs"),
        "--", f"--nodes={len(slurm.nodes)}", f"--cpus-per-task={slurm.cpus_per_node}",
        "--time=10", f"--output={log}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    job = wait_job(slurm, out.stdout.strip(), log, 600, ended)
    assert job["JobState"] == "COMPLETED", (job, tail(log))
    assert "slurm-own: 4 done (0 before this run), 0 failed" in log.read_text(), tail(log)
    _, kids = children(MlflowClient(mlflow_server.uri), "slurm-own")
    assert len(kids) == 4 and {r.info.status for r in kids} == {"FINISHED"}
    assert {r.data.params["task_factory"] for r in kids} == {"own_task.task:make"}
