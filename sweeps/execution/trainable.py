"""The trainable: one trial of a sweep, from its config dict to metrics, checkpoints and MLflow.

Ray Tune calls :func:`trainable` in a worker with ``config["trial"]`` (a dict from
:mod:`sweeps.specs.space`) and the sweep's :class:`~sweeps.records.tracking.SweepContext`. It

1. finds or creates the trial's MLflow child run (a finished run means a resumed sweep
   already has this trial: its metrics are reported again and nothing is trained);
2. runs :func:`sweeps.trial.run_trial` with a callback that, after every epoch but
   the last, logs the epoch's metrics to MLflow and reports them to Tune with a checkpoint (model,
   optimizer, method state and the unsent MLflow records);
3. logs the final metrics and, unless the spec says ``keep_checkpoint: false``, the
   best-on-validation weights as ``checkpoint/best.pt`` (what ``dropattack landscape``
   loads), closes the run FINISHED and reports the final metrics; or, if training raises,
   closes the run FAILED with the error. An error a retry would meet again (a non-finite
   loss, a bad configuration, missing data) ends the trial with a ``failed`` result: no
   retry, and the worker is kept for the next trial. Any other error is re-raised, so Tune
   records it and retries the trial (``FailureConfig``); the retry finds the same MLflow run
   and continues from the last checkpoint.

The last epoch is reported together with the test metrics, so a scheduler (ASHA) sees
exactly ``epochs`` results and cannot stop a trial between its last epoch and its test
evaluation. Heavy modules are imported here at module level, once per worker process: with
actor reuse, later trials in the same worker pay nothing for them.
"""

from __future__ import annotations

import gc
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from ray import tune

from dropattack.train import Callback, EpochMetrics, NonFiniteLossError
from models import tasks
from sweeps.execution.progress import COMPLETED, FAILED
from sweeps.records.tracking import (
    CHECKPOINT_ARTIFACT,
    MODEL_PARAM_PREFIX,
    TAG,
    SweepContext,
    TrialTracker,
)
from sweeps.specs.names import config_name, trial_name
from sweeps.trial import TrialConfig, TrialResult, ran_params, run_trial

__all__ = ["CHECKPOINT_STATE", "DETERMINISTIC_ERRORS", "run_name", "trainable", "trial_params"]

#: Seconds a worker that Tune reuses for the next trial (``reuse_actors``) waits for the trial
#: it stopped (ASHA, or the sweep stopping) to close its MLflow run. Ray's default, 2 s, is
#: less than that takes on a busy node; the next trial then fails with "Could not re-use
#: actor". Read by Tune in this worker process, so it is set where the trainable is imported.
THREAD_TIMEOUT_ENV = "TUNE_FUNCTION_THREAD_TIMEOUT_S"
os.environ.setdefault(THREAD_TIMEOUT_ENV, "60")

CHECKPOINT_STATE = "state.pt"
CHECKPOINT_TRACKING = "mlflow.json"
#: Errors a retry would meet again (a diverging loss, a bad configuration or missing data):
#: recorded as failed, not retried.
DETERMINISTIC_ERRORS = (NonFiniteLossError, ValueError)
_CONFIG_FIELDS = (
    "task", "task_args", "method", "attack", "eps", "p", "k", "groups", "step", "hp", "seed",
    "epochs", "train_size", "batch_size", "lr", "bucket", "data_dir", "device", "vectors", "model",
)  # fmt: skip
#: Trial fields that shape the model or its data without being sweep axes: logged as params
#: (when set) so that ``dropattack landscape`` rebuilds the same model.
_MODEL_SOURCE = ("data_dir", "vectors")


def trial_params(trial: dict[str, Any]) -> dict[str, Any]:
    """MLflow params of a trial: readable side by side in the UI's compare view.

    Besides the sweep's values they hold what rebuilding the model needs: ``data_dir`` and
    ``vectors`` when set, and each model override as ``model.<name>``.
    """
    params: dict[str, Any] = {
        "task": trial["task"],
        "method": trial["method"],
        "attack": ";".join(trial.get("attack") or ()),
        "attacked": ",".join(trial.get("attacked") or ()),
        "seed": trial["seed"],
    }
    if trial.get("task_args"):
        params["task_args"] = json.dumps(trial["task_args"], sort_keys=True)
    for name in (
        "eps", "p", "k", "groups", "passes", "train_size", "epochs", "batch_size", "lr", "bucket",
        "step",
    ):  # fmt: skip
        if trial.get(name) is not None:
            params[name] = trial[name]
    for name, value in (trial.get("hp") or {}).items():
        params[name] = value
    for name in _MODEL_SOURCE:
        if trial.get(name):
            params[name] = trial[name]
    for name, value in (trial.get("model") or {}).items():
        params[f"{MODEL_PARAM_PREFIX}{name}"] = value
    return params


def run_name(trial: dict[str, Any]) -> str:
    """The MLflow run name: the trial's one readable name (``sweeps.specs.names.trial_name``)."""
    return trial_name(trial)


def _config(trial: dict[str, Any]) -> TrialConfig:
    fields = {k: trial[k] for k in _CONFIG_FIELDS if trial.get(k) is not None}
    fields["attack"] = tuple(fields.get("attack") or ())
    return TrialConfig(**fields)


def _epochs(trial: dict[str, Any]) -> int:
    """The trial's epochs; 0 (unknown) when its task does not load here: the trial itself
    then fails with the task's error, recorded on its run."""
    if trial.get("epochs"):
        return int(trial["epochs"])
    try:
        return tasks.get(trial["task"], trial.get("task_args")).epochs
    except ValueError:
        return 0


def _epoch_metrics(m: EpochMetrics) -> dict[str, float]:
    return {
        "epoch_train_loss": m.train_loss,
        "epoch_train_acc": m.train_acc,
        "epoch_val_acc": m.val_acc,
        "epoch_val_f1": m.val_f1,
    }


class _Reporter(Callback):
    """Per epoch: MLflow metrics (step = epoch), and a Tune report with a checkpoint."""

    def __init__(self, tracker: TrialTracker, epochs: int, t0: float) -> None:
        self.tracker = tracker
        self.epochs = epochs
        self.t0 = t0
        self.best: EpochMetrics | None = None
        self.last: EpochMetrics | None = None

    def tune_metrics(self, m: EpochMetrics) -> dict[str, float]:
        """What Tune sees each epoch: the best-so-far val metrics (what the final will be)."""
        if self.best is None or m.val_acc > self.best.val_acc:
            self.best = m
        return {
            "epoch": m.epoch,
            **_epoch_metrics(m),
            "val_acc": self.best.val_acc,
            "val_f1": self.best.val_f1,
            "trial_seconds": time.perf_counter() - self.t0,
            "epoch_seconds": m.seconds,
            "epochs_total": self.epochs,  # for the live view's epoch i/n and ETA
        }

    def on_epoch_end(self, metrics: EpochMetrics, model: Any, state: dict[str, Any]) -> None:
        self.last = metrics
        self.tracker.log_metrics(_epoch_metrics(metrics), step=metrics.epoch)
        report = self.tune_metrics(metrics)
        if metrics.epoch >= self.epochs:
            return  # reported with the test metrics, after fit
        self.tracker.flush()
        with tempfile.TemporaryDirectory(prefix="dropattack-ckpt-") as tmp:
            torch.save(state, Path(tmp) / CHECKPOINT_STATE)
            (Path(tmp) / CHECKPOINT_TRACKING).write_text(json.dumps(self.tracker.state()))
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))


def _load_checkpoint() -> tuple[dict[str, Any] | None, dict[str, Any]]:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, {}
    with checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / CHECKPOINT_STATE, map_location="cpu", weights_only=True)
        tracking_file = Path(folder) / CHECKPOINT_TRACKING
        tracking = json.loads(tracking_file.read_text()) if tracking_file.exists() else {}
    return state, tracking


def trainable(config: dict[str, Any], ctx: dict[str, Any]) -> None:
    """Ray Tune function trainable (bind ``ctx`` with ``tune.with_parameters``)."""
    t0 = time.perf_counter()
    trial = dict(config["trial"])
    sweep = SweepContext(**{k: v for k, v in ctx.items() if k in SweepContext.__annotations__})
    torch.set_num_threads(max(1, int(ctx.get("cpus_per_trial", 1))))
    if ctx.get("device"):
        trial["device"] = ctx["device"]
    resume, tracking = _load_checkpoint()
    tune_ctx = tune.get_context()
    tracker = TrialTracker(
        sweep,
        key=trial["key"],
        run_name=run_name(trial),
        tags={
            TAG["cell"]: trial["cell"],
            TAG["name"]: config_name(trial),
            TAG["variant"]: trial.get("variant", ""),
            TAG["trial_id"]: tune_ctx.get_trial_id(),
            **(
                {TAG["stands_for"]: json.dumps(trial["stands_for"], separators=(",", ":"))}
                if trial.get("stands_for")
                else {}
            ),
        },
        run_id=tracking.get("run_id"),
        pending=tracking.get("pending"),
        spill_dir=tune_ctx.get_trial_dir(),
    )
    status = tracker.open()
    if tracker.found and _already_done(tracker, status, t0):
        return
    if tracker.found:
        tracker.restart()
    tracker.log_params(trial_params(trial))
    tracker.set_tags({TAG["trial_id"]: tune_ctx.get_trial_id()})
    tracker.start_system_metrics()
    reporter = _Reporter(tracker, _epochs(trial), t0)
    try:
        result = run_trial(_config(trial), callbacks=[reporter], resume=resume, started=t0)
    except SystemExit:
        # Tune stopped the trial (a scheduler's decision, or the sweep is shutting down).
        tracker.set_tags({TAG["stopped"]: "tune"})
        tracker.terminate("KILLED")
        tracker.flush()
        raise
    except DETERMINISTIC_ERRORS as e:
        # Retrying would fail the same way: record it and end the trial without an error,
        # so Tune neither retries it nor replaces the worker.
        tracker.set_tags({TAG["error_kind"]: "deterministic"})
        tracker.terminate("FAILED", e)
        tracker.flush_final()
        tune.report(_failed_result(f"{type(e).__name__}: {e}", t0))
        return
    except BaseException as e:
        tracker.terminate("FAILED", e)
        tracker.flush_final()
        raise
    finally:
        _release(trial.get("device"))
    final = _finish(tracker, result, trial, ctx, t0)
    # The run is closed: a stop decision on this last report changes nothing in MLflow.
    report = reporter.tune_metrics(reporter.last) if reporter.last is not None else {}
    tune.report({**report, **final, COMPLETED: 1})


def _failed_result(error: str, t0: float) -> dict[str, Any]:
    return {FAILED: 1, "error": error[:1000], "trial_seconds": time.perf_counter() - t0}


def _already_done(tracker: TrialTracker, status: str | None, t0: float) -> bool:
    """Report a trial an earlier process finished (or failed for good) instead of training it.

    A resumed sweep's Tune state can lag behind MLflow (a driver killed between a trial's
    end and the next experiment snapshot); MLflow's record is the one that counts.
    """
    if status == "FINISHED":
        metrics, _ = tracker.run_data()
        tune.report(
            {**metrics, COMPLETED: 1, "skipped": 1, "trial_seconds": time.perf_counter() - t0}
        )
        return True
    if status == "FAILED":
        _, tags = tracker.run_data()
        if tags.get(TAG["error_kind"]) == "deterministic":
            tune.report({**_failed_result(tags.get(TAG["error"], ""), t0), "skipped": 1})
            return True
    return False


def _finish(
    tracker: TrialTracker,
    result: TrialResult,
    trial: dict[str, Any],
    ctx: dict[str, Any],
    t0: float,
) -> dict[str, float]:
    """Log the final metrics and close the run FINISHED; returns the final metrics.

    Time is logged split: ``setup_seconds`` (opening the run, data, vocabulary, model),
    ``train_seconds`` (the epochs' training and validation: the report's cost), and
    ``trial_seconds``, the trial's whole wall time in this process.
    """
    seconds = time.perf_counter() - t0
    final = {k: v for k, v in result.metrics.items() if v is not None and math.isfinite(v)}
    final["trial_seconds"] = seconds
    gpus = float(ctx.get("gpus_per_trial") or 0)
    if gpus and str(trial.get("device", "")).startswith("cuda"):
        final["gpu_seconds"] = seconds * gpus
    params: dict[str, Any] = ran_params(result)
    if trial.get("train_size") is None:
        params["train_size"] = result.train_size
    if trial.get("epochs") is None:
        params["epochs"] = int(result.metrics.get("epochs", 0))
    tracker.log_params(params)
    tracker.log_metrics(final)
    tracker.log_text(json.dumps([h.as_dict() for h in result.history], indent=1), "history.json")
    if tracker.ctx.keep_checkpoint:
        _queue_best(tracker, result)
    tracker.terminate("FINISHED")
    tracker.flush_final()
    return final


def _queue_best(tracker: TrialTracker, result: TrialResult) -> None:
    """Save the best weights in the trial's folder and queue them as ``checkpoint/best.pt``.

    The file goes through the tracker's buffer like every other record: an MLflow outage
    delays it (the final flush retries) instead of losing it, and the file is deleted once
    MLflow has it.
    """
    folder, name = CHECKPOINT_ARTIFACT.rsplit("/", 1)
    local = Path(tracker.spill_dir or tempfile.mkdtemp(prefix="dropattack-best-")) / name
    local.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result.best_state, local)
    tracker.log_file(local, folder, remove=True)


def _release(device: str | None) -> None:
    """Free memory before the worker takes its next trial (actor reuse)."""
    gc.collect()
    if device and device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
