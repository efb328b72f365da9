"""Search spaces from a :class:`~sweeps.specs.spec.Spec`: the grid's trials, or an Optuna space.

A *trial* here is a plain dict (what Ray Tune carries in a trial's config): the fields of
``sweeps.trial.TrialConfig`` with every default filled in, plus

- ``variant``: the paper table's row label;
- ``cell``: a stable key of the configuration without the seed
  (``task=imdb-lstm;method=dropattack;attack=Embedding+Lstm.ih.w;eps=7;p=0.7;k=1``: fields
  joined by ``;``, a list's items by ``+``; :func:`canonical_cell` reads older keys);
- ``key``: what identifies the trial within its sweep (the cell and the seed; for sampled
  searches also the sample's number), used to find its MLflow run again on resume;
- ``index``: its position in the grid (or the sample's number);
- ``passes``: forward/backward passes a training step costs (:func:`step_passes`).

A grid is expanded in a fixed order (entries, then axes in spec order, then seeds), so every
expansion of one spec gives the same list. TPE/random searches sample through
:class:`DefineByRun`, an Optuna define-by-run function whose attack choice depends on the task.
"""

from __future__ import annotations

import copy
import itertools
import json
import string
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sweeps.specs.merge import merge_identical, stood_for_cells
from sweeps.specs.names import trial_name
from sweeps.specs.spec import (
    AXES,
    METHOD_FIELDS,
    Range,
    Spec,
    SpecError,
    TrialFields,
    get_task,
    meta_model,
    task_args_json,
)

__all__ = [
    "DefineByRun",
    "canonical_cell",
    "cell_key",
    "describe_space",
    "describe_trials",
    "expand_grid",
    "make_trial",
    "method_fields",
    "step_passes",
]

# TrialConfig fields a trial dict carries, in the order of the cell key's extras.
_EXTRA_KEYS = ("groups", "train_size", "epochs", "batch_size", "lr", "step")
_INT_FIELDS = ("k", "train_size", "epochs", "batch_size")
_DEFAULT_METHOD = "dropattack"


@cache
def _config_defaults() -> dict[str, Any]:
    """Defaults of ``sweeps.trial.TrialConfig`` (the one source of truth for them)."""
    import dataclasses

    from sweeps.trial import TrialConfig

    out = {}
    for f in dataclasses.fields(TrialConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@cache
def method_defaults(method: str) -> dict[str, Any]:
    """The method's own eps, p, k and groups defaults, for fields a spec leaves unset."""
    from sweeps.trial import method_defaults as defaults

    return defaults(method)


@cache
def method_fields(method: str) -> frozenset[str]:
    """Which of attack, eps, p, k, groups method ``method`` takes (the others do not apply)."""
    from sweeps.trial import method_args

    return frozenset(method_args(method)) & METHOD_FIELDS


def step_passes(trial: Mapping[str, Any]) -> int | None:
    """Forward/backward passes one training step of the trial's method costs (its ``passes``).

    The method is built on a copy of the task's meta-device model (no data, no memory):
    DropAttack's ``1 + K * G`` depends on how its targets fall into groups. ``None`` when the
    method cannot be built there. The seed does not enter, so seeds of a cell share one build.
    """
    from sweeps.trial import method_args

    accepted = method_args(trial["method"])
    kwargs: dict[str, Any] = {
        n: trial[n] for n in ("eps", "p", "k", "groups", "step") if trial.get(n) is not None
    }
    if "attack" in accepted:
        kwargs["attack"] = list(trial.get("attacked") or ())
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    kwargs.update(trial.get("hp") or {})
    try:
        key = json.dumps(kwargs, sort_keys=True)
    except TypeError:
        return None
    args = task_args_json(trial.get("task_args"))
    return _passes(trial["task"], trial["method"], key, "optimizer" in accepted, args)


@cache
def _passes(
    task: str, method: str, kwargs_json: str, optimizer: bool, task_args: str = "{}"
) -> int | None:
    import torch

    from dropattack import methods

    kwargs = json.loads(kwargs_json)
    try:
        # a method may set module fields (dropout p)
        model = copy.deepcopy(meta_model(task, task_args))
        if optimizer:
            kwargs["optimizer"] = torch.optim.SGD(model.parameters(), lr=1.0)
        return int(methods.get(method, model, **kwargs).passes)
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        return None


def _fmt(value: Any) -> str:
    """Numbers as written (7, 0.7, 1e-05), lists joined by ';'."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (list, tuple)):
        return ";".join(map(str, value))
    return str(value)


def _key_value(value: Any) -> str:
    """A cell key's value: :func:`_fmt`, with a list's items joined by ``+`` (``;`` separates
    the key's fields)."""
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return _fmt(value)


def cell_key(trial: Mapping[str, Any]) -> str:
    """The configuration without the seed, as ``name=value`` pairs joined by ';'.

    Task and method; then attack (its aliases joined by ``+``), eps, p and k where the method
    takes them; then the other fields the trial changes from their defaults (groups,
    train_size, epochs, batch_size, lr) and method hyperparameters.
    """
    defaults = {**_config_defaults(), **method_defaults(trial["method"])}
    parts = [f"task={trial['task']}", f"method={trial['method']}"]
    if trial.get("task_args"):
        parts.append(f"task_args={json.dumps(trial['task_args'], sort_keys=True)}")
    parts += [
        f"{k}={_key_value(trial[k])}"
        for k in ("attack", "eps", "p", "k")
        if trial.get(k) is not None
    ]
    for k in _EXTRA_KEYS:
        if trial.get(k) is not None and trial[k] != defaults.get(k):
            parts.append(f"{k}={_key_value(trial[k])}")
    if trial.get("bucket"):
        parts.append("bucket=true")  # other batches: another configuration
    for name, value in sorted((trial.get("hp") or {}).items()):
        parts.append(f"{name}={_key_value(value)}")
    return ";".join(parts)


def canonical_cell(key: str) -> str:
    """A cell key as :func:`cell_key` writes it now, from any version's key.

    Keys written by earlier versions joined a list's items with ``;``, the field separator
    (``attack=Input;Conv.1.w;eps=1``): a part without ``=`` continues the previous field's
    list, so it is joined back with ``+``. Current keys come back unchanged.
    """
    fields: list[str] = []
    for part in key.split(";"):
        if "=" in part or not fields:
            fields.append(part)
        else:
            fields[-1] += f"+{part}"
    return ";".join(fields)


def _variant(template: str | None, trial: Mapping[str, Any], loc: str) -> str:
    if not template:
        return ""
    fields = {k: _fmt(v) for k, v in trial.items() if k not in ("hp", "seed", "variant")}
    fields.update({k: _fmt(v) for k, v in (trial.get("hp") or {}).items()})
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        unknown = [f for f in names if f not in fields]  # also '{eps.real}', '{eps[0]}'
        if unknown:
            raise KeyError(unknown[0])
        return template.format_map(fields)
    except (KeyError, IndexError, ValueError) as e:
        raise SpecError(
            f"{loc}.variant: cannot fill {template!r} ({e}); placeholders may name: "
            f"{', '.join(sorted(fields))}"
        ) from None


def make_trial(
    fields: Mapping[str, Any], seed: int, index: int, variant: str | None = None, loc: str = ""
) -> dict[str, Any]:
    """A complete trial dict from the fields a spec sets.

    Defaults of ``TrialConfig`` are filled in; attack, eps, p, k and groups are ``None`` for a
    method that does not take them. A method that takes ``attack`` gets the task's input
    target when none is given, and ``attacked`` lists the resolved parameter names.
    """
    defaults = _config_defaults()
    trial: dict[str, Any] = {}
    extras = [k for k in _EXTRA_KEYS if k not in METHOD_FIELDS]
    for name in ("task", "method", *sorted(METHOD_FIELDS), "hp", *extras):
        value = fields.get(name)
        trial[name] = defaults.get(name) if value is None else value
    trial["method"] = trial["method"] or _DEFAULT_METHOD
    takes = method_fields(trial["method"])
    for name in METHOD_FIELDS - takes:
        trial[name] = None
    own = method_defaults(trial["method"])
    for name in takes & own.keys():
        if fields.get(name) is None:
            trial[name] = own[name]
    if fields.get("task_args"):
        trial["task_args"] = dict(fields["task_args"])
    trial["attacked"] = []
    if "attack" in takes:
        task = get_task(trial["task"], trial.get("task_args"))
        trial["attack"] = list(trial["attack"] or ()) or [task.input_alias]
        model = meta_model(trial["task"], trial.get("task_args"))
        trial["attacked"] = task.resolve(model, trial["attack"])
    for name in ("eps", "p"):
        if trial[name] is not None:
            trial[name] = float(trial[name])
    trial["hp"] = dict(trial["hp"] or {})
    trial["data_dir"] = fields.get("data_dir")
    if fields.get("vectors"):
        trial["vectors"] = fields["vectors"]
    if fields.get("bucket") is not None:
        trial["bucket"] = fields["bucket"]
    trial["seed"] = int(seed)
    trial["passes"] = step_passes(trial)
    trial["cell"] = cell_key(trial)
    trial["variant"] = _variant(variant, trial, loc)
    trial["key"] = f"{trial['cell']};seed={seed}"
    trial["index"] = index
    return trial


def _points(axes: Mapping[str, Any], fixed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The product of the axes an entry does not fix, in spec order.

    An axis the trial's method does not take (eps for ``standard``) is not crossed: the
    baseline of a grid runs once per seed, not once per eps.
    """
    names = [n for n in axes if n not in fixed and n != "attack"]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for combo in itertools.product(*(axes[n] for n in names)):
        point = dict(zip(names, combo, strict=True))
        method = point.get("method", fixed.get("method")) or _DEFAULT_METHOD
        takes = method_fields(method)
        point = {k: v for k, v in point.items() if k not in METHOD_FIELDS or k in takes}
        attack = axes.get("attack")
        if attack is None or "attack" in fixed or "attack" not in takes:
            options = [point]
        else:
            task = point.get("task", fixed.get("task"))
            sets = attack[task] if isinstance(attack, dict) else attack
            options = [{**point, "attack": a} for a in sets]
        for option in options:
            canon = repr(sorted(option.items()))
            if canon not in seen:
                seen.add(canon)
                out.append(option)
    return out


def _entries(spec: Spec) -> list[tuple[str, TrialFields]]:
    if spec.trials:
        return [(f"trials[{i}]", e) for i, e in enumerate(spec.trials)]
    return [("defaults", TrialFields())]


def _validated_axes(spec: Spec) -> dict[str, Any]:
    """Axis values as validated trial fields (``"A;B"`` -> ``("A", "B")``); ranges as is."""

    def check(name: str, values: list[Any]) -> list[Any]:
        return [getattr(TrialFields.model_validate({name: v}), name) for v in values]

    out: dict[str, Any] = {}
    for name, axis in spec.axes().items():
        if isinstance(axis, Range):
            out[name] = axis
        elif isinstance(axis, dict):
            out[name] = {t: check(name, values) for t, values in axis.items()}
        else:
            out[name] = check(name, axis)
    return out


def expand_grid(spec: Spec, merge: bool = True) -> list[dict[str, Any]]:
    """Every trial of a grid spec, each cell once per seed, in a fixed order; with ``merge``,
    cells that train identically once per seed (:mod:`sweeps.specs.merge`: the kept trial's
    ``stands_for`` lists the others).

    Raises:
        SpecError: the grid is empty, two entries give the same cell, or a variant
            template names an unknown field.
    """
    if spec.search.algorithm != "grid":
        raise SpecError(f"search.algorithm: expand_grid needs a grid spec, got {spec.search}")
    axes = _validated_axes(spec)
    trials: list[dict[str, Any]] = []
    origin: dict[str, str] = {}
    for loc, entry in _entries(spec):
        own = entry.fixed()
        base = {**spec.defaults.fixed(), **own}
        template = own.get("variant", spec.defaults.variant)
        for point in _points(axes, own):
            fields = {**base, **point}
            for seed in spec.seeds:
                trial = make_trial(fields, seed, len(trials), template, loc)
                if trial["key"] in origin:
                    raise SpecError(
                        f"{loc}: repeats the trial {trial['key']!r} of {origin[trial['key']]}; "
                        "each cell runs once per seed"
                    )
                origin[trial["key"]] = loc
                trials.append(trial)
    if not trials:
        raise SpecError("space: the grid is empty; every axis needs at least one value")
    return merge_identical(trials) if merge else trials


def _encode(value: Any) -> Any:
    """Optuna choices must be scalars: attack sets become ``"A;B"``."""
    return ";".join(value) if isinstance(value, (list, tuple)) else value


def _decode(name: str, value: Any) -> Any:
    if name == "attack":
        return [s for s in str(value).split(";") if s]
    return value


class DefineByRun:
    """Optuna define-by-run space of a TPE/random spec (picklable, for Ray's checkpoints).

    Axes are drawn in the order task, method, attack, then the rest. An ``attack`` axis
    given per task is conditional: its parameter is ``attack@<task>``, drawn from that
    task's candidate sets only.
    """

    def __init__(self, spec: Spec) -> None:
        self.defaults = spec.defaults.fixed()
        self.variant = spec.defaults.variant
        self.seed = spec.seeds[0]
        axes = _validated_axes(spec)
        self.axes = {n: axes[n] for n in AXES if n in axes}

    def __call__(self, trial: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, axis in self.axes.items():
            if isinstance(axis, Range):
                values[name] = self._suggest_range(trial, name, axis)
            elif isinstance(axis, dict):
                task = values.get("task", self.defaults.get("task"))
                choice = trial.suggest_categorical(
                    f"{name}@{task}", [_encode(v) for v in axis[task]]
                )
                values[name] = _decode(name, choice)
            else:
                choice = trial.suggest_categorical(name, [_encode(v) for v in axis])
                values[name] = _decode(name, choice)
        cfg = make_trial({**self.defaults, **values}, self.seed, trial.number, self.variant)
        cfg["key"] = f"{cfg['key']};sample={trial.number}"
        return {"trial": cfg}

    @staticmethod
    def _suggest_range(trial: Any, name: str, r: Range) -> Any:
        if name in _INT_FIELDS:
            step = int(r.step) if r.step else 1
            return trial.suggest_int(name, int(r.low), int(r.high), step=step, log=r.log)
        return trial.suggest_float(name, r.low, r.high, log=r.log, step=r.step)


def describe_space(spec: Spec) -> list[str]:
    """One line per axis of a sampled search (what ``--dry-run`` prints for TPE/random)."""
    lines = []
    for name, axis in spec.axes().items():
        if isinstance(axis, Range):
            scale = " (log)" if axis.log else ""
            step = f" step {axis.step:g}" if axis.step else ""
            lines.append(f"{name}: [{axis.low:g}, {axis.high:g}]{scale}{step}")
        elif isinstance(axis, dict):
            for task, sets in axis.items():
                lines.append(f"{name} | task={task}: {_choices(sets)}")
        else:
            lines.append(f"{name}: {_choices(axis)}")
    return lines


def _choices(values: Sequence[Any]) -> str:
    return " | ".join(_fmt(v) or "(default)" for v in values)


def describe_trials(spec: Spec, gpus: float | str | None = None) -> list[str]:
    """What ``--dry-run`` prints: a header (trials, where they run: ``gpus`` overrides the
    spec's ``resources.gpus``), then a grid's trials (one line each: index, passes per step and
    the trial's readable name, :func:`sweeps.specs.names.trial_name`), or a sampled space."""
    from sweeps.specs.placement import intended_placement

    where = f"  where: {intended_placement(spec, gpus)}"
    if spec.search.algorithm != "grid":
        head = (
            f"{spec.name}: {spec.search.algorithm} search, {spec.search.num_samples} trials, "
            f"seed {spec.seeds[0]}, {spec.search.mode} {spec.search.metric}"
        )
        fixed = ", ".join(f"{k}={v}" for k, v in spec.defaults.fixed().items())
        return [head, where, f"  fixed: {fixed}", *(f"  {line}" for line in describe_space(spec))]
    trials = expand_grid(spec)
    cells = len(stood_for_cells(trials))
    seeds = len(spec.seeds)
    saved = sum(len(t.get("stands_for") or ()) for t in trials)
    less = f", less {saved} that would train as others do" if saved else ""
    lines = [
        f"{spec.name}: grid, {len(trials)} trials ({cells} cells x {seeds} "
        f"{'seed' if seeds == 1 else 'seeds'}{less}), {spec.search.mode} {spec.search.metric}",
        where,
    ]
    if saved:
        lines.append(
            f"  merged: {saved} trials saved: DropAttack with p = 0 or eps = 0 perturbs nothing, "
            "so its eps, p, K and groups do not change the training; one trial per seed "
            "fills each such family of cells"
        )
    width = len(str(len(trials) - 1))
    for t in trials:
        passes = "?" if t.get("passes") is None else t["passes"]
        also = len(t.get("stands_for") or ())
        more = f" (also fills {also} cells)" if also else ""
        lines.append(f"  {t['index']:>{width}} passes={passes} {trial_name(t)}{more}")
    return lines
