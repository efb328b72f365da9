"""A sweep stopped before its time limit requeues itself, resumes, and is resumed by hand.

The job is ``dropattack submit SPEC --slurm`` on the test Slurm (:mod:`tests.slurm`, a Slurm
of this module's own), logging to the session's real ``mlflow server``. The sweep: a cheap
standard trial and four DropAttack-3 trials of ``CUT_EPOCHS`` epochs, two at a time.

1. Once the sweep is under way (the standard trial finished, a DropAttack trial past
   ``CUT_AFTER`` epochs) the batch script gets SIGUSR1 from Slurm (``scancel --batch
   --signal=USR1``), the signal the shipped script asks Slurm to send before the time limit
   (``#SBATCH --signal=B:USR1@300``). The sweep stops gracefully and the job requeues itself.
   Sending it at a known point of the sweep, rather than waiting for a limit, keeps the test
   independent of the machine's speed and of Slurm's 30 s time-limit check.
2. The requeued run starts once the test lifts Slurm's hold on a requeued job (``scontrol
   update StartTime=now``), resumes the sweep from Tune's state, and, once it has finished a
   trial of its own, is cancelled as a user cancels (SIGTERM to the batch script): it stops
   the same way, is not requeued, and names ``dropattack submit SPEC --slurm --resume``.
3. That command, run next, finishes the sweep in a new job.

MLflow ends with exactly one FINISHED child run per trial (0 lost, 0 duplicated) with every
epoch; the trials the stopped runs finished were not trained again, and the stopped ones
continued from their checkpoints. No Ray process is left after any run.

Slurm holds a requeued job (about two minutes) before it may start again. The test lifts that
hold (``scontrol update StartTime=now``) once no ``slurmstepd`` of the first run remains and
``RELEASE_AFTER_S`` more have passed. Sooner, it fails: when each node ended the first run it
revoked that job id's credential with a time in whole seconds, and a new run whose credential
bears the same second is refused. Measured on a quiet machine, released 0.4 s after the first
run ended: slurmctld "Killing non-startable batch JobId=...: Job credential revoked", slurmd
"Job ... already killed, do not launch batch job", and the job FAILED without the new run
printing a line. Slurm's own hold is what keeps a real job clear of this.
"""

from __future__ import annotations

import textwrap
import time
from collections import Counter

from mlflow import MlflowClient

from sweeps.records.tracking import TAG
from sweeps.specs.load import load_spec
from sweeps.specs.space import expand_grid
from tests.cluster.test_slurm import (  # noqa: F401 - slurm is a fixture
    SlurmCluster,
    children,
    ended,
    ray_left,
    slurm,
    submit,
    tail,
    wait_job,
)
from tests.procutil import processes

CUT_EPOCHS = 10  # DropAttack-3: 7 passes a step, about 2.4 s an epoch on an idle CPU
CUT_AFTER = 3  # epochs a running trial has logged when the signal comes (at least)
RELEASE_AFTER_S = 2  # past the second in which the first run ended (see above)
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


def test_time_limit_requeues_cancel_stops_each_trial_once(slurm, mlflow_server, tmp_path):  # noqa: F811
    name = "slurm-cut"
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(textwrap.dedent(CUT_SPEC.format(name=name, epochs=CUT_EPOCHS)))
    trials = expand_grid(load_spec(spec))
    assert len(trials) == 5, trials  # the standard trial and four DropAttack-3 ones
    log = tmp_path / "job.out"
    job_args = [f"--nodes={len(slurm.nodes)}", f"--cpus-per-task={slurm.cpus_per_node}"]
    out = submit(
        slurm, tmp_path, str(spec), "--slurm", "--mlflow-uri", mlflow_server.uri,
        "--runs-dir", str(tmp_path / "runs"), "--", *job_args, "--time=15", f"--output={log}",
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

    wait_job(slurm, job_id, log, 360, under_way)
    slurm.run("scancel", "--batch", "--signal=USR1", job_id)

    # The first run: stopped, requeued (pending, one restart).
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
    assert 1 <= len(finished_first) < len(trials), "the signal came too late"
    assert not [r for r in kids if r.info.status == "RUNNING"], "a trial left RUNNING"
    # Epochs the stopped trials had logged: they continue from their checkpoints, not anew.
    cut_epochs = {
        r.data.tags[TAG["trial_key"]]: len(epoch_steps(client, r))
        for r in kids
        if r.info.status == "KILLED"
    }
    assert max(cut_epochs.values(), default=0) >= CUT_AFTER, cut_epochs
    assert ray_left(job_id, tmp_path) == []
    wait_until(lambda: first_run_gone(slurm, job_id), 120, lambda: slurm.logs())
    time.sleep(RELEASE_AFTER_S)
    slurm.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")

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
        "--", *job_args, "--time=15", f"--output={log}",
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


def first_run_gone(cluster: SlurmCluster, job_id: str) -> bool:
    """No ``slurmstepd`` of the job left on this machine, and every node idle."""
    steps = [p for p in processes().values() if f"slurmstepd: [{job_id}." in p.cmdline]
    idle = cluster.run("sinfo", "--noheader", "--Node", "--format=%t", check=False).split()
    return not steps and idle == ["idle"] * len(cluster.nodes)


def wait_until(ready, timeout: float, why) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {timeout:.0f}s:\n{why()}")
        time.sleep(1)


def epoch_steps(client: MlflowClient, run) -> list[int]:  # noqa: ANN001
    """The epochs a trial's MLflow run logged, repeats included."""
    return [m.step for m in client.get_metric_history(run.info.run_id, "epoch_val_acc")]
