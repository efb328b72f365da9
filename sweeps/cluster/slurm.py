"""Sweeps on a Slurm allocation: check, then submit the batch script with ``sbatch``.

The batch script (:data:`SCRIPT`, ``sweeps/slurm.sbatch``; users copy and edit it) builds a
Ray cluster over the allocation, runs ``dropattack sweep``, stops it gracefully before the
time limit and requeues itself so that the next run resumes it. This module is the login
node's half, behind ``dropattack submit SPEC --slurm``: everything that can fail without a
GPU is checked before any allocation is spent (the spec validates, the MLflow server answers
or the local store's folder can be made, ``sbatch`` and the script exist), and the sweep's
settings reach the job as environment variables (:func:`job_environment`), never on a
command line. sbatch passes on only the variables of :data:`EXPORTED` (``--export`` with a
list of names), as Slurm keeps a job's environment in its job record: the MLflow login
(``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``) goes instead into a file only its owner can
read, in the runs folder (:func:`write_login`), whose path the job gets; the Ray token is
made new by the job itself.
"""

from __future__ import annotations

import os
import re
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
    "EXPORTED",
    "LOGIN",
    "LOGIN_ENV",
    "SCRIPT",
    "SlurmError",
    "SlurmSweep",
    "gpu_request",
    "idle_gpus_problem",
    "job_environment",
    "resolve",
    "submit",
    "write_login",
]

#: The batch script shipped with the project.
SCRIPT = Path(__file__).resolve().parents[1] / "slurm.sbatch"
#: The MLflow login, forwarded through a private file rather than the job's environment.
LOGIN = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
#: The variable that names the login file for the job.
LOGIN_ENV = "DROPATTACK_MLFLOW_LOGIN"
#: What sbatch passes on to the job (``--export``): where the software is, the locale, the
#: Slurm client's configuration, the MLflow server and the script's settings. Nothing secret.
EXPORTED = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "PYTHONPATH", "LD_LIBRARY_PATH",
    "CUDA_HOME", "SLURM_CONF", "MLFLOW_TRACKING_URI", "DROPATTACK_SPEC", "DROPATTACK_EXPERIMENT",
    "DROPATTACK_RUNS_DIR", "DROPATTACK_RESUME", "DROPATTACK_SWEEP_ARGS", LOGIN_ENV,
)  # fmt: skip
_EXPORT_OPTION = re.compile(r"^--export(=|$)")


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


def write_login(runs_dir: Path, experiment: str, environ: Mapping[str, str]) -> Path | None:
    """Write ``environ``'s MLflow login (username, then password, one line each) to a file
    of mode 0600 in ``runs_dir/.login`` (mode 0700); its path, or None when no login is set.

    Raises:
        SlurmError: a value with a line break, which the file cannot hold.
    """
    values = [environ.get(name, "") for name in LOGIN]
    if not any(values):
        return None
    for name, value in zip(LOGIN, values, strict=True):
        if "\n" in value or "\r" in value:
            raise SlurmError(f"{name}: a value with a line break cannot be forwarded")
    folder = runs_dir / ".login"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / f"{experiment}.mlflow"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{v}\n" for v in values))
    return path


def job_environment(sweep: SlurmSweep, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``sbatch`` runs with: ``base`` (default: this process's) plus the
    ``DROPATTACK_*`` settings of the script. sbatch passes on only :data:`EXPORTED` of it."""
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
    for arg in sbatch_args:
        if _EXPORT_OPTION.match(arg):
            raise SlurmError(
                f"sbatch option {arg}: the job's environment is chosen by submit (Slurm keeps "
                "it in the job record); set variables in the batch script instead"
            )
    probe(sweep.mlflow_uri)
    path = Path(script) if script else SCRIPT
    if not path.is_file():
        raise SlurmError(f"--script: no batch script at {path}")
    env = job_environment(sweep, base_env)
    for name in LOGIN:
        env.pop(name, None)
    env.pop(LOGIN_ENV, None)
    login = write_login(
        sweep.runs_dir, sweep.experiment, os.environ if base_env is None else base_env
    )
    if login is not None:
        env[LOGIN_ENV] = str(login)
    sbatch = shutil.which("sbatch", path=env.get("PATH"))
    if sbatch is None:
        raise SlurmError("sbatch not found: run this on a Slurm login node (or put sbatch on PATH)")
    try:
        done = subprocess.run(
            [sbatch, "--parsable", *sbatch_args, "--export=" + ",".join(EXPORTED), str(path)],
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
