"""What a sweep costs before it runs: cost shapes, calibration on the target, a list schedule.

A spec's trials fall into *cost shapes*: everything that changes the work of a training step
or how many steps there are (task, method, the resolved attack set, K, groups, the passes a
step costs, epochs, train_size, batch size, bucket, device, data folder) and nothing that does
not (eps, p, seed, learning rate). One caveat is the paper's own: ``p = 0`` or ``eps = 0``
removes a target, so such a trial really costs fewer passes and is its own shape.

:func:`make_plan` calibrates one trial per shape on the target (this machine, or through Ray a
node of the cluster with the trial's own resources; :mod:`sweeps.cost.calibrate`), within a time
budget: a shape that does not fit is scaled from a measured shape of the same task (by passes
and steps) or left unpredicted, and the plan says which. It then simulates the sweep's own
trial order on the concurrency the sweep would get (:func:`sweeps.cost.forecast.list_schedule`),
start-up included. ``gpus: auto`` and ``cpus: auto`` choose a trial's resources from measured
throughput (:func:`choose_gpus`, :func:`choose_cpus`). Like :mod:`sweeps.cost.calibrate`, this
module imports neither Ray, MLflow, Optuna nor pydantic until a plan of a spec needs them, so a GPU
machine with torch alone can use :func:`choose_gpus` (``bench/gpu_plan.py``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sweeps.cost.calibrate import Calibration, Probe
from sweeps.cost.forecast import Forecast, list_schedule

if TYPE_CHECKING:
    from sweeps.specs.spec import Spec

__all__ = [
    "AUTO",
    "Plan",
    "PlanError",
    "Shape",
    "choose_cpus",
    "choose_gpus",
    "group_shapes",
    "make_plan",
    "plan_trials",
    "shape_key",
]

AUTO = "auto"
#: Fields of a trial that change the work of a step or the number of steps.
SHAPE_FIELDS = (
    "task", "method", "attacked", "k", "groups", "passes", "epochs", "train_size",
    "batch_size", "bucket", "data_dir", "device", "step",
)  # fmt: skip
#: ``ray.init`` of a local Ray (GCS, raylet, agents), docs/benchmarks.md "Sweep orchestration
#: overhead", 2 vCPU: 4.23 s.
RAY_START_SECONDS = 4.2
#: Trial workers started as Tune starts them, importing the trainable's modules (torch,
#: MLflow, Ray Tune) and opening the MLflow store: 4.69 s for two at once on 2 vCPU (same
#: table). Through ``--address`` it is measured on the target instead.
WORKER_START_SECONDS = 4.7
#: What a trial does besides training and evaluating (its MLflow run, params, per-epoch
#: metrics, final logs, the best weights): measured by bench/plan.py on the quickstart.
TRIAL_OVERHEAD_SECONDS = 0.4
#: GPU memory kept free when packing trials on one GPU (allocator fragmentation, CUDA context).
GPU_HEADROOM = 0.2
#: A k whose throughput is within this fraction of the previous k's is past the knee.
KNEE_GAIN = 0.1
DEFAULT_BUDGET = 60.0


class PlanError(RuntimeError):
    """The plan cannot be made as asked (no GPU for ``gpus``, a node without CUDA, ...)."""


def shape_key(trial: Mapping[str, Any]) -> tuple[Any, ...]:
    """The trial's cost shape: the values of :data:`SHAPE_FIELDS` (lists as tuples)."""
    key = []
    for name in SHAPE_FIELDS:
        value = trial.get(name)
        key.append(tuple(value) if isinstance(value, list) else value)
    return tuple(key)


@dataclass
class Shape:
    """A group of trials that cost the same, and what one of them costs.

    Attributes:
        fields: the shape's values of :data:`SHAPE_FIELDS`.
        keys: the sweep keys of its trials, in sweep order.
        example: one of its trials (the one calibrated).
        calibration: the measurement (scaled from another shape when ``estimated_from``).
        estimated_from: the index of the measured shape it was scaled from.
        skipped: why it was not measured.
        contention: slow-down of a trial when the sweep's other trials run beside it.
    """

    fields: dict[str, Any]
    keys: list[str]
    example: dict[str, Any]
    calibration: Calibration | None = None
    estimated_from: int | None = None
    skipped: str = ""
    contention: float = 1.0

    @property
    def trials(self) -> int:
        return len(self.keys)

    @property
    def passes(self) -> int | None:
        return self.fields.get("passes")

    def trial_seconds(self) -> float | None:
        """Predicted seconds of one trial as the sweep records it (harness included)."""
        if self.calibration is None:
            return None
        return self.calibration.trial_seconds() * self.contention + TRIAL_OVERHEAD_SECONDS

    def describe(self) -> str:
        f = self.fields
        parts = [f["task"], f["method"]]
        if f.get("attacked"):  # named as the sweep names them: by the task's aliases
            parts.append("+".join(self.example.get("attack") or f["attacked"]))
        for name in ("k", "groups", "step", "epochs", "train_size", "batch_size"):
            if f.get(name) is not None and not (name == "step" and f[name] == "paper"):
                parts.append(f"{name}={f[name]}")
        if f.get("bucket"):
            parts.append("bucket")
        return " ".join(map(str, parts))

    def as_json(self) -> dict[str, Any]:
        c = self.calibration
        seconds = self.trial_seconds()
        return {
            "shape": self.describe(),
            "trials": self.trials,
            "passes": self.passes,
            "trial_seconds": seconds,
            "peak_memory_bytes": c.peak_memory_bytes if c else None,
            "memory": c.memory if c else None,
            "calibrated": c is not None and self.estimated_from is None,
            "estimated_from": self.estimated_from,
            "skipped": self.skipped or None,
            "setup_seconds": c.setup_seconds if c else None,
            "step_seconds": c.step_seconds if c else None,
            "steps_per_epoch": c.steps_per_epoch if c else None,
            "epochs": c.epochs if c else self.fields.get("epochs"),
            "eval_seconds": (c.val_examples * c.eval_seconds_per_example) if c else None,
            "contention": self.contention,
            "calibration_seconds": c.seconds if c and self.estimated_from is None else None,
            **{k: v for k, v in self.fields.items() if k not in ("passes", "epochs")},
        }


@dataclass
class Plan:
    """A sweep's predicted cost (what ``dropattack plan`` prints, ``--json`` writes and the
    sweep's live view uses for its ETA)."""

    spec: str
    spec_hash: str
    target: str
    shapes: list[Shape]
    order: list[str]  # trial keys in sweep order
    slots: int
    cpus_per_trial: float
    gpus_per_trial: float
    device: str
    startup_seconds: float
    budget: float
    calibration_seconds: float
    skipped: list[str] = field(default_factory=list)
    auto: dict[str, Any] = field(default_factory=dict)
    sampled: bool = False  # trials are draws of a TPE/random space, not the grid itself

    def predicted(self) -> dict[str, float]:
        out = {}
        for shape in self.shapes:
            seconds = shape.trial_seconds()
            if seconds is not None:
                out.update(dict.fromkeys(shape.keys, seconds))
        return out

    @property
    def trials(self) -> int:
        return len(self.order)

    @property
    def unpredicted(self) -> int:
        return sum(s.trials for s in self.shapes if s.trial_seconds() is None)

    @property
    def trial_seconds(self) -> float:
        return sum(s.trials * (s.trial_seconds() or 0.0) for s in self.shapes)

    @property
    def device_hours(self) -> float:
        """Trial-hours times the devices a trial holds (GPUs, else CPUs)."""
        share = self.gpus_per_trial if self.gpus_per_trial else self.cpus_per_trial
        return self.trial_seconds * share / 3600.0

    @property
    def wall_seconds(self) -> float | None:
        if self.unpredicted:
            return None
        predicted = self.predicted()
        return list_schedule(
            (predicted[k] for k in self.order), self.slots, start=self.startup_seconds
        )

    def forecast(self) -> Forecast:
        """The live view's ETA model."""
        predicted = self.predicted()
        default = sum(predicted.values()) / len(predicted) if predicted else None
        return Forecast(
            predicted={} if self.sampled else predicted,
            order=[] if self.sampled else list(self.order),
            slots=self.slots,
            startup=self.startup_seconds,
            default=default,
            wall_seconds=self.wall_seconds,
            total=self.trials,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "spec_hash": self.spec_hash,
            "target": self.target,
            "device": self.device,
            "shapes": [s.as_json() for s in self.shapes],
            "trials": self.trials,
            "trial_seconds": self.trial_seconds,
            "trial_hours": self.trial_seconds / 3600.0,
            "device_hours": self.device_hours,
            "wall_seconds": self.wall_seconds,
            "unpredicted_trials": self.unpredicted,
            "concurrency": self.slots,
            "cpus_per_trial": self.cpus_per_trial,
            "gpus_per_trial": self.gpus_per_trial,
            "startup_seconds": self.startup_seconds,
            "budget_seconds": self.budget,
            "calibration_seconds": self.calibration_seconds,
            "skipped": self.skipped,
            "auto": self.auto or None,
            "sampled": self.sampled,
        }

    def summary(self) -> str:
        """One line: trials, trial-hours, device-hours, wall time, concurrency."""
        from sweeps.cost.forecast import format_duration

        wall = self.wall_seconds
        unknown = f" ({self.unpredicted} trials unpredicted)" if self.unpredicted else ""
        return (
            f"{self.spec}: {self.trials} trials, {self.trial_seconds / 3600:.3f} trial-hours, "
            f"{self.device_hours:.3f} {'GPU' if self.gpus_per_trial else 'CPU'}-hours, "
            f"predicted wall {format_duration(wall)} on {self.slots} at once "
            f"({self.cpus_per_trial:g} CPU"
            + (f", {self.gpus_per_trial:g} GPU" if self.gpus_per_trial else "")
            + f" a trial, {self.device}){unknown}"
        )

    def table(self) -> list[str]:
        """The per-shape table and the totals, as text lines."""
        head = ("shape", "trials", "passes", "s/trial", "peak MiB", "measured")
        rows = [head]
        for i, s in enumerate(self.shapes):
            c = s.calibration
            seconds = s.trial_seconds()
            how = "yes" if c is not None and s.estimated_from is None else "no"
            if s.estimated_from is not None:
                how = f"from #{s.estimated_from}"
            rows.append(
                (
                    f"#{i} {s.describe()}",
                    str(s.trials),
                    "?" if s.passes is None else str(s.passes),
                    "?" if seconds is None else f"{seconds:.1f}",
                    "?" if c is None else f"{c.peak_memory_bytes / 2**20:.0f}",
                    how,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]
        lines.append(self.summary())
        lines.append(
            f"start-up {self.startup_seconds:.1f}s; calibration {self.calibration_seconds:.1f}s "
            f"of a {self.budget:g}s budget on {self.target}"
        )
        lines += [f"skipped: {s}" for s in self.skipped]
        if self.sampled:
            lines.append(
                "trials are random draws of the search space; TPE concentrates on some of it"
            )
        return lines


# --------------------------------------------------------------------------- trials


def plan_trials(spec: Spec) -> tuple[list[dict[str, Any]], bool]:
    """The sweep's trials in order (a grid's own list; for TPE/random, ``num_samples`` random
    draws of the space, seeded by the spec) and whether they are draws."""
    from sweeps.specs.space import expand_grid

    if spec.search.algorithm == "grid":
        return expand_grid(spec), False
    import optuna

    from sweeps.specs.space import DefineByRun

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = DefineByRun(spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=spec.search.seed))
    trials = []
    for _ in range(int(spec.search.num_samples or 0)):
        t = study.ask()
        trials.append(space(t)["trial"])
        study.tell(t, 0.0)
    return trials, True


def group_shapes(trials: Sequence[Mapping[str, Any]], device: str = "cpu") -> list[Shape]:
    """The trials' cost shapes, in the order each first appears."""
    shapes: dict[tuple[Any, ...], Shape] = {}
    for trial in trials:
        t = {**trial, "device": device}
        key = shape_key(t)
        shape = shapes.get(key)
        if shape is None:
            fields_ = {n: t.get(n) for n in SHAPE_FIELDS}
            shape = shapes[key] = Shape(fields=fields_, keys=[], example=dict(t))
        shape.keys.append(trial["key"])
    return list(shapes.values())


# --------------------------------------------------------------------------- targets


class LocalTarget:
    """Calibrates in this process (and :func:`sweeps.cost.calibrate.probe`'s subprocesses)."""

    name = "this machine"

    def __init__(self) -> None:
        self.cpus = float(os.cpu_count() or 1)
        import torch

        self.gpus = float(torch.cuda.device_count()) if torch.cuda.is_available() else 0.0
        self.gpu_memory = torch.cuda.get_device_properties(0).total_memory if self.gpus else 0

    @property
    def node_cpus(self) -> float:
        return self.cpus

    def startup(self) -> float:
        return RAY_START_SECONDS + WORKER_START_SECONDS

    def calibrate(self, trial: dict[str, Any], budget: float, threads: int) -> Calibration:
        from sweeps.cost.calibrate import calibrate

        return calibrate(trial, budget=budget, threads=threads)

    def probe(
        self, trial: dict[str, Any], k: int, threads: int, window: float, timeout: float = 600.0
    ) -> Probe:
        from sweeps.cost.calibrate import probe

        try:
            return probe(trial, k, threads=threads, window=window, timeout=timeout)
        except RuntimeError as e:
            raise PlanError(f"calibration of {k} trials at once failed: {e}") from None


class RayTarget:
    """Calibrates on a node of a Ray cluster, in a task holding the trial's own resources."""

    def __init__(self, address: str, spec: Spec | None = None) -> None:
        import ray

        from sweeps.cluster.connect import check_address, init_ray

        check_address(address)
        init_ray(address, spec)
        self.address = address
        self.name = f"Ray at {address}"
        res = ray.cluster_resources()
        self.cpus = float(res.get("CPU", 0))
        self.gpus = float(res.get("GPU", 0))
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = [n["Resources"].get("CPU", 0) for n in nodes if n["Resources"].get("CPU", 0) > 0]
        self.node_cpus = float(max(cpus, default=1))
        self.gpu_memory = 0
        self.worker_start: float | None = None

    def startup(self) -> float:
        return self.worker_start if self.worker_start is not None else WORKER_START_SECONDS

    def _run(self, fn: Callable[..., Any], cpus: float, gpus: float, *args: Any) -> Any:
        import ray

        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(fn)
        t0 = time.perf_counter()
        try:
            out = ray.get(remote.remote(*args))
        except ray.exceptions.RayTaskError as e:
            cause = e.cause if getattr(e, "cause", None) is not None else e
            raise PlanError(str(cause).strip().splitlines()[-1]) from None
        if "error" in out:
            raise PlanError(out["error"])
        latency = time.perf_counter() - t0 - out["seconds"]
        if self.worker_start is None:
            self.worker_start = max(0.0, latency)
        self.gpu_memory = self.gpu_memory or out.get("gpu_memory", 0)
        return out

    def calibrate(self, trial: dict[str, Any], budget: float, threads: int) -> Calibration:
        gpus = self._gpus(trial)
        out = self._run(_remote_calibrate, threads, gpus, trial, budget, threads, gpus)
        return Calibration.from_dict(out["calibration"])

    def probe(
        self, trial: dict[str, Any], k: int, threads: int, window: float, timeout: float = 600.0
    ) -> Probe:
        gpus = 1.0 if self._gpus(trial) else 0.0
        out = self._run(_remote_probe, k * threads, gpus, trial, k, threads, window, gpus, timeout)
        return Probe(**out["probe"])

    @staticmethod
    def _gpus(trial: Mapping[str, Any]) -> float:
        return float(trial.get("_gpus", 0.0))


def _node_check(gpus: float) -> dict[str, Any] | None:
    """An error when this node was given GPUs but torch sees no CUDA device."""
    import socket

    import torch

    if gpus and not torch.cuda.is_available():
        return {
            "error": f"node {socket.gethostname()} declares GPUs to Ray (this task got "
            f"{gpus:g}) but torch {torch.__version__} there sees no CUDA device "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})",
            "seconds": 0.0,
        }
    return None


def _remote_calibrate(
    trial: dict[str, Any], budget: float, threads: int, gpus: float
) -> dict[str, Any]:
    """A Ray task: import what a trial worker imports, then calibrate (the trial's device)."""
    error = _node_check(gpus)
    if error:
        return error
    import importlib

    import torch

    from sweeps.cost.calibrate import calibrate

    importlib.import_module("sweeps.execution.trainable")  # what a Tune trial worker pays once
    c = calibrate({**trial, "device": "cuda" if gpus else "cpu"}, budget=budget, threads=threads)
    memory = torch.cuda.get_device_properties(0).total_memory if gpus else 0
    # "seconds" is the calibration alone: the rest of the round trip is the worker's start.
    return {"calibration": c.as_dict(), "gpu_memory": memory, "seconds": c.seconds}


def _remote_probe(
    trial: dict[str, Any], k: int, threads: int, window: float, gpus: float, timeout: float
) -> dict[str, Any]:
    t0 = time.perf_counter()
    error = _node_check(gpus)
    if error:
        return error
    from sweeps.cost.calibrate import probe

    device = "cuda" if gpus else "cpu"
    p = probe({**trial, "device": device}, k, threads=threads, window=window, timeout=timeout)
    return {"probe": p.as_dict(), "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------- auto resources


def choose_gpus(
    measure: Callable[[int], Probe], peak_memory: int, gpu_memory: int, max_k: int = 8
) -> tuple[float, dict[str, Any]]:
    """The GPU fraction per trial: ``1/k`` for the k past which trials/hour stops rising
    (gain under :data:`KNEE_GAIN`), no more trials than fit in memory with headroom.

    ``measure(k)`` runs k calibrations at once on one GPU.
    """
    fit = max(1, int(gpu_memory * (1 - GPU_HEADROOM) // peak_memory)) if peak_memory else max_k
    probes: list[Probe] = []
    k = 1
    best = 1
    while k <= min(max_k, fit):
        p = measure(k)
        probes.append(p)
        if len(probes) > 1 and p.trials_per_hour < probes[-2].trials_per_hour * (1 + KNEE_GAIN):
            break
        best = k
        k *= 2
    figures = {
        "gpus_per_trial": 1.0 / best,
        "trials_per_gpu": best,
        "memory_fit": fit,
        "peak_memory_bytes": peak_memory,
        "gpu_memory_bytes": gpu_memory,
        "headroom": GPU_HEADROOM,
        "probes": [p.as_dict() for p in probes],
    }
    return 1.0 / best, figures


def choose_cpus(measure: Callable[[int, int], Probe], cpus: int) -> tuple[int, dict[str, Any]]:
    """Threads per trial: the split of a node's ``cpus`` into k trials x t threads (t = 1, 2,
    4, ... dividing it) with the most trials/hour. ``measure(k, t)`` runs them."""
    options = [t for t in (2**i for i in range(8)) if t <= cpus and cpus % t == 0]
    probes = [measure(cpus // t, t) for t in options]
    best = max(probes, key=lambda p: p.trials_per_hour)
    return best.threads, {
        "cpus_per_trial": best.threads,
        "trials_at_once": best.k,
        "probes": [p.as_dict() for p in probes],
    }


# --------------------------------------------------------------------------- the plan


@dataclass
class _Budget:
    total: float
    t0: float = field(default_factory=time.perf_counter)

    @property
    def spent(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def left(self) -> float:
        return self.total - self.spent


def make_plan(
    spec: Spec,
    *,
    address: str | None = None,
    gpus_per_trial: float | str | None = None,
    max_concurrent: int | None = None,
    budget: float = DEFAULT_BUDGET,
    status: Callable[[str], None] | None = None,
) -> Plan:
    """Plan ``spec``'s sweep: shapes, one calibration per shape within ``budget`` seconds,
    resources (``auto`` measured), the list schedule.

    Args:
        address: a Ray cluster to calibrate on (``--address``); default this machine.
        gpus_per_trial: overrides the spec's ``resources.gpus`` (a number or ``"auto"``).
        max_concurrent: at most this many trials at once (default the spec's).

    Raises:
        PlanError: GPUs asked where there are none, a node without CUDA, a failed probe.
        sweeps.records.store.UnreachableError: the Ray address does not answer.
    """
    say = status or (lambda _line: None)
    clock = _Budget(float(budget))
    target: LocalTarget | RayTarget = RayTarget(address, spec) if address else LocalTarget()
    trials, sampled = plan_trials(spec)
    gpus = spec.resources.gpus if gpus_per_trial is None else gpus_per_trial
    cpus = spec.resources.cpus
    limit = max_concurrent or spec.resources.max_concurrent
    if gpus == AUTO and not target.gpus:
        say(f"gpus: auto: {target.name} has no GPU: trials run on CPU")
        gpus = 0.0
    if gpus and not target.gpus:
        where = "this machine" if address is None else f"the cluster at {address}"
        raise PlanError(
            f"gpus per trial {gpus}: {where} has no GPU "
            + ("torch can see" if address is None else "(Ray reports none)")
        )
    device = "cuda" if gpus else "cpu"
    shapes = group_shapes(trials, device)
    plan = Plan(
        spec=spec.name,
        spec_hash=spec.hash,
        target=target.name,
        shapes=shapes,
        order=[t["key"] for t in trials],
        slots=1,
        cpus_per_trial=1.0 if cpus == AUTO else float(cpus),
        gpus_per_trial=0.0 if gpus == AUTO else float(gpus or 0),
        device=device,
        startup_seconds=0.0,
        budget=float(budget),
        calibration_seconds=0.0,
        sampled=sampled,
    )
    say(f"{spec.name}: {len(trials)} trials in {len(shapes)} cost shapes; calibrating on "
        f"{target.name} within {budget:g}s")  # fmt: skip
    _calibrate_shapes(plan, target, clock, say)
    if cpus == AUTO and device == "cpu":
        _auto_cpus(plan, target, clock, say)
    if gpus == AUTO:
        _auto_gpus(plan, target, say)
    plan.slots = _slots(plan, target, limit)
    if device == "cpu" and plan.slots > 1:
        _contention(plan, target, clock, say)
    warmup = max((s.calibration.warmup_seconds for s in shapes if s.calibration), default=0.0)
    plan.startup_seconds = target.startup() + warmup
    plan.calibration_seconds = clock.spent
    return plan


def _setup_guess(plan: Plan, task: str) -> float:
    done = [s.calibration for s in plan.shapes if s.calibration and s.estimated_from is None]
    same = [c.setup_seconds + c.first_step_seconds for c in done if c.task == task]
    return max(same) if same else (max((c.setup_seconds for c in done), default=2.0))


def _calibrate_shapes(
    plan: Plan, target: LocalTarget | RayTarget, clock: _Budget, say: Callable[[str], None]
) -> None:
    threads = max(1, int(plan.cpus_per_trial))
    for i, shape in enumerate(plan.shapes):
        left = len(plan.shapes) - i
        guess = _setup_guess(plan, shape.fields["task"])
        share = (clock.left - guess) / left
        if i > 0 and share < 0.5:
            shape.skipped = f"over the {plan.budget:g}s budget"
            continue
        trial = {**shape.example, "_gpus": plan.gpus_per_trial}
        say(f"  calibrating #{i} {shape.describe()} ({shape.trials} trials)")
        shape.calibration = target.calibrate(trial, max(0.5, min(share, 20.0)), threads)
    for i, shape in enumerate(plan.shapes):
        if shape.calibration is None:
            _estimate(plan, i)
    skipped = [f"#{i}" for i, s in enumerate(plan.shapes) if s.skipped]
    if skipped:
        scaled = [f"#{i}" for i, s in enumerate(plan.shapes) if s.estimated_from is not None]
        plan.skipped.append(
            f"calibration of shapes {', '.join(skipped)} (over the budget); "
            + (f"{', '.join(scaled)} scaled from a measured shape of the same task" if scaled
               else "none could be scaled from a measured shape")
        )  # fmt: skip


def _estimate(plan: Plan, i: int) -> None:
    """Scale shape ``i`` from a measured shape of the same task, batch size and device."""
    shape = plan.shapes[i]
    f = shape.fields
    for j, ref in enumerate(plan.shapes):
        c = ref.calibration
        if c is None or ref.estimated_from is not None:
            continue
        g = ref.fields
        if any(g[n] != f[n] for n in ("task", "batch_size", "bucket", "device", "data_dir")):
            continue
        ratio = (f["passes"] or 1) / (g["passes"] or 1)
        steps = c.steps_per_epoch
        if f["train_size"] != g["train_size"] and f["train_size"] is not None:
            steps = math.ceil(f["train_size"] / _batch_size(f))
            if g["train_size"] is None:
                steps = min(steps, c.steps_per_epoch)
        elif f["train_size"] is None and g["train_size"] is not None:
            continue  # the full training set's size is unknown without loading it
        shape.calibration = replace(
            c,
            step_seconds=c.step_seconds * ratio,
            first_step_seconds=c.first_step_seconds * ratio,
            passes=f["passes"],
            steps_per_epoch=steps,
            epochs=f["epochs"] or c.epochs,
            method=f["method"],
        )
        shape.estimated_from = j
        return


def _batch_size(fields_: Mapping[str, Any]) -> int:
    from models import tasks

    task = tasks.get(fields_["task"], fields_.get("task_args"))
    return int(fields_.get("batch_size") or task.batch_size)


def _slots(plan: Plan, target: LocalTarget | RayTarget, limit: int | None) -> int:
    """Trials at once, as the driver computes them from the cluster's resources."""
    fits = int(target.cpus // plan.cpus_per_trial) if plan.cpus_per_trial else 1
    if plan.gpus_per_trial:
        fits = min(fits, int(target.gpus // plan.gpus_per_trial))
    fits = max(1, fits)
    return min(fits, limit) if limit else fits


def _probe_shape(plan: Plan) -> tuple[int, Shape] | None:
    measured = [(i, s) for i, s in enumerate(plan.shapes) if s.calibration and not s.skipped]
    measured = [(i, s) for i, s in measured if s.estimated_from is None]
    return max(measured, key=lambda p: p[1].trials, default=None)


def _auto_cpus(
    plan: Plan, target: LocalTarget | RayTarget, clock: _Budget, say: Callable[[str], None]
) -> None:
    chosen = _probe_shape(plan)
    cpus = max(1, int(target.node_cpus))
    if chosen is None:
        plan.skipped.append("cpus: auto (no measured shape): 1 CPU a trial")
        return
    i, shape = chosen
    window = max(1.0, min(3.0, clock.left / 4))
    say(f"  cpus: auto: {cpus} CPUs as k trials x t threads, shape #{i}")
    trial = {**shape.example, "_gpus": 0.0}
    threads, figures = choose_cpus(lambda k, t: target.probe(trial, k, t, window), cpus)
    figures["shape"] = i
    plan.cpus_per_trial = float(threads)
    plan.auto["cpus"] = figures
    say(f"  cpus: auto -> {threads} per trial ({figures['trials_at_once']} at once)")
    # The shapes were measured with the old thread count: scale by the probes' step times.
    by_threads = {p["threads"]: p for p in figures["probes"]}
    if 1 in by_threads and threads in by_threads and threads != 1:
        one = sum(by_threads[1]["step_seconds"]) / len(by_threads[1]["step_seconds"])
        now = sum(by_threads[threads]["step_seconds"]) / len(by_threads[threads]["step_seconds"])
        for s in plan.shapes:
            if s.calibration is not None:
                s.calibration = replace(
                    s.calibration, step_seconds=s.calibration.step_seconds * now / one
                )


def _auto_gpus(plan: Plan, target: LocalTarget | RayTarget, say: Callable[[str], None]) -> None:
    chosen = _probe_shape(plan)
    if chosen is None:
        raise PlanError("gpus: auto: no shape could be measured within the budget")
    i, shape = chosen
    peak = max(s.calibration.peak_memory_bytes for s in plan.shapes if s.calibration)
    say(f"  gpus: auto: 1, 2, 4, ... trials at once on one GPU, shape #{i}")
    trial = {**shape.example, "_gpus": 1.0}
    threads = max(1, int(plan.cpus_per_trial))
    fraction, figures = choose_gpus(
        lambda k: target.probe(trial, k, threads, 3.0), peak, int(target.gpu_memory)
    )
    figures["shape"] = i
    plan.gpus_per_trial = fraction
    plan.auto["gpus"] = figures
    say(f"  gpus: auto -> {fraction:g} per trial ({figures['trials_per_gpu']} per GPU)")


def _contention(
    plan: Plan, target: LocalTarget | RayTarget, clock: _Budget, say: Callable[[str], None]
) -> None:
    """How much slower a trial runs with the sweep's other trials beside it (CPU)."""
    chosen = _probe_shape(plan)
    if chosen is None:
        return
    i, shape = chosen
    k = plan.slots
    if isinstance(target, RayTarget):
        k = min(k, max(1, int(target.node_cpus // plan.cpus_per_trial)))
    if k <= 1:
        return  # one trial a node: nothing beside it
    threads = max(1, int(plan.cpus_per_trial))
    probes = (plan.auto.get("cpus") or {}).get("probes") or []
    same = [p for p in probes if p["k"] == k and p["threads"] == threads]
    if same:
        steps = same[0]["step_seconds"]
    else:
        need = _setup_guess(plan, shape.fields["task"]) + 6.0
        if clock.left < need:
            plan.skipped.append(
                f"contention of {k} trials at once (needs ~{need:.0f}s, {clock.left:.0f}s "
                "left): trials assumed as fast together as alone"
            )
            return
        say(f"  {k} trials at once: contention on shape #{i}")
        trial = {**shape.example, "_gpus": 0.0}
        # Eight of the shape's steps at least: text batches differ in length, and a window of
        # two steps gave factors of 1.13 and 1.41 for one shape on one quiet machine.
        window = max(1.0, min(max(3.0, 8 * shape.calibration.step_seconds), clock.left / 3))
        try:
            steps = target.probe(trial, k, threads, window, timeout=clock.left).step_seconds
        except (PlanError, TimeoutError) as e:
            plan.skipped.append(
                f"contention of {k} trials at once ({e}): trials assumed as fast together as alone"
            )
            return
    alone = shape.calibration.step_seconds
    if alone <= 0 or not steps:
        return
    factor = max(1.0, (sum(steps) / len(steps)) / alone)
    for s in plan.shapes:
        s.contention = factor
    plan.auto.setdefault("contention", {"k": k, "factor": factor, "shape": i})
