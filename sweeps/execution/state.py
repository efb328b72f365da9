"""A sweep's state on disk and its resume rules.

Each sweep has a folder under ``RUNS_DIR/ray/`` (Tune's experiment folder) holding
:data:`STATE_FILE`: the spec's hash, the MLflow parent run, the Optuna study and, once finished,
the summary. Running a spec again reads it: the same spec resumes, another spec under the same
name is refused, a finished sweep reports its summary without starting Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.specs.names import name_problem
from sweeps.specs.spec import Spec

__all__ = [
    "STATE_FILE",
    "SweepError",
    "SweepPaths",
    "archive",
    "check_experiment",
    "check_resume",
    "check_state",
    "make_private",
    "read_state",
    "resume_same_spec",
    "write_state",
]

STATE_FILE = "dropattack.json"


class SweepError(RuntimeError):
    """The sweep cannot start or continue as asked (nothing to resume, a changed spec, ...)."""


@dataclass(frozen=True)
class SweepPaths:
    """Where a sweep's local files go under the runs folder (``--runs-dir``)."""

    root: Path

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def optuna_db(self) -> Path:
        return self.root / "optuna.db"

    @property
    def ray(self) -> Path:
        return self.root / "ray"


def make_private(folder: Path) -> None:
    """Create ``folder`` (mode 0700), or take group and other access off one this user owns.

    The runs folder is trusted: a resumed sweep unpickles Tune's ``tuner.pkl`` from it, so
    whoever can write there can run code as the next user who resumes.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        folder.chmod(st.st_mode & 0o700)


def check_experiment(experiment: str) -> None:
    """The experiment joins the runs folder, which it may not leave (the CLI checks it too)."""
    problem = name_problem(experiment)
    if problem:
        raise SweepError(f"--experiment: {problem}")


def check_state(
    spec: Spec,
    runs_dir: str | Path,
    *,
    experiment: str | None = None,
    resume: bool = False,
    mlflow_uri: str | None = None,
) -> None:
    """The checks the driver makes of the sweep's state folder, without running it: for a
    submitter that must refuse before a job waits in a queue (``submit --slurm``).

    Raises:
        SweepError: a bad experiment name; another spec, or an unfinished sweep that may still
            be running, under this name; with ``resume``, nothing to resume, a changed spec or
            another MLflow store than the sweep's.
    """
    name = experiment or spec.name
    check_experiment(name)
    exp_dir = SweepPaths(Path(runs_dir).resolve()).ray / name
    state = read_state(exp_dir)
    if resume:
        check_resume(state, exp_dir, spec, mlflow_uri)
    elif state is not None:
        resume_same_spec(state, exp_dir, spec)


def read_state(folder: Path) -> dict[str, Any] | None:
    """The sweep's state in ``folder``, or ``None`` when it has none."""
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Replace the sweep's state in ``folder`` at once (a reader never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(folder / STATE_FILE)


def resume_same_spec(
    state: dict[str, Any],
    exp_dir: Path,
    spec: Spec,
    status: Callable[[str], None] | None = None,
) -> None:
    """A sweep of this name ran before: the same spec is resumed (the caller turns ``resume``
    on, and ``status`` hears so); another spec under the same name, or a sweep that may still
    be running, is refused.

    Raises:
        SweepError: another spec under the name, or a sweep that did not finish.
    """
    parent = state.get("parent_run_id", "?")
    if state.get("spec_hash") != spec.hash:
        raise SweepError(
            f"a sweep named {exp_dir.name!r} of another spec (hash "
            f"{str(state.get('spec_hash'))[:12]}, this one {spec.hash[:12]}; MLflow parent run "
            f"{parent}) is at {exp_dir}; run this spec under a new name with --experiment "
            "NAME, or continue that sweep with --resume and its own spec"
        )
    if state.get("status") == "running":
        raise SweepError(
            f"a sweep named {exp_dir.name!r} at {exp_dir} did not finish (it is still running, "
            "or its driver was killed); continue it with --resume, start another with "
            f"--experiment NAME, or delete {exp_dir}"
        )
    if status is not None:
        done = state.get("status") == "finished"
        status(
            f"{exp_dir.name}: the same spec ran before (MLflow parent run {parent}, "
            + ("finished): nothing to run" if done else f"{state.get('status')}): resuming it")
            + "; a new sweep of it needs --experiment NAME"
        )


def check_resume(
    state: dict[str, Any] | None, exp_dir: Path, spec: Spec, mlflow_uri: str | None = None
) -> None:
    """``--resume`` of the sweep at ``exp_dir``: there is one, of this spec, on this store.

    Raises:
        SweepError: nothing to resume, a changed spec, or another MLflow store than the sweep's.
    """
    if state is None or not (exp_dir / "tuner.pkl").exists():
        raise SweepError(
            f"--resume: no sweep to resume at {exp_dir}; run it without --resume first "
            "(or name it with --experiment)"
        )
    if state["spec_hash"] != spec.hash:
        raise SweepError(
            f"--resume: spec {spec.name!r} changed since the sweep at {exp_dir} started "
            f"(hash {state['spec_hash'][:12]} -> {spec.hash[:12]}); resume with the same spec, "
            "or start a new sweep with --experiment NAME"
        )
    if mlflow_uri and mlflow_uri != state["tracking_uri"]:
        raise SweepError(
            f"--resume: the sweep at {exp_dir} logs to {state['tracking_uri']}, not {mlflow_uri}"
        )


def archive(state: dict[str, Any] | None, exp_dir: Path) -> None:
    """Keep a finished sweep's Tune folder aside; refuse to overwrite an unfinished one."""
    if state is not None and state.get("status") != "finished":
        raise SweepError(
            f"a sweep named {exp_dir.name!r} at {exp_dir} did not finish; continue it with "
            f"--resume, start another with --experiment NAME, or delete {exp_dir}"
        )
    suffix = (state or {}).get("parent_run_id", "")[:8] or time.strftime("%Y%m%d-%H%M%S")
    target = exp_dir.with_name(f"{exp_dir.name}.{suffix}")
    n = 1
    while target.exists():
        target = exp_dir.with_name(f"{exp_dir.name}.{suffix}.{n}")
        n += 1
    shutil.move(str(exp_dir), str(target))
