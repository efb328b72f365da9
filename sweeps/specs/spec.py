"""Sweep specs: YAML files validated into a :class:`Spec` before anything runs.

A spec names one experiment: the trial fields every trial shares (``defaults``), search axes
(``space``: a cartesian grid, or distributions for TPE/random search), optional explicit rows
(``trials``, e.g. one per row of a paper table, each crossed with the axes it does not fix),
the seeds, the search algorithm, the scheduler, the resources of one trial and whether trials
keep their best weights::

    name: quickstart
    paper_table: quickstart
    defaults: {task: digits-lenet5, method: dropattack, attack: [Input], epochs: 2}
    space: {eps: [1, 5], p: [0.3, 0.7]}
    seeds: [0, 1]
    search: {algorithm: grid, metric: val_acc, mode: max}
    resources: {cpus: 1}
    keep_checkpoint: true   # each trial logs checkpoint/best.pt (false: metrics only)
    system_metrics: true    # CPU, memory (GPU via NVML) on each trial's run; false, or seconds

Every error names the file, the field path (``space.eps[1]``) and what was expected; task
names and attack aliases are checked against :mod:`models.tasks` (imported on first use).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from sweeps.specs.names import name_problem

__all__ = [
    "ALGORITHMS",
    "AXES",
    "METHOD_FIELDS",
    "METRICS",
    "PAPER_TABLES",
    "SCHEDULERS",
    "SPEC_DIR",
    "Range",
    "Resources",
    "Search",
    "Spec",
    "SpecError",
    "TrialFields",
    "get_task",
    "meta_model",
    "parse_spec",
    "spec_names",
    "task_args_json",
]

SPEC_DIR = Path(__file__).parent
ALGORITHMS = ("grid", "tpe", "random")
SCHEDULERS = ("none", "asha")
METRICS = ("val_acc", "val_f1")
PAPER_TABLES = (
    "", *(f"table{i}" for i in range(2, 11)), "figure2", "search", "quickstart", "extension",
)  # fmt: skip


#: Seconds between system-metrics samples with ``system_metrics: true`` (MLflow's default).
SYSTEM_METRICS_INTERVAL = 10.0
#: Spec fields that change how a sweep is observed, not what it computes (not hashed).
_UNHASHED = {"system_metrics"}


class SpecError(ValueError):
    """A spec that cannot run; the message names the file, the field and what was expected."""


def _split_attack(value: Any) -> Any:
    """``"A;B"`` or ``"A,B"`` (the paper CSV's form) -> ``["A", "B"]``; ``""`` -> ``[]``."""
    if isinstance(value, str):
        return [s.strip() for s in value.replace(";", ",").split(",") if s.strip()]
    return value


def _reject_unknown(cls: type[BaseModel], data: Any) -> Any:
    if isinstance(data, Mapping):
        unknown = [k for k in data if k not in cls.model_fields]
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(map(str, unknown))}; "
                f"allowed: {', '.join(cls.model_fields)}"
            )
    return data


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        return _reject_unknown(cls, data)


class TrialFields(_Strict):
    """A partial trial configuration: the fields of a trial's ``TrialConfig`` a spec may set.

    ``attack`` is a set of the task's paper aliases (or parameter names/globs); ``[]`` is the
    method's default target (the task's input for DropAttack). ``variant`` labels the paper
    table's row; ``{field}`` placeholders are filled from the trial (``"{train_size}"``).
    ``vectors`` starts text models' embeddings from word vectors: a GloVe-format file, or
    ``glove`` for the data root's ``glove/glove.6B.300d.txt`` when present (else random).
    """

    task: str | None = None
    method: str | None = None
    attack: tuple[str, ...] | None = None
    eps: float | None = None
    p: float | None = None
    k: int | None = None
    groups: Literal["paper", "per_target", "joint"] | None = None
    step: Literal["paper", "notebook"] | None = None
    hp: dict[str, float | int | bool | str] | None = None
    train_size: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    data_dir: str | None = None
    vectors: str | None = None
    bucket: bool | None = None
    variant: str | None = None
    task_args: dict[str, Any] | None = None

    @field_validator("attack", mode="before")
    @classmethod
    def _attack(cls, v: Any) -> Any:
        v = _split_attack(v)
        if isinstance(v, (list, tuple)):
            for item in v:
                if not isinstance(item, str) or not item.strip():
                    raise ValueError(f"expected alias names (strings), got {item!r}")
        return v

    @field_validator("eps")
    @classmethod
    def _eps(cls, v: float | None) -> float | None:
        if v is not None and not v >= 0:
            raise ValueError(f"expected eps >= 0, got {v}")
        if v == math.inf:
            raise ValueError(f"expected a finite eps, got {v}")
        return v

    @field_validator("p")
    @classmethod
    def _p(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v <= 1:
            raise ValueError(f"expected 0 <= p <= 1, got {v}")
        return v

    @field_validator("k", "train_size", "epochs", "batch_size")
    @classmethod
    def _positive_int(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"expected an integer >= 1, got {v}")
        return v

    @field_validator("lr")
    @classmethod
    def _lr(cls, v: float | None) -> float | None:
        if v is not None and not v > 0:
            raise ValueError(f"expected lr > 0, got {v}")
        return v

    def fixed(self) -> dict[str, Any]:
        """The fields this entry sets."""
        return {k: v for k, v in self if v is not None}


#: Trial fields only some methods take (``standard`` takes none of them).
METHOD_FIELDS = frozenset({"attack", "eps", "p", "k", "groups", "step"})
MAX_SEEDS = 1000  # a typo such as `seeds: 100000000` must not expand into 10^8 trials
#: Fields a ``space`` axis may vary.
AXES = (
    "task", "method", "attack", "eps", "p", "k", "groups", "train_size", "epochs",
    "batch_size", "lr", "step",
)  # fmt: skip
_INT_AXES = ("k", "train_size", "epochs", "batch_size")
_FLOAT_AXES = ("eps", "p", "lr")


class SeedRounds(_Strict):
    """``seeds: {initial: 3, max: 12, until: decided}``: every cell runs ``initial`` seeds
    (0..initial-1), then the rows measured against a baseline that are not decided get more
    seeds in rounds (``initial`` at a time, with their baselines) until each is decided or has
    ``max`` (``dropattack seeds --run``, :mod:`sweeps.report.seed_rounds`)."""

    initial: int = Field(ge=2)
    max: int
    until: Literal["decided"] = "decided"

    @model_validator(mode="after")
    def _order(self) -> SeedRounds:
        if not self.initial <= self.max <= MAX_SEEDS:
            raise ValueError(
                f"max: expected initial ({self.initial}) <= max <= {MAX_SEEDS}, got {self.max}"
            )
        return self


class Range(_Strict):
    """A numeric interval for TPE/random search: ``{low, high, log, step}``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _order(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"expected low <= high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log: a log range needs low > 0, got low={self.low}")
        if self.step is not None and (self.step <= 0 or self.log):
            raise ValueError("step: expected step > 0, and no step with log: true")
        return self


class Search(_Strict):
    """How trials are chosen and judged."""

    algorithm: Literal["grid", "tpe", "random"] = "grid"
    num_samples: int | None = Field(default=None, ge=1)
    metric: Literal["val_acc", "val_f1"] = "val_acc"
    mode: Literal["max", "min"] = "max"
    scheduler: Literal["none", "asha"] = "none"
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: float = Field(default=3.0, gt=1)
    seed: int = 0
    storage: str | None = None
    study_name: str | None = None


class Resources(_Strict):
    """What one trial gets; several trials with ``gpus < 1`` share a GPU.

    ``auto`` measures the choice before the sweep (``dropattack plan``, :mod:`sweeps.cost.plan`):
    ``gpus: auto`` packs as many trials on a GPU as raise trials/hour and fit its memory;
    ``cpus: auto`` splits a node's CPUs into the trials x threads with the most trials/hour.
    """

    cpus: float | Literal["auto"] = Field(default=1.0)
    gpus: float | Literal["auto"] = Field(default=0.0)
    max_concurrent: int | None = Field(default=None, ge=1)
    max_failures: int = Field(default=1, ge=0)
    reuse_actors: bool = True

    @field_validator("cpus", "gpus", mode="before")
    @classmethod
    def _number_or_auto(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            return v
        raise ValueError(f"expected a number or auto, got {v!r}")

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: float | str) -> float | str:
        if v != "auto" and not v > 0:
            raise ValueError(f"expected a number of CPUs > 0 or auto, got {v}")
        return v

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, v: float | str) -> float | str:
        if v == "auto":
            return v
        if v < 0:
            raise ValueError(f"expected a number of GPUs >= 0 or auto, got {v}")
        if v > 1 and v != int(v):
            raise ValueError(f"expected a fraction <= 1 or a whole number of GPUs, got {v}")
        return v


Axis = list[Any] | Range | dict[str, list[Any]]


def parse_axis(value: Any) -> Axis:
    """A ``space`` entry as written -> values, a :class:`Range` or per-task attack sets.

    Raises:
        ValueError: not a list, a ``{low, high}`` mapping or a mapping of lists.
    """
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping) and ({"low", "high"} & set(value)):
        try:
            return Range.model_validate(value)
        except ValidationError as e:
            msgs = [
                (f"{_loc(err['loc'])}: " if err["loc"] else "")
                + err["msg"].removeprefix("Value error, ")
                for err in e.errors()
            ]
            raise ValueError("; ".join(msgs)) from None
    if isinstance(value, Mapping):
        out = {}
        for key, sets in value.items():
            if not isinstance(sets, list):
                raise ValueError(f"{key}: expected a list of values, got {sets!r}")
            out[str(key)] = sets
        return out
    raise ValueError(
        f"expected a list of values, a range {{low, high[, log, step]}} or, for attack, "
        f"a mapping task -> list of alias sets; got {value!r}"
    )


class Spec(_Strict):
    """A validated sweep spec (see the module docstring).

    ``keep_checkpoint`` (default ``true``): each finished trial logs its best-on-validation
    weights to its MLflow run as ``checkpoint/best.pt``, which ``dropattack landscape`` loads.
    Set it to ``false`` for large sweeps of large models (a text model with a 250,000-word
    vocabulary weighs hundreds of MB per trial) when no landscape is wanted.

    ``system_metrics`` (default ``true``): each trial's MLflow run gets MLflow's system
    metrics (``system/cpu_utilization_percentage``, ``system/system_memory_usage_megabytes``,
    disk and network; ``system/gpu_0_utilization_percentage`` and GPU memory through NVML
    where there is a GPU), sampled every 10 s; a number sets the seconds between samples
    (at least 1), ``false`` turns them off. It changes what is observed, not what is
    computed, so it is not part of :attr:`hash`: a sweep resumes with it switched.
    """

    name: str
    description: str = ""
    paper_table: str = ""
    defaults: TrialFields = TrialFields()
    space: dict[str, Any] = Field(default_factory=dict)
    trials: list[TrialFields] = Field(default_factory=list)
    seeds: list[int] | SeedRounds = Field(default_factory=lambda: [0])
    search: Search = Search()
    resources: Resources = Resources()
    keep_checkpoint: bool = True
    system_metrics: bool | float = True
    source: str = Field(default="", exclude=True)
    _rounds: SeedRounds | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        problem = name_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("paper_table")
    @classmethod
    def _table(cls, v: str) -> str:
        if v not in PAPER_TABLES:
            raise ValueError(f"unknown {v!r}; expected one of {', '.join(map(repr, PAPER_TABLES))}")
        return v

    @field_validator("keep_checkpoint", mode="before")
    @classmethod
    def _keep_checkpoint(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError(f"expected true or false, got {v!r}")
        return v

    @field_validator("system_metrics", mode="before")
    @classmethod
    def _system_metrics(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)) and math.isfinite(v) and v >= 1:
            return float(v)
        raise ValueError(f"expected true, false or the seconds between samples (>= 1), got {v!r}")

    @property
    def system_metrics_interval(self) -> float:
        """Seconds between system-metrics samples; 0 when they are off."""
        if isinstance(self.system_metrics, bool):
            return SYSTEM_METRICS_INTERVAL if self.system_metrics else 0.0
        return float(self.system_metrics)

    @model_validator(mode="after")
    def _seed_rounds(self) -> Spec:
        """``seeds: {initial, max, until}``: the sweep runs ``initial`` seeds; the rounds
        after it are :attr:`seed_rounds`."""
        if isinstance(self.seeds, SeedRounds):
            self._rounds = self.seeds
            object.__setattr__(self, "seeds", list(range(self.seeds.initial)))
        return self

    @property
    def seed_rounds(self) -> SeedRounds | None:
        """The rounds of seeds after the sweep (``seeds: {initial, max, until}``), if any."""
        return self._rounds

    def _content(self, **kwargs: Any) -> dict[str, Any]:
        content = self.model_dump(mode="json", **kwargs)
        if self._rounds is not None:
            content["seeds"] = self._rounds.model_dump(mode="json")
        return content

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            try:
                return SeedRounds.model_validate(v)
            except ValidationError as e:
                err = e.errors()[0]
                where = _loc(err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                raise ValueError(
                    f"{where + ': ' if err['loc'] else ''}{msg}; expected "
                    "{initial: N, max: M, until: decided} with 2 <= N <= M"
                ) from None
        if isinstance(v, int) and not isinstance(v, bool):
            if not 1 <= v <= MAX_SEEDS:
                raise ValueError(f"expected a list of seeds or a count in 1..{MAX_SEEDS}, got {v}")
            return list(range(v))
        if isinstance(v, list):
            if not 1 <= len(v) <= MAX_SEEDS:
                raise ValueError(f"expected 1..{MAX_SEEDS} seeds, got {len(v)}")
            if len(set(map(str, v))) != len(v):
                raise ValueError(f"seeds repeat: {v}")
        return v

    def axes(self) -> dict[str, Axis]:
        """``space`` with every axis parsed (a validated spec parses cleanly)."""
        return {name: parse_axis(value) for name, value in self.space.items()}

    def task_names(self) -> list[str]:
        """Every task the spec names (defaults, trials, a ``task`` axis), sorted."""
        names = {self.defaults.task, *(t.task for t in self.trials)}
        axis = self.axes().get("task")
        names |= set(axis) if isinstance(axis, list) else set()
        return sorted(n for n in names if n)

    @property
    def hash(self) -> str:
        """SHA-256 of the validated content (YAML layout and comments do not count)."""
        content = self._content(exclude=_UNHASHED)
        canon = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()

    def to_yaml(self) -> str:
        """The validated spec as YAML (what the parent run stores as ``spec.yaml``)."""
        return yaml.safe_dump(self._content(), sort_keys=False)


# --------------------------------------------------------------------------- checks


class _Errors:
    """Collects ``(field path, message)`` pairs and raises them as one SpecError."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str, str]] = []

    def add(self, loc: str, msg: str) -> None:
        if (loc, msg) not in self.items:
            self.items.append((loc, msg))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        if len(self.items) == 1:
            loc, msg = self.items[0]
            raise SpecError(f"{self.source}: {loc}: {msg}")
        lines = "\n".join(f"{self.source}: {loc}: {msg}" for loc, msg in self.items)
        raise SpecError(f"{len(self.items)} errors in {self.source}:\n{lines}")


def _loc(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top level)"


def _pydantic_errors(err: ValidationError, errors: _Errors, prefix: Sequence[Any] = ()) -> None:
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] not in ("value_error", "missing") and "input" in e:
            msg = f"{msg} (got {e['input']!r})"
        errors.add(_loc([*prefix, *e["loc"]]), msg)


def task_names() -> list[str]:
    """Tasks a spec may name by name: the built-in ones and the installed ones (entry-point
    group ``dropattack.tasks``); ``package.module:factory`` references besides."""
    from models import external, tasks

    return [*tasks.names(), *external.installed()]


def task_args_json(task_args: Mapping[str, Any] | str | None) -> str:
    if isinstance(task_args, str):
        return task_args
    return json.dumps(dict(task_args or {}), sort_keys=True)


def get_task(task: str, task_args: Mapping[str, Any] | str | None = None) -> Any:
    """The task ``task`` called with ``task_args`` (:func:`models.tasks.get`)."""
    from models import tasks

    return tasks.get(task, json.loads(task_args_json(task_args)) or None)


def meta_model(task: str, task_args: Mapping[str, Any] | str | None = None) -> Any:
    """Task ``task``'s model without data (on the meta device where it can): the names its
    attack targets may use."""
    return _meta_model(task, task_args_json(task_args))


@cache
def _meta_model(task: str, args_json: str) -> Any:
    return get_task(task, args_json).model_for_names()


def _check_task(
    task: Any, loc: str, errors: _Errors, task_args: Mapping[str, Any] | None = None
) -> bool:
    from models import external

    known = task_names()
    if not isinstance(task, str) or (task not in known and not external.is_reference(task)):
        errors.add(
            loc,
            f"unknown task {task!r}; expected one of {', '.join(known)} "
            "or 'package.module:factory'",
        )
        return False
    try:
        get_task(task, task_args)
        meta_model(task, task_args)
    except ValueError as e:
        field = getattr(e, "field", "task_args")
        args_loc = "defaults." if loc.startswith("space.") else loc[: -len("task")]
        errors.add(loc if field == "task" else args_loc + "task_args", str(e))
        return False
    except Exception as e:  # noqa: BLE001 - the user's model builder may raise anything
        errors.add(loc, f"{task}: building its model raised {type(e).__name__}: {e}")
        return False
    return True


def _check_attack(
    task: str,
    attack: Sequence[str],
    loc: str,
    errors: _Errors,
    task_args: Mapping[str, Any] | None = None,
) -> None:
    if attack:
        try:
            get_task(task, task_args).resolve(meta_model(task, task_args), list(attack))
        except ValueError as e:
            errors.add(loc, f"task {task}: {e}")


def _check_metric(spec: Spec, task: str, task_args: Any, errors: _Errors) -> None:
    """The selection metric must be one the task produces."""
    produced = get_task(task, task_args).produces
    metric = spec.search.metric
    if metric.removeprefix("val_") not in produced:
        errors.add(
            "search.metric",
            f"task {task} does not produce {metric}; it produces: "
            f"{', '.join(f'val_{m}' for m in produced)}",
        )


def _check_method(method: Any, loc: str, errors: _Errors) -> bool:
    from dropattack import methods

    if method not in methods.names():
        errors.add(loc, f"unknown method {method!r}; expected one of {', '.join(methods.names())}")
        return False
    return True


def _check_method_fields(
    method: str, fields: Mapping[str, Any], where: Callable[[str], str], errors: _Errors
) -> None:
    """An attack for a method without targets, or an hp the method does not take."""
    from sweeps.trial import method_args

    accepted = method_args(method)
    if fields.get("attack") and "attack" not in accepted:
        errors.add(where("attack"), f"method {method!r} takes no attack targets")
    for name in fields.get("hp") or {}:
        if name not in accepted:
            errors.add(
                f"{where('hp')}.{name}",
                f"method {method!r} takes no {name!r}; it takes: "
                f"{', '.join(sorted(accepted - {'optimizer'}))}",
            )


def _validated(name: str, value: Any, loc: str, errors: _Errors) -> Any:
    """``value`` checked as field ``name`` of a trial; ``None`` when it is invalid."""
    try:
        return getattr(TrialFields.model_validate({name: value}), name)
    except ValidationError as e:
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] != "value_error":
                msg = f"{msg} (got {value!r})"
            errors.add(loc, msg)
        return None


def _check_values(name: str, values: list[Any], loc: str, errors: _Errors) -> list[Any]:
    if not values:
        errors.add(loc, "empty axis: the grid has no point; list at least one value")
    out, seen = [], set()
    for i, value in enumerate(values):
        v = _validated(name, value, f"{loc}[{i}]", errors)
        if v is None:
            continue
        key = json.dumps(v)
        if key in seen:
            errors.add(f"{loc}[{i}]", f"{value!r} is listed twice")
        seen.add(key)
        out.append(v)
    return out


def _check_axis(name: str, raw: Any, algorithm: str, errors: _Errors) -> Axis | None:
    loc = f"space.{name}"
    if name not in AXES:
        errors.add(loc, f"unknown axis; allowed: {', '.join(AXES)}")
        return None
    try:
        axis = parse_axis(raw)
    except ValueError as e:
        errors.add(loc, str(e))
        return None
    if isinstance(axis, Range):
        if algorithm == "grid":
            errors.add(loc, "a grid needs a list of values, not a range {low, high}")
        elif name not in _INT_AXES + _FLOAT_AXES:
            errors.add(loc, f"a range needs a numeric axis ({', '.join(_INT_AXES + _FLOAT_AXES)})")
        else:
            for bound in ("low", "high"):
                value = getattr(axis, bound)
                if not math.isfinite(value):
                    errors.add(f"{loc}.{bound}", f"expected a finite number, got {value}")
                    continue
                _validated(
                    name, int(value) if name in _INT_AXES else value, f"{loc}.{bound}", errors
                )
        return axis
    if isinstance(axis, dict):
        if name != "attack":
            errors.add(loc, "only the attack axis may be given per task ({task: [sets]})")
            return None
        return {t: _check_values(name, sets, f"{loc}.{t}", errors) for t, sets in axis.items()}
    return _check_values(name, axis, loc, errors)


def _check_algorithm(spec: Spec, errors: _Errors) -> None:
    algo = spec.search.algorithm
    if algo == "grid":
        if spec.search.num_samples not in (None, 1):
            errors.add(
                "search.num_samples",
                "a grid runs each cell once per seed (list seeds for repeats); "
                f"expected 1 or nothing, got {spec.search.num_samples}",
            )
        return
    if spec.search.num_samples is None:
        errors.add("search.num_samples", f"{algo} search needs num_samples >= 1")
    if spec.trials:
        errors.add("trials", f"explicit trials are for grid searches; {algo} samples space")
    if len(spec.seeds) != 1:
        errors.add(
            "seeds",
            f"{algo} search trains each sampled configuration once: give one seed, "
            f"got {spec.seeds}",
        )
    if not spec.space:
        errors.add("space", f"{algo} search needs at least one axis to sample")


def _check_spec(spec: Spec, errors: _Errors) -> None:
    """Cross-field checks: axes, tasks, methods and every task's attack sets."""
    _check_algorithm(spec, errors)
    axes = {n: _check_axis(n, raw, spec.search.algorithm, errors) for n, raw in spec.space.items()}
    task_axis = axes.get("task")
    default_args = spec.defaults.task_args
    if isinstance(task_axis, list):
        space_tasks = [
            t
            for i, t in enumerate(task_axis)
            if _check_task(t, f"space.task[{i}]", errors, default_args)
        ]
    else:
        space_tasks = None
    method_axis = axes.get("method")
    if isinstance(method_axis, list):
        for i, m in enumerate(method_axis):
            _check_method(m, f"space.method[{i}]", errors)
    attack_axis = axes.get("attack")
    entries = list(enumerate(spec.trials)) or [(None, TrialFields())]
    used_tasks: set[str] = set()
    for i, entry in entries:
        own = entry.fixed()

        def where(field: str, own: dict = own, i: int | None = i) -> str:
            return f"trials[{i}].{field}" if field in own else f"defaults.{field}"

        merged = {**spec.defaults.fixed(), **own}
        if "method" in merged and _check_method(merged["method"], where("method"), errors):
            _check_method_fields(merged["method"], merged, where, errors)
        if "task" in own or space_tasks is None:
            if "task" not in merged:
                loc = "defaults.task" if i is None else f"trials[{i}].task"
                errors.add(loc, "no task: set defaults.task, space.task or this entry's task")
                continue
            if not _check_task(merged["task"], where("task"), errors, merged.get("task_args")):
                continue
            tasks = [merged["task"]]
        else:
            tasks = space_tasks
        used_tasks.update(tasks)
        args = merged.get("task_args")
        for task in tasks:
            _check_metric(spec, task, args, errors)
            if "attack" in own or attack_axis is None:
                _check_attack(task, merged.get("attack") or (), where("attack"), errors, args)
            elif isinstance(attack_axis, dict):
                if task not in attack_axis:
                    errors.add("space.attack", f"no attack sets for task {task!r}")
            else:
                for j, attack in enumerate(attack_axis):
                    _check_attack(task, attack or (), f"space.attack[{j}]", errors, args)
    if isinstance(attack_axis, dict):
        for task, sets in attack_axis.items():
            if task not in used_tasks:
                errors.add(
                    f"space.attack.{task}",
                    f"task {task!r} is not run by this spec; its tasks: "
                    f"{', '.join(sorted(used_tasks)) or 'none'}",
                )
                continue
            for j, attack in enumerate(sets):
                _check_attack(task, attack or (), f"space.attack.{task}[{j}]", errors, default_args)


def _check_the_rest(data: dict, source: str, locs: list[tuple], errors: _Errors) -> None:
    """The checks that need a validated spec, on what did validate: the spec without the
    values at ``locs`` (mapping keys dropped, so their defaults apply; a whole top-level field
    where a list item failed), so that every error of a spec is reported at once. Only errors
    about fields the spec gives are added."""
    rest = copy.deepcopy(data)
    for loc in locs:
        node: Any = rest
        for part in loc[:-1]:
            node = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
        if _strip_unknown(node, loc):
            continue  # a typo'd key: the mapping's other fields still count
        if isinstance(node, dict) and loc and loc[-1] in node:
            del node[loc[-1]]
        elif loc and loc[0] in rest:
            del rest[loc[0]]
    try:
        spec = Spec.model_validate({**rest, "source": source})
    except (ValidationError, TypeError, KeyError):
        return
    found = _Errors(source)
    _check_spec(spec, found)
    for loc, msg in found.items:
        if loc.split(".", 1)[0].split("[", 1)[0] in rest:
            errors.add(loc, msg)


def _strip_unknown(parent: Any, loc: tuple) -> bool:
    """Drop the unknown keys of the mapping at ``loc`` (``defaults``, ``trials[i]``,
    ``search``, ``resources``) in place; whether there were any."""
    if not loc:
        return False
    model = {"defaults": TrialFields, "search": Search, "resources": Resources}.get(loc[0])
    if loc and loc[0] == "trials" and len(loc) == 2:
        model = TrialFields
    elif len(loc) != 1:
        model = None
    if model is None or not isinstance(parent, (dict, list)) or not _has(parent, loc[-1]):
        return False
    node = parent[loc[-1]]
    unknown = [k for k in node if k not in model.model_fields] if isinstance(node, dict) else []
    for key in unknown:
        del node[key]
    return bool(unknown)


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)


# --------------------------------------------------------------------------- loading


def spec_names() -> list[str]:
    """Specs shipped in ``sweeps/specs``."""
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))


def parse_spec(
    data: Any,
    source: str = "<spec>",
    default_name: str | None = None,
    expand: Callable[[Spec], Any] | None = None,
) -> Spec:
    """Validate a parsed YAML document; ``expand`` (the grid expansion) may add errors.

    Raises:
        SpecError: every problem found, each with its field path.
    """
    errors = _Errors(source)
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: expected a mapping of spec fields, got {type(data).__name__}")
    data = dict(data)
    if "name" not in data and default_name:
        data["name"] = default_name
    try:
        spec = Spec.model_validate({**data, "source": source})
    except ValidationError as e:
        _pydantic_errors(e, errors)
        _check_the_rest(data, source, [tuple(err["loc"]) for err in e.errors()], errors)
        errors.raise_if_any()
        raise
    _check_spec(spec, errors)
    errors.raise_if_any()
    if expand is not None:
        try:
            expand(spec)
        except SpecError as e:
            raise SpecError(f"{source}: {e}") from None
    return spec
