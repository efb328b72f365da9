"""Sweeps on a Slurm allocation: check, then submit the batch script with ``sbatch``.

The batch script (:data:`SCRIPT`, ``sweeps/slurm.sbatch``; users copy and edit it) builds a
Ray cluster over the allocation, runs ``dropattack sweep``, stops it gracefully before the
time limit and requeues itself so that the next run resumes it. This module is the login
node's half, behind ``dropattack submit SPEC --slurm``: everything that can fail without a
GPU is checked before any allocation is spent (the spec validates, the MLflow server answers
or the local store's folder can be made, ``sbatch`` and the script exist), and the sweep's
settings reach the job as environment variables (:func:`job_environment`), never on a
command line; so do the MLflow credentials, as sbatch passes the submitting environment on.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sweeps.cluster.redact import uri_credentials
from sweeps.records.store import probe, sqlite_uri
from sweeps.specs.spec import Spec

__all__ = [
    "SCRIPT",
    "SlurmError",
    "SlurmSweep",
    "gpu_request",
    "idle_gpus_problem",
    "job_environment",
    "resolve",
    "submit",
]

#: The batch script shipped with the project.
SCRIPT = Path(__file__).resolve().parents[1] / "slurm.sbatch"


class SlurmError(RuntimeError):
    """Slurm cannot take the job (no ``sbatch`` here, a missing script, sbatch refused it)."""


@dataclass
class SlurmSweep:
    """What the batch script runs: ``dropattack sweep SPEC`` and its flags.

    Attributes:
        spec: a spec name, or the absolute path of a spec file (the job may start elsewhere).
        experiment: the sweep's name (its MLflow experiment and state folder).
        runs_dir: absolute sweep state folder, on storage every node of the cluster mounts.
        mlflow_uri: the tracking server (or ``sqlite:///`` store) the trials log to.
        resume: continue the sweep of this name (a requeued job resumes by itself).
        sweep_args: further ``dropattack sweep`` flags (``--max-concurrent 2``, ...).
    """

    spec: str
    experiment: str
    runs_dir: Path
    mlflow_uri: str
    resume: bool = False
    sweep_args: list[str] = field(default_factory=list)


_GPU_OPTIONS = ("--gpus", "--gpus-per-node", "--gpus-per-task", "--gpus-per-socket", "-G")


def gpu_request(sbatch_args: Sequence[str]) -> str | None:
    """The sbatch option that asks for GPUs (``--gres=gpu:4``, ``--gpus=2``, ``-G 1``), as
    written; ``None`` when the job asks for none."""
    args = list(sbatch_args)
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if not eq and i + 1 < len(args) and name in ("--gres", *_GPU_OPTIONS):
            value = args[i + 1]
            arg = f"{arg} {value}"
        if name == "--gres" and any(g.startswith("gpu") for g in value.split(",")):
            return arg
        if name in _GPU_OPTIONS or (name.startswith("-G") and len(name) > 2):
            return arg
    return None


def idle_gpus_problem(
    spec: Spec, gpus_flag: float | str | None, sbatch_args: Sequence[str]
) -> str | None:
    """One line when the job asks for GPUs that its trials would not use: the spec's
    ``resources.gpus`` (or ``--gpus-per-trial``) is 0, so every trial would train on the CPU."""
    asked = gpu_request(sbatch_args)
    gpus = spec.resources.gpus if gpus_flag is None else gpus_flag
    if asked is None or gpus == "auto" or gpus:
        return None
    where = "--gpus-per-trial 0" if gpus_flag is not None else f"resources.gpus: 0 in {spec.source}"
    return (
        f"the job asks for GPUs ({asked}) but its trials would use none ({where}): set "
        "resources.gpus: auto (or a share such as 0.25) in the spec, or pass --gpus-per-trial "
        "auto; or drop the GPU option"
    )


def job_environment(sweep: SlurmSweep, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``sbatch`` runs with: ``base`` (default: this process's, so MLflow
    credentials pass on by environment) plus the ``DROPATTACK_*`` settings of the script."""
    env = dict(os.environ if base is None else base)
    env.update(
        DROPATTACK_SPEC=sweep.spec,
        DROPATTACK_EXPERIMENT=sweep.experiment,
        DROPATTACK_RUNS_DIR=str(sweep.runs_dir),
        DROPATTACK_RESUME="1" if sweep.resume else "0",
        DROPATTACK_SWEEP_ARGS=shlex.join(sweep.sweep_args),
        MLFLOW_TRACKING_URI=sweep.mlflow_uri,
    )
    return env


def resolve(
    spec: Spec,
    spec_arg: str,
    *,
    experiment: str | None = None,
    runs_dir: str | Path | None = None,
    mlflow_uri: str | None = None,
    resume: bool = False,
    sweep_args: Sequence[str] = (),
) -> SlurmSweep:
    """The job's sweep from the command's values: a spec file becomes an absolute path, the
    runs folder absolute (default ``$DROPATTACK_RUNS_DIR``, else ``./runs``), the MLflow URI
    ``--mlflow-uri``, else ``$MLFLOW_TRACKING_URI``, else sqlite in the runs folder."""
    path = Path(spec_arg)
    spec_ref = str(path.resolve()) if path.suffix in (".yaml", ".yml") else spec_arg
    runs = Path(runs_dir or os.environ.get("DROPATTACK_RUNS_DIR") or "runs").resolve()
    uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or sqlite_uri(runs / "mlflow.db")
    return SlurmSweep(
        spec=spec_ref,
        experiment=experiment or spec.name,
        runs_dir=runs,
        mlflow_uri=uri,
        resume=resume,
        sweep_args=list(sweep_args),
    )


def submit(
    sweep: SlurmSweep,
    *,
    script: str | Path | None = None,
    sbatch_args: Sequence[str] = (),
    base_env: Mapping[str, str] | None = None,
) -> str:
    """Check the MLflow store, then ``sbatch`` the batch script; returns the job id.

    Raises:
        UnreachableError: the MLflow server does not answer (nothing submitted).
        SlurmError: no ``sbatch``, no such script, or sbatch refused the job.
    """
    if uri_credentials(sweep.mlflow_uri):
        raise SlurmError(
            "MLflow URI: credentials in a URI end up in logs and job records; pass them as "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead"
        )
    probe(sweep.mlflow_uri)
    path = Path(script) if script else SCRIPT
    if not path.is_file():
        raise SlurmError(f"--script: no batch script at {path}")
    env = job_environment(sweep, base_env)
    sbatch = shutil.which("sbatch", path=env.get("PATH"))
    if sbatch is None:
        raise SlurmError("sbatch not found: run this on a Slurm login node (or put sbatch on PATH)")
    try:
        done = subprocess.run(
            [sbatch, "--parsable", *sbatch_args, str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        raise SlurmError("sbatch did not answer within 120 s (is slurmctld up?)") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise SlurmError(f"sbatch refused the job: {lines[-1] if lines else done.returncode}")
    return done.stdout.strip().split(";")[0]
