"""One readable name per trial, used everywhere a trial is shown.

The console lines and the live view, the MLflow run name and the Ray trial folder all name a
trial the same way: task, variant (or method), the attack set joined with ``+``, then eps,
p, k, the training-set size and method hyperparameters where set, and the seed::

    digits-lenet5 dropattack_ih Input+Conv.1.w eps=5 p=0.3 k=1 s1

The cell key (``task=...;method=...;attack=Input;Conv.1.w;...``) stays the machine key that
tags and searches use; this name is for people. No heavy imports: ``dropattack train``
uses it without Ray or MLflow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["NAME_RULE", "config_name", "folder_name", "name_problem", "trial_name"]

#: What a spec or experiment name may hold: it becomes a folder name (``runs/ray/<name>``),
#: so it starts with a letter or digit and holds only letters, digits, ``_``, ``.``, ``-``.
NAME_RULE = "letters, digits, '-', '_' or '.', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

#: Trial fields shown as ``name=value`` when set, in this order (after the attack set).
VALUE_FIELDS = ("eps", "p", "k", "train_size")
#: Characters kept in a folder name; ``+`` becomes ``-`` (it reads as a space in URLs, which
#: cloud storage paths are), anything else unsafe becomes ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")
_MAX_FOLDER = 160  # well under the 255 bytes file systems allow, with room for Tune's suffixes


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a spec or sweep (``None`` when it can).

    ``..``, ``/``, absolute paths and trailing newlines all fail, so a name never leaves the
    runs folder it is joined to.
    """
    if _NAME.fullmatch(name):
        return None
    return f"expected {NAME_RULE}, got {name!r}"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(map(_fmt, value))
    return str(value)


def config_name(trial: Mapping[str, Any]) -> str:
    """The configuration's name without the seed (what "best so far" names)."""
    parts = [str(trial["task"]), str(trial.get("variant") or trial["method"])]
    attack = trial.get("attack")
    if attack:
        parts.append("+".join(attack) if isinstance(attack, (list, tuple)) else str(attack))
    parts += [f"{name}={_fmt(trial[name])}" for name in VALUE_FIELDS if trial.get(name) is not None]
    parts += [f"{name}={_fmt(value)}" for name, value in sorted((trial.get("hp") or {}).items())]
    return " ".join(parts)


def trial_name(trial: Mapping[str, Any]) -> str:
    """The trial's name: :func:`config_name` and the seed (``... s1``)."""
    return f"{config_name(trial)} s{trial['seed']}"


def folder_name(trial: Mapping[str, Any] | None, trial_id: str) -> str:
    """A file-system-safe folder name: grid index, :func:`trial_name`, Tune's trial id.

    The trial id keeps names unique (two sampled trials can share a configuration); without
    a trial dict (a config Tune made up) the name is ``t_<trial_id>``.
    """
    if not trial or "task" not in trial:
        return f"t_{trial_id}"
    name = _UNSAFE.sub("_", trial_name(trial).replace("+", "-"))
    name = name[: _MAX_FOLDER - len(trial_id) - 8]
    return f"t{trial.get('index', '')}_{name}_{trial_id}"
