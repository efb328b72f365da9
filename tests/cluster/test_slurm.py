"""Sweeps on a real Slurm: the shipped batch script, submitted by ``dropattack submit --slurm``.

A Slurm of our own (:mod:`tests.slurm`: two nodes of one CPU each on this machine) runs the
jobs, which span both nodes; MLflow is the session's real ``mlflow server``. The checks:

- a spec that does not validate, an MLflow server that does not answer, another spec's sweep
  under the name and a resume with nothing to resume are refused with one line before
  anything reaches Slurm (no job appears);
- the quickstart sweep finishes inside one job: Ray over the allocation (the head on the
  first node, a worker joined from the second, one CPU and one GPU each as Slurm granted,
  the GPU /dev/null to Slurm), the ten trials FINISHED in MLflow under one parent
  run, no Ray process left after the job;
- a sweep cut by its time limit: once the sweep is under way (the cheap standard trial
  finished, a costly DropAttack-3 trial past its third epoch, three more queued) the test shortens
  the job's limit with ``scontrol update TimeLimit=`` to the next whole minute at least
  ``WARN_S - 60`` s away, so that ``--signal=B:USR1@WARN_S`` is due at once; Slurm's own
  time-limit machinery then signals the batch script at its next periodic check (every 30
  s), the sweep stops gracefully and the job requeues itself. Shortening the limit at a
  known point of the sweep, rather than submitting with a one-minute limit, keeps the test
  independent of the machine's speed (Ray's start alone takes 10 to 40 s here), and the work
  left at the cut (about 90 s on two idle CPUs, more under load) outlasts the signal's 30 s
  of latency, so a quiet machine cannot finish the sweep first (with four trials of 15 s,
  one did). The requeued run resumes the sweep; once it has finished a trial of its own, the
  test cancels it as a user would (``scancel --batch --signal=TERM``): the sweep stops the
  same way, the job is not requeued, and its log names ``dropattack submit SPEC --slurm
  --resume``, which the test then runs; that job finishes the sweep. MLflow ends with
  exactly one FINISHED child run per trial (0 lost, 0 duplicated) with every epoch, the
  trials the stopped runs finished were not trained again, and the stopped ones continued
  from their checkpoints.

Slurm holds a requeued job for about two minutes before it may start again; the test lifts
that hold (``scontrol update StartTime=now``) once the first run has left the nodes and a
second has passed, which only saves the idle wait: the hold keeps the new run's job
credential apart from the one each node revoked when it ended the first run (with the same
job id, in whole seconds); released sooner, the launch is refused and the job ends without
the requeued run printing a line. The cut comes once a running trial has logged
``CUT_AFTER`` epochs, whatever the machine's speed, so that the stopped trials have
checkpoints to continue from.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from sweeps.execution.state import STATE_FILE
from sweeps.records.tracking import TAG
from sweeps.specs.load import load_spec
from sweeps.specs.space import expand_grid
from tests.procutil import processes
from tests.slurm import SlurmCluster, SlurmUnavailable, start_slurm

EXAMPLE_TASK = Path(__file__).resolve().parents[2] / "docs" / "examples" / "own-task" / "own_task"

VENV_BIN = Path(sys.executable).parent
CUT_EPOCHS = 20  # DropAttack-3: 7 passes a step, 2.4 s an epoch here when quiet
CUT_AFTER = 3  # epochs a running trial has logged when the cut comes (at least)
WARN_S = 180  # --signal=B:USR1@180, due at once: the sweep has at least 120 s to stop
# Two trials at once whatever the machine: the work left at the cut must outlast the signal.
CUT_SPEC = """
name: {name}
defaults: {{task: digits-lenet5, epochs: 1}}
trials:
  - {{method: standard}}
  - {{method: dropattack, attack: [Input, Conv.1.w], k: 3, epochs: {epochs}}}
space: {{eps: [1, 5], p: [0.3, 0.5]}}
seeds: [0]
resources: {{cpus: 1, max_concurrent: 2, max_failures: 1}}
"""


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
    planted = plant_clusters(marker, 1 + max(map(int, slurm.jobs()), default=0))
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


def test_time_limit_requeues_cancel_stops_each_trial_once(slurm, mlflow_server, tmp_path):
    name = "slurm-cut"
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(textwrap.dedent(CUT_SPEC.format(name=name, epochs=CUT_EPOCHS)))
    trials = expand_grid(load_spec(spec))
    assert len(trials) == 5, trials  # the standard trial and four DropAttack-3 ones
    log = tmp_path / "job.out"
    out = submit(
        slurm, tmp_path, str(spec), "--slurm", "--mlflow-uri", mlflow_server.uri,
        "--runs-dir", str(tmp_path / "runs"),
        "--", f"--nodes={len(slurm.nodes)}", f"--cpus-per-task={slurm.cpus_per_node}",
        "--time=15", f"--signal=B:USR1@{WARN_S}",
        f"--output={log}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    client = MlflowClient(mlflow_server.uri)

    def under_way(job: dict) -> bool:
        assert not ended(job), f"the job ended before the cut:\n{tail(log)}"
        kids = children(client, name)[1]
        running = [r for r in kids if r.info.status == "RUNNING"]
        return any(r.info.status == "FINISHED" for r in kids) and any(
            len(epoch_steps(client, r)) >= CUT_AFTER for r in running
        )

    job = wait_job(slurm, job_id, log, 360, under_way)
    # The shortest whole-minute limit at least WARN_S - 60 s away: the signal is due now.
    elapsed = _seconds(job["RunTime"])
    limit_min = -(-(elapsed + WARN_S - 60) // 60)
    slurm.run("scontrol", "update", f"JobId={job_id}", f"TimeLimit={limit_min}")

    # The first run: signalled before its limit, stopped, requeued (pending, one restart).
    wait_job(
        slurm,
        job_id,
        log,
        240,
        lambda j: (j.get("Restarts"), j.get("JobState")) == ("1", "PENDING"),
    )
    first = log.read_text()
    assert "SIGUSR1: stopping the sweep" in first, tail(log)
    assert "requeueing job" in first and "TIME LIMIT" not in first, tail(log)
    _, kids = children(client, name)
    finished_first = {
        r.data.tags[TAG["trial_key"]]: r.info.end_time for r in kids if r.info.status == "FINISHED"
    }
    assert 1 <= len(finished_first) < len(trials), "the cut came too late"
    assert not [r for r in kids if r.info.status == "RUNNING"], "a trial left RUNNING"
    # Epochs the stopped trials had logged: they continue from their checkpoints, not anew.
    cut_epochs = {
        r.data.tags[TAG["trial_key"]]: len(epoch_steps(client, r))
        for r in kids
        if r.info.status == "KILLED"
    }
    assert max(cut_epochs.values(), default=0) >= CUT_AFTER, cut_epochs
    assert ray_left(job_id, tmp_path) == []
    # Lift Slurm's hold only once the first run is gone from the nodes (its batch and Ray
    # steps ended, the nodes idle), and not within the same second: the requeued run has the
    # same job id, and each slurmd revoked the first run's credential when it ended it, with
    # a time in whole seconds; a launch whose new credential bears that same second (or
    # comes before a busy node has ended the first run) is refused as revoked, and the job
    # ends without the new run printing a line. Slurm's own hold on a requeued job (the one
    # lifted here) exists to keep that apart.
    wait_until(lambda: first_run_gone(slurm, job_id), 120, lambda: slurm.logs())
    time.sleep(2)
    slurm.run("scontrol", "update", f"JobId={job_id}", "StartTime=now", "TimeLimit=15")

    # The requeued run resumes the sweep; once it has finished a trial of its own it is
    # cancelled as a user cancels (SIGTERM to the batch script): it stops the same way but
    # does not requeue, and says how to go on.
    def progressing(job: dict) -> bool:
        assert not ended(job), (
            f"the requeued run ended before the cancel:\n{job}\n{tail(log)}\n{slurm.logs()}"
        )
        done = [r for r in children(client, name)[1] if r.info.status == "FINISHED"]
        return len(done) > len(finished_first)

    wait_job(slurm, job_id, log, 600, progressing)
    slurm.run("scancel", "--batch", "--signal=TERM", job_id)
    job = wait_job(slurm, job_id, log, 240, ended)
    assert job["Restarts"] == "1", (job, tail(log))
    second = log.read_text().split("(run 2)", 1)[-1]
    assert "--resume" in second, tail(log)
    assert "SIGTERM: stopping the sweep" in second and "requeueing" not in second, tail(log)
    assert f"resume with: dropattack submit {spec.resolve()} --slurm --resume" in second, tail(log)
    _, kids = children(client, name)
    finished_second = {
        r.data.tags[TAG["trial_key"]]: r.info.end_time for r in kids if r.info.status == "FINISHED"
    }
    assert len(finished_second) < len(trials), "the cancel came too late"
    assert not [r for r in kids if r.info.status == "RUNNING"], "a trial left RUNNING"
    assert ray_left(job_id, tmp_path) == []

    # `submit --resume`, as the log said: a new job finishes the sweep.
    out = submit(
        slurm, tmp_path, str(spec), "--slurm", "--mlflow-uri", mlflow_server.uri,
        "--runs-dir", str(tmp_path / "runs"), "--resume",
        "--", f"--nodes={len(slurm.nodes)}", f"--cpus-per-task={slurm.cpus_per_node}",
        "--time=15", f"--output={log}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    resumed_id = out.stdout.strip()
    job = wait_job(slurm, resumed_id, log, 600, ended)
    assert job["JobState"] == "COMPLETED", (job, tail(log), slurm.logs())
    third = log.read_text().split(f"job {resumed_id} (run 1)", 1)[-1]
    assert "--resume" in third, tail(log)
    # All done, none failed. (A trial can finish in MLflow while a run stops, before Tune
    # hears of it: the next run then finds its FINISHED run and skips it.)
    assert f"{name}: {len(trials)} done (" in third, tail(log)
    assert ", 0 failed, 0 stopped early, 0 unfinished" in third, tail(log)

    parents, kids = children(client, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert Counter(r.data.tags[TAG["trial_key"]] for r in kids) == Counter(t["key"] for t in trials)
    for run in kids:
        assert run.info.status == "FINISHED", (run.info.run_name, run.data.tags)
        steps = epoch_steps(client, run)
        epochs = int(run.data.params["epochs"])
        assert sorted(set(steps)) == list(range(1, epochs + 1)), (run.info.run_name, steps)
        # From its last checkpoint: at most the epoch under way at each of the two stops is
        # trained twice (anew, it would repeat every epoch it had logged at the cut).
        if cut_epochs.get(run.data.tags[TAG["trial_key"]], 0) >= 3:
            assert len(steps) <= epochs + 2, (run.info.run_name, "restarted from scratch", steps)
    end_times = {r.data.tags[TAG["trial_key"]]: r.info.end_time for r in kids}
    for key, end in {**finished_first, **finished_second}.items():
        assert end_times[key] == end, f"{key} was trained again after a stop"
    assert ray_left(resumed_id, tmp_path) == []


def first_run_gone(slurm: SlurmCluster, job_id: str) -> bool:
    """No ``slurmstepd`` of the job left on this machine, and every node idle."""
    steps = [p for p in processes().values() if f"slurmstepd: [{job_id}." in p.cmdline]
    idle = slurm.run("sinfo", "--noheader", "--Node", "--format=%t", check=False).split()
    return not steps and idle == ["idle"] * len(slurm.nodes)


def wait_until(ready, timeout: float, why) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"not ready after {timeout:.0f}s:\n{why()}")
        time.sleep(1)


def epoch_steps(client: MlflowClient, run) -> list[int]:  # noqa: ANN001
    """The epochs a trial's MLflow run logged, repeats included."""
    return [m.step for m in client.get_metric_history(run.info.run_id, "epoch_val_acc")]


def _seconds(runtime: str) -> int:
    """Slurm's ``[D-]HH:MM:SS`` (or ``MM:SS``) as seconds."""
    days, _, clock = runtime.rpartition("-")
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return total + int(days or 0) * 86400


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
