"""The Tune search algorithm and trial scheduler a spec asks for.

- ``grid``: no search algorithm (the driver hands Tune the explicit list of trials);
- ``tpe`` / ``random``: :class:`FailAwareOptunaSearch` over the spec's define-by-run space,
  with the study in Optuna storage (sqlite by default, any SQLAlchemy URL) so it outlives
  the driver and opens in optuna-dashboard. Optuna's pruners stay off inside Ray;
- ``scheduler: asha``: :class:`RecordingASHA`, Ray's ASHA.

Imported by the driver while Ray starts: it pulls in Ray Tune and Optuna.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from sweeps.execution import progress
from sweeps.specs.space import DefineByRun
from sweeps.specs.spec import Spec

__all__ = ["FailAwareOptunaSearch", "RecordingASHA", "scheduler", "search_alg"]


class FailAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tells Optuna FAIL (not PRUNED) for a trial whose last result
    says ``failed`` (a diverged or misconfigured trial ends without raising)."""

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if result and result.get("failed"):
            result, error = None, True
        super().on_trial_complete(trial_id, result=result, error=error)


class RecordingASHA(ASHAScheduler):
    """ASHA that tells the live view which trials it stopped (so they do not look
    interrupted: their last result is not a final one)."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == self.STOP:
            progress.record_stop(trial.trial_id)
        return action


def search_alg(spec: Spec, storage: str, study_name: str) -> tuple[Any, dict[str, str]]:
    """The spec's Optuna searcher (``None`` for a grid) and ``{"storage", "study"}``.

    ``storage`` is the default Optuna URL, used unless the spec names its own.
    """
    if spec.search.algorithm == "grid":
        return None, {}
    import optuna

    url = spec.search.storage or storage
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    searcher = FailAwareOptunaSearch(
        space=DefineByRun(spec),
        metric=spec.search.metric,
        mode=spec.search.mode,
        sampler=samplers[spec.search.algorithm](seed=spec.search.seed),
        study_name=study_name,
        storage=optuna.storages.RDBStorage(url),
    )
    return searcher, {"storage": url, "study": study_name}


def scheduler(spec: Spec, max_t: int) -> Any:
    """ASHA over training iterations (epochs) when the spec asks for it, else ``None``."""
    if spec.search.scheduler == "none":
        return None
    return RecordingASHA(
        time_attr="training_iteration",
        max_t=max_t,
        grace_period=min(spec.search.grace_period, max_t),
        reduction_factor=spec.search.reduction_factor,
    )
