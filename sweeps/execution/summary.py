"""What a sweep did: its :class:`SweepResult`, from Tune's result grid and the live view, and
the parent run's closing metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweeps.specs.spec import Spec

if TYPE_CHECKING:
    from sweeps.execution.progress import SweepProgress
    from sweeps.records.tracking import SweepRun

__all__ = [
    "SUMMARY_FIELDS",
    "SweepResult",
    "finished",
    "summarize",
    "summary_state",
    "wall_metrics",
]


@dataclass
class SweepResult:
    """What a sweep did."""

    name: str
    experiment: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    counts: dict[str, int]
    best: dict[str, Any] | None
    best_value: float | None  # the best configuration's mean over its finished seeds
    metric: str
    interrupted: bool
    wall_seconds: float
    trial_seconds: list[float] = field(default_factory=list)
    concurrency: int = 1
    ui_command: str = ""
    ui_url: str = ""  # the sweep's runs in the UI (what ``ui_command`` serves, for a local store)
    ray_path: str = ""
    optuna: dict[str, str] = field(default_factory=dict)
    best_n: int = 0  # finished seeds behind best_value
    #: per task of a multi-task sweep: ``{task: {"trial", "value", "n"}}`` (the report's choice)
    best_by_task: dict[str, dict[str, Any]] = field(default_factory=dict)


#: The :class:`SweepResult` fields a finished sweep keeps in its state file, so that running
#: it again reports it without starting Ray.
SUMMARY_FIELDS = (
    "tracking_uri", "experiment_id", "counts", "best", "best_value", "best_n", "best_by_task",
    "metric", "concurrency", "ui_command", "ui_url", "ray_path", "optuna",
)  # fmt: skip


def summary_state(result: SweepResult) -> dict[str, Any]:
    """What :data:`SUMMARY_FIELDS` keep of ``result``, for the state file."""
    return {name: getattr(result, name) for name in SUMMARY_FIELDS}


def finished(state: dict[str, Any], spec: Spec, t_start: float) -> SweepResult:
    """The summary of a sweep that already finished: every trial ended before this run."""
    summary = dict(state["summary"])
    counts = dict(summary.pop("counts"))
    counts["skipped"] = counts["done"]
    return SweepResult(
        name=spec.name,
        experiment=state["experiment"],
        parent_run_id=state["parent_run_id"],
        counts=counts,
        interrupted=False,
        wall_seconds=time.perf_counter() - t_start,
        **summary,
    )


def wall_metrics(plan: Any, wall: float) -> dict[str, float]:
    """The sweep's wall time, and the plan's prediction beside it (predicted against actual)."""
    out = {"wall_seconds": wall}
    predicted = plan.wall_seconds if plan is not None else None
    if predicted:
        out.update(predicted_wall_seconds=predicted, wall_ratio=wall / predicted)
    return out


def summarize(
    grid: Any,
    spec: Spec,
    view: SweepProgress,
    experiment: str,
    tracking: SweepRun,
    t_start: float,
    concurrency: int,
    plan: Any = None,
    attached: bool = False,
) -> SweepResult:
    """The sweep's result, logged on its parent run; ``attached`` (trials added to another
    sweep's parent run) closes the parent without replacing that sweep's own summary."""
    from sweeps.execution.progress import COMPLETED

    c = view.counts
    counts = {
        "done": c["done"],
        "failed": c["failed"],
        "stopped": c["stopped"],
        "unfinished": c["pending"] + c["running"],
        "skipped": 0,
    }
    seconds: list[float] = []
    earlier = view.earlier or set()  # ended in Tune's state before this run: not run again
    for r in grid:
        metrics = r.metrics or {}
        before = metrics.get("skipped") or metrics.get("trial_id") in earlier
        counts["skipped"] += int(bool(before and metrics.get(COMPLETED)))
        if isinstance(metrics.get("trial_seconds"), (int, float)) and not metrics.get("skipped"):
            seconds.append(float(metrics["trial_seconds"]))
    interrupted = view.interrupted
    best = view.best
    tracking.mark_stopped(view.stopped)
    if interrupted:
        tracking.mark_unfinished()  # continued by --resume, in the same runs
    wall = time.perf_counter() - t_start
    tracking.finish(
        "KILLED" if interrupted else "FINISHED",
        metrics={}
        if attached
        else {
            "trials_done": counts["done"],
            "trials_failed": counts["failed"],
            "trials_stopped": counts["stopped"],
            **({f"best_{spec.search.metric}": best.value} if best else {}),
            **wall_metrics(plan, wall),
        },
        tags={"dropattack.best_cell": best.trial.get("cell", "")} if best and not attached else {},
    )
    return SweepResult(
        name=spec.name,
        experiment=experiment,
        tracking_uri=tracking.uri,
        experiment_id=tracking.experiment_id,
        parent_run_id=tracking.run_id,
        counts=counts,
        best=best.trial if best else None,
        best_value=best.value if best else None,
        best_n=best.n if best else 0,
        best_by_task={
            task: {"trial": b.trial, "value": b.value, "n": b.n}
            for task, b in sorted(view.best_by_task.items())
        },
        metric=spec.search.metric,
        interrupted=interrupted,
        wall_seconds=wall,
        trial_seconds=seconds,
        concurrency=concurrency,
        ui_command=tracking.ui_command(),
        ui_url=tracking.ui_url(),
    )
