"""Runs a sweep: a Ray Tune ``Tuner`` over a spec's trials, tracked in MLflow, resumable.

- Grids are the explicit list of trials from :func:`sweeps.specs.space.expand_grid`, given to Tune
  as one ``grid_search`` over whole trial dicts: Tune's variant generator yields each exactly
  once, in order, and stops (no sampler that can repeat a point under parallel asks).
- TPE and random search go through ``OptunaSearch`` with a define-by-run space and the study
  in Optuna storage (sqlite under ``runs/`` by default, or the spec's SQLAlchemy URL), so the
  study outlives the driver and opens in optuna-dashboard. Optuna's pruners stay off inside
  Ray; the spec's ``scheduler: asha`` is Ray's ASHA.
- ``--resume`` restores the Tune experiment (``Tuner.restore``) and reopens the same MLflow
  parent run; each trial finds its own child run again by its key, so a trial that finished
  before the interruption is not trained twice and an unfinished one continues from its
  last epoch checkpoint.

With no flags everything is local: Ray on this machine's CPUs, MLflow's sqlite store and
artifacts, the Optuna storage and Tune's experiment folders all under ``./runs``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.cluster import connect
from sweeps.cluster.redact import redact_text, uri_credentials
from sweeps.execution import stopping
from sweeps.execution.state import (
    SweepError,
    SweepPaths,
    archive,
    check_experiment,
    check_resume,
    make_private,
    read_state,
    resume_same_spec,
    write_state,
)
from sweeps.execution.summary import SweepResult, finished, summarize, summary_state
from sweeps.records.store import is_local_store, probe, sqlite_uri
from sweeps.specs.placement import placement, resolve_gpus_here
from sweeps.specs.space import expand_grid
from sweeps.specs.spec import Spec

if TYPE_CHECKING:
    from sweeps.records.tracking import SweepRun

__all__ = ["SweepError", "SweepOptions", "SweepResult", "git_commit", "run_sweep"]

# Tune's console reporter is off (the live view replaces it) and of its loggers only the JSON
# one is kept; a failed trial's last result has no metric (not an error); a snapshot per
# checkpoint is what resume needs (not a warning).
_TUNE_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


@dataclass
class SweepOptions:
    """How to run a spec (the ``dropattack sweep`` flags)."""

    address: str | None = None
    mlflow_uri: str | None = None
    experiment: str | None = None
    resume: bool = False
    max_concurrent: int | None = None
    gpus_per_trial: float | None = None
    runs_dir: str | Path = "runs"
    command: str = ""
    live: bool | None = None
    trainable: Any = (
        None  # a replacement trainable (benchmarks); default sweeps.execution.trainable
    )
    status: Callable[[str], None] | None = None  # hears what the startup seconds go to
    parent_tags: dict[str, str] = field(default_factory=dict)  # extra tags of the parent run
    #: the sweep's :class:`sweeps.cost.plan.Plan`: resources ``auto`` resolved, the live view's ETA,
    #: predicted against actual wall time on the parent run (made here when ``auto`` needs it)
    plan: Any = None
    plan_budget: float = 0.0  # seconds to calibrate a plan when none is given (0: only for auto)
    #: an existing sweep's parent run the trials join as children (a round of added seeds)
    #: instead of a new parent run; its tags and params stay as they are
    attach: str | None = None
    #: the Tune folder and its state, relative to RUNS_DIR/ray (default: the experiment's name)
    folder: str | None = None


def git_commit() -> str:
    """The checkout's commit (``-dirty`` with local changes), or ``""`` outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


# --------------------------------------------------------------------------- checks


def _check_uri(uri: str) -> None:
    """The tracking URI is recorded (sweep state, status lines): no password in it, whether it
    came from --mlflow-uri or from MLFLOW_TRACKING_URI."""
    if uri_credentials(uri) is not None:
        raise SweepError(
            f"--mlflow-uri: credentials in the URI ({redact_text(uri)}) would be recorded; "
            "export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead"
        )


def _check_cluster_store(address: str | None, uri: str) -> None:
    if address and address.startswith("ray://") and is_local_store(uri):
        raise SweepError(
            f"--mlflow-uri: trials on a remote cluster ({address}) cannot write to the local "
            f"store {uri}; start an MLflow server (mlflow server --serve-artifacts) and pass "
            "--mlflow-uri http://HOST:PORT"
        )


# --------------------------------------------------------------------------- ray


@dataclass
class _EndedTrial:
    """A trial as Tune's result grid reports it: what the live view reads of a Tune trial."""

    trial_id: str
    status: str
    last_result: dict[str, Any]
    config: dict[str, Any]


def _ended_trials(grid: Any) -> list[_EndedTrial]:
    return [
        _EndedTrial(
            trial_id=str((r.metrics or {}).get("trial_id") or Path(r.path).name),
            status="ERROR" if r.error else "TERMINATED",
            last_result=dict(r.metrics or {}),
            config=dict(r.config or {}),
        )
        for r in grid
    ]


def _concurrency(cpus: float, gpus: float, limit: int | None) -> int:
    import ray

    res = ray.cluster_resources()
    fits = int(res.get("CPU", 1) // cpus)
    if gpus:
        fits = min(fits, int(res.get("GPU", 0) // gpus))
    fits = max(1, fits)
    return min(fits, limit) if limit else fits


def _max_epochs(spec: Spec, trials: list[dict[str, Any]] | None) -> int:
    from models import tasks

    if trials:
        return max(
            t.get("epochs") or tasks.get(t["task"], t.get("task_args")).epochs for t in trials
        )
    if spec.defaults.epochs:
        return spec.defaults.epochs
    axis = spec.axes().get("epochs")
    if isinstance(axis, list):
        return max(axis)
    if axis is not None:
        return int(axis.high)
    task_axis = spec.axes().get("task")
    names = task_axis if isinstance(task_axis, list) else [spec.defaults.task]
    return max(tasks.get(n, spec.defaults.task_args).epochs for n in names)


def _trial_name(trial: Any) -> str:
    """Tune's name of a trial: its readable name (:mod:`sweeps.specs.names`) and Tune's id."""
    from sweeps.specs.names import trial_name

    cfg = (trial.config or {}).get("trial")
    return f"{trial_name(cfg)} ({trial.trial_id})" if cfg and "task" in cfg else trial.trial_id


def _trial_dirname(trial: Any) -> str:
    """The trial's folder under the experiment's: readable and file-system safe."""
    from sweeps.specs.names import folder_name

    return folder_name((trial.config or {}).get("trial"), trial.trial_id)


def _resources(spec: Spec, opts: SweepOptions) -> tuple[float, float]:
    """CPUs and GPUs per trial: the flags', else the spec's; ``auto`` from the plan. A plan is
    made (and kept in ``opts.plan``) when none was given and ``auto`` needs one or
    ``opts.plan_budget`` asks for one; after the checks of the store and the Ray address."""
    cpus = spec.resources.cpus
    gpus = spec.resources.gpus if opts.gpus_per_trial is None else opts.gpus_per_trial
    if gpus == "auto" and opts.plan is None:  # no GPU: the CPU, with no plan needed for it
        gpus = resolve_gpus_here(gpus) if opts.address is None else _cluster_gpus_or_cpu(spec, opts)
    if opts.plan is None and ("auto" in (cpus, gpus) or opts.plan_budget > 0):
        from sweeps.cost.plan import DEFAULT_BUDGET, make_plan

        opts.plan = make_plan(
            spec,
            address=opts.address,
            gpus_per_trial=opts.gpus_per_trial,
            max_concurrent=opts.max_concurrent,
            budget=opts.plan_budget or DEFAULT_BUDGET,
        )
    if cpus == "auto":
        cpus = opts.plan.cpus_per_trial
    if gpus == "auto":
        gpus = opts.plan.gpus_per_trial
    return float(cpus), float(gpus or 0)


def _cluster_gpus_or_cpu(spec: Spec, opts: SweepOptions) -> float | str:
    """``auto`` where the Ray at ``opts.address`` has GPUs, else 0 (joins that Ray)."""
    import ray

    connect.init_ray(opts.address, spec)
    return "auto" if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def _say_plan(opts: SweepOptions) -> None:
    """The plan's skipped parts and its summary, on the status lines."""
    if opts.status is None or opts.plan is None:
        return
    for line in opts.plan.skipped:
        opts.status(f"plan: skipped {line}")
    opts.status(f"plan: {opts.plan.calibration_seconds:.1f}s of calibration: {opts.plan.summary()}")


# --------------------------------------------------------------------------- run


def run_sweep(spec: Spec, options: SweepOptions | None = None) -> SweepResult:
    """Run (or ``options.resume``) the sweep of ``spec`` and return its summary.

    A sweep of the same name and the same spec (its hash) that ran before is resumed even
    without ``options.resume``, and says so: its finished trials are not trained again and
    its MLflow parent run stays the one run of the sweep. A finished sweep then has nothing
    to run: its summary comes back without starting Ray.

    SIGTERM and SIGUSR1 (a batch scheduler's time limit, cancel or preemption) stop it
    gracefully, like a first Ctrl-C (:mod:`sweeps.execution.stopping`): the result is
    ``interrupted`` and ``--resume`` continues it.

    Raises:
        UnreachableError: the MLflow URI or the Ray address does not answer.
        SweepError: nothing to resume, a changed spec on resume, another spec under the same
            name, or an unfinished sweep of the same name that may still be running.
    """
    with stopping.catching():
        return _run_sweep(spec, options or SweepOptions())


def _run_sweep(spec: Spec, opts: SweepOptions) -> SweepResult:
    t_start = time.perf_counter()
    asked_to_resume = opts.resume  # before a same-spec rerun turns resume on
    for k, v in _TUNE_ENV.items():
        os.environ.setdefault(k, v)
    paths = SweepPaths(Path(opts.runs_dir).resolve())
    experiment = opts.experiment or spec.name
    check_experiment(experiment)
    make_private(paths.root)  # trusted: resume unpickles Tune's state from it
    exp_dir = paths.ray / (opts.folder or experiment)
    state = previous = read_state(exp_dir)
    uri = (
        opts.mlflow_uri
        or (state or {}).get("tracking_uri")
        or os.environ.get("MLFLOW_TRACKING_URI")
        or sqlite_uri(paths.mlflow_db)
    )
    _check_uri(uri)
    _check_cluster_store(opts.address, uri)
    if not opts.resume and state is not None:
        resume_same_spec(state, exp_dir, spec, opts.status)
        opts = dataclasses.replace(opts, resume=True)
    elif not opts.resume and exp_dir.exists():
        archive(state, exp_dir)
    if opts.resume:
        check_resume(state, exp_dir, spec, opts.mlflow_uri)
        if state is not None and state.get("status") == "finished" and state.get("summary"):
            if asked_to_resume and opts.status is not None:
                opts.status(
                    f"{experiment}: finished before (MLflow parent run "
                    f"{state['parent_run_id']}): nothing to run"
                )
            return finished(state, spec, t_start)
    probe(uri)
    if opts.address:
        connect.check_address(opts.address)
    trials = expand_grid(spec) if spec.search.algorithm == "grid" else None
    total = len(trials) if trials is not None else int(spec.search.num_samples or 0)

    ray_words = connect.describe(opts.address)  # before a plan may start Ray
    planned = opts.plan is not None
    cpus, gpus = _resources(spec, opts)
    if opts.status is not None:
        opts.status(
            f"{experiment}: {total} trials {placement(cpus, gpus)}, on {ray_words}, MLflow at {uri}"
        )
        if not planned:
            _say_plan(opts)
        if connect.is_client(opts.address):
            opts.status(f"{experiment}: Tune runs on the cluster (Ray Client); results at the end")
    # Ray takes seconds to start, mostly waiting for its own processes: meanwhile a thread
    # imports Tune, MLflow and the trainable's modules and opens the MLflow parent run. Ray
    # Client (ray://) imports modules the thread imports too (pyarrow, starlette, cloudpickle,
    # ...) and only connects, so there the thread finishes first.
    connect.import_for_ray_init()
    with ThreadPoolExecutor(1) as pool:
        opening = pool.submit(
            _prepare, uri, experiment, paths, spec, opts, trials, state, (cpus, gpus)
        )
        if connect.is_client(opts.address):
            opening.result()
        try:
            connect.init_ray(opts.address, spec)
        except BaseException as e:
            from sweeps.records.tracking import TAG

            tracking, _ = opening.result()
            tracking.finish("FAILED", {}, {TAG["error"]: _describe(e)})
            raise
        stopping.reclaim()  # ray.init took SIGTERM over
        tracking, study = opening.result()
    from ray import tune

    from sweeps.execution import progress
    from sweeps.execution.search import search_alg
    from sweeps.records.tracking import TAG, SweepContext

    state = {
        "spec": spec.name,
        "spec_hash": spec.hash,
        "experiment": experiment,
        "tracking_uri": uri,
        "experiment_id": tracking.experiment_id,
        "parent_run_id": tracking.run_id,
        "status": "running",
        "optuna": {},
    }
    write_state(exp_dir, state)

    limit = opts.max_concurrent or spec.resources.max_concurrent
    ctx = {
        **SweepContext(
            tracking_uri=uri,
            experiment_id=tracking.experiment_id,
            parent_run_id=tracking.run_id,
            sweep=experiment,
            paper_table=spec.paper_table,
            algorithm=spec.search.algorithm,
            keep_checkpoint=spec.keep_checkpoint,
            system_metrics=spec.system_metrics_interval,
        ).as_dict(),
        "cpus_per_trial": cpus,
        "gpus_per_trial": gpus,
        "device": "cuda" if gpus else "cpu",
    }
    if opts.trainable is None:
        from sweeps.execution.trainable import trainable as fn
    else:
        fn = opts.trainable
    resources = {"cpu": cpus, "gpu": gpus} if gpus else {"cpu": cpus}
    runnable = tune.with_resources(tune.with_parameters(fn, ctx=ctx), resources)

    if opts.resume:
        tuner = tune.Tuner.restore(
            str(exp_dir), runnable, resume_unfinished=True, resume_errored=False
        )
        searcher_info = (previous or {}).get("optuna") or {}
    else:
        searcher, searcher_info = search_alg(spec, sqlite_uri(paths.optuna_db), study)
        tuner = _new_tuner(spec, runnable, trials, searcher, exp_dir, limit, total)
    state["optuna"] = searcher_info
    write_state(exp_dir, state)
    if searcher_info:
        tracking.client.set_tag(tracking.run_id, "dropattack.optuna_study", searcher_info["study"])
        tracking.client.set_tag(
            tracking.run_id, "dropattack.optuna_storage", searcher_info["storage"]
        )

    concurrency = _concurrency(cpus, gpus, limit)
    view = progress.SweepProgress(
        experiment,
        total,
        spec.search.metric,
        spec.search.mode,
        concurrency,
        live=opts.live,
        forecast=opts.plan.forecast() if opts.plan is not None else None,
    )
    progress.attach(view)
    try:
        with view:
            grid = tuner.fit()
    except BaseException as e:
        # Tune failed, or a second Ctrl-C cut its graceful stop short: say so in MLflow.
        failed = not isinstance(e, KeyboardInterrupt)
        tracking.finish("FAILED" if failed else "KILLED", {}, {TAG["error"]: _describe(e)})
        state["status"] = "failed" if failed else "interrupted"
        write_state(exp_dir, state)
        raise
    finally:
        progress.attach(None)
    if connect.is_client(opts.address):
        view.replay(_ended_trials(grid))
    result = summarize(
        grid, spec, view, experiment, tracking, t_start, concurrency, opts.plan, bool(opts.attach)
    )
    result.ray_path = str(exp_dir)
    result.optuna = searcher_info or {}
    state["status"] = "interrupted" if result.interrupted else "finished"
    state["summary"] = summary_state(result)
    write_state(exp_dir, state)
    return result


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:5000]


def _new_tuner(
    spec: Spec,
    runnable: Any,
    trials: list[dict[str, Any]] | None,
    searcher: Any,
    exp_dir: Path,
    limit: int | None,
    total: int,
) -> Any:
    """A Tuner over the grid's explicit trials (each once), or over the searcher's samples."""
    from ray import tune

    from sweeps.execution import progress
    from sweeps.execution.search import scheduler

    return tune.Tuner(
        runnable,
        param_space={"trial": tune.grid_search(trials)} if trials is not None else None,
        tune_config=tune.TuneConfig(
            metric=spec.search.metric,
            mode=spec.search.mode,
            search_alg=searcher,
            scheduler=scheduler(spec, _max_epochs(spec, trials)),
            num_samples=1 if trials is not None else total,
            max_concurrent_trials=limit,
            reuse_actors=spec.resources.reuse_actors,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=exp_dir.name,
            storage_path=str(exp_dir.parent),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[progress.ProgressCallback(), _json_logger()],
        ),
    )


def _prepare(
    uri: str,
    experiment: str,
    paths: SweepPaths,
    spec: Spec,
    opts: SweepOptions,
    trials: list[dict[str, Any]] | None,
    state: dict[str, Any] | None,
    resources: tuple[float, float] = (1.0, 0.0),
) -> tuple[SweepRun, str]:
    """What the driver does while Ray starts: import Tune, Optuna, MLflow and the trainable's
    modules (seconds of CPU on a small machine), then open the experiment and the parent run
    (new, or reopened on resume). Returns the parent run and the Optuna study name."""
    # MLflow and Optuna set their loggers' levels when first imported; keep any level the
    # caller set before (``dropattack sweep`` quiets both: the live view is the console).
    levels = {name: logging.getLogger(name).level for name in ("mlflow", "optuna")}
    for name in ("ray.tune", "sweeps.execution.search", "sweeps.records.tracking"):
        importlib.import_module(name)
    if opts.trainable is None:
        importlib.import_module("sweeps.execution.trainable")
    for name, level in levels.items():
        if level != logging.NOTSET:
            logging.getLogger(name).setLevel(level)
    from sweeps.records.tracking import SweepRun

    tracking = SweepRun(uri, experiment, artifact_root=paths.artifacts)
    if opts.resume:
        tracking.reopen(state["parent_run_id"])
        return tracking, state.get("optuna", {}).get("study", "")
    if opts.attach:
        tracking.reopen(opts.attach)
        return tracking, ""
    parent = _start_parent(tracking, spec, opts, trials, resources)
    return tracking, spec.search.study_name or f"{experiment}-{parent[:8]}"


def _json_logger() -> Any:
    from ray.tune.logger import JsonLoggerCallback

    return JsonLoggerCallback()


def _start_parent(
    tracking: SweepRun,
    spec: Spec,
    opts: SweepOptions,
    trials: list[dict[str, Any]] | None,
    resources: tuple[float, float] = (1.0, 0.0),
) -> str:
    files = {"spec.yaml": _spec_text(spec)}
    if trials is not None:
        files["trials.json"] = json.dumps(trials, indent=1)
    plan: dict[str, Any] = {}
    if opts.plan is not None:
        files["plan.json"] = json.dumps(opts.plan.as_json(), indent=1)
        plan = {"planned_wall_seconds": opts.plan.wall_seconds}
        for kind, figures in (opts.plan.auto or {}).items():
            plan[f"auto_{kind}"] = json.dumps(figures)[:6000]
    return tracking.start(
        spec_name=spec.name,
        spec_hash=spec.hash,
        paper_table=spec.paper_table,
        git_commit=git_commit(),
        command=redact_text(opts.command or shlex.join(sys.argv)),
        params={
            "algorithm": spec.search.algorithm,
            "metric": spec.search.metric,
            "mode": spec.search.mode,
            "scheduler": spec.search.scheduler,
            "trials": len(trials) if trials is not None else spec.search.num_samples,
            "seeds": spec.seeds,
            "cpus_per_trial": resources[0],
            "gpus_per_trial": resources[1],
            **plan,
        },
        files=files,
        tags=opts.parent_tags,
    )


def _spec_text(spec: Spec) -> str:
    """The spec file as written (comments included), else the validated spec."""
    path = Path(spec.source)
    return path.read_text() if spec.source and path.is_file() else spec.to_yaml()
