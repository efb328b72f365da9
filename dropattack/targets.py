"""Resolve attack targets (``"input"``, parameter names, globs) to tensors.

A target is either the model's float input ``x`` or one parameter. Parameters that are the
weight of an :class:`torch.nn.Embedding` are the paper's *input* attack for text models
("The attack on the input in the text model is essentially an attack on the weight parameters
of the embedding layer", §3); every other parameter is a hidden-layer (*weight*) target.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

INPUT = "input"

__all__ = ["INPUT", "Target", "resolve", "per_target"]


@dataclass(frozen=True, eq=False)
class Target:
    """One attacked tensor.

    Attributes:
        name: ``"input"`` or the parameter's name in ``model.named_parameters()``.
        pattern: the entry of ``attack`` that selected it (keys ``eps``/``p`` dicts too).
        param: the parameter, or ``None`` for the input.
        embedding: the :class:`~torch.nn.Embedding` whose weight this is, if any; its
            perturbation is restricted to the rows the batch looks up.
    """

    name: str
    pattern: str
    param: nn.Parameter | None = None
    embedding: nn.Embedding | None = None

    @property
    def is_input(self) -> bool:
        return self.param is None

    @property
    def group(self) -> str:
        """``"input"`` for x and embedding weights (Eq. 5's x term), else ``"weight"``."""
        return "input" if self.param is None or self.embedding is not None else "weight"


def resolve(model: nn.Module, attack: str | Sequence[str]) -> list[Target]:
    """Resolve ``attack`` on ``model`` to targets, in the order given, each tensor once.

    Raises:
        ValueError: ``attack`` is empty, names no parameter, or names a frozen parameter.
    """
    patterns = [attack] if isinstance(attack, str) else list(attack)
    if not patterns:
        raise ValueError("attack: expected at least one target ('input' or a parameter name)")
    params = dict(model.named_parameters())
    embeddings = {id(m.weight): m for m in model.modules() if isinstance(m, nn.Embedding)}
    targets: list[Target] = []
    seen: set[str] = set()
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"attack: expected non-empty strings, got {pattern!r}")
        if pattern == INPUT:
            names = [INPUT]
        elif pattern in params:
            names = [pattern]
        else:
            names = [n for n in params if fnmatch.fnmatchcase(n, pattern)]
        if not names:
            raise ValueError(
                f"attack: {pattern!r} matches no parameter of {type(model).__name__}; "
                f"expected 'input' or one of: {', '.join(params)}"
            )
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            if name == INPUT:
                targets.append(Target(INPUT, pattern))
                continue
            param = params[name]
            if not param.requires_grad:
                raise ValueError(
                    f"attack: parameter {name!r} does not require grad; "
                    "only trainable parameters can be attacked"
                )
            emb = embeddings.get(id(param))
            if emb is not None and emb.sparse:
                raise ValueError(
                    f"attack: {name!r} belongs to an nn.Embedding with sparse=True; "
                    "sparse gradients are not supported, use sparse=False"
                )
            targets.append(Target(name, pattern, param, emb))
    return targets


def per_target(
    value: float | Mapping[str, float], targets: Sequence[Target], arg: str, low: float, high: float
) -> dict[str, float]:
    """Expand a number or a dict keyed by attack entry or parameter name to one value a target.

    Raises:
        ValueError: a value outside ``[low, high]``, a missing target or an unknown key.
    """
    if isinstance(value, Mapping):
        known = {t.name for t in targets} | {t.pattern for t in targets}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"{arg}: unknown key(s) {unknown}; expected keys among {sorted(known)}"
            )
        out = {}
        for t in targets:
            if t.name in value:
                out[t.name] = value[t.name]
            elif t.pattern in value:
                out[t.name] = value[t.pattern]
            else:
                raise ValueError(f"{arg}: no value for target {t.name!r}")
    else:
        out = {t.name: value for t in targets}
    for name, v in out.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{arg}: expected a number for {name!r}, got {v!r}")
        if not (low <= float(v) <= high):
            hi = "inf" if high == float("inf") else high
            raise ValueError(
                f"{arg}: {v!r} for {name!r} is outside the allowed range [{low}, {hi}]"
            )
        out[name] = float(v)
    return out


def check_float_input(x: torch.Tensor) -> None:
    """The input target needs a floating tensor to perturb."""
    if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
        dtype = getattr(x, "dtype", type(x).__name__)
        raise ValueError(
            f"attack: 'input' needs a floating-point input tensor, got {dtype}; "
            "for token ids attack the embedding weight instead (the paper's 'Embedding' target)"
        )
