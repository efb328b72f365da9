"""One readable name per trial, used everywhere a trial is shown.

The console lines and the live view, the dry run, the report, the MLflow run name and the Ray
trial folder all name a trial the same way: task, variant (or method), the attack set joined
with ``+``, then eps, p, k, the training-set size and method hyperparameters where set, and
the seed::

    digits-lenet5 dropattack_ih Input+Conv.1.w eps=5 p=0.3 k=1 s1

A variant that only repeats the attack set (appendix Tables 5-9 label rows by their attacked
layers) gives way to the method: ``agnews-bigru dropattack Embedding eps=5 ...``. The Ray
folder is the same name between Tune's index and trial id, with only the characters a file
system forbids (``/``, ``\\``, ``:``, ``*``, ``?``, ``"``, ``<``, ``>``, ``|``, control
characters) replaced by ``_``. The cell key (``task=...;method=...;attack=Input+Conv.1.w;...``)
stays the machine key that tags and searches use; this name is for people. No heavy imports:
``dropattack train`` uses it without Ray or MLflow.
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
#: Characters a file system forbids in a name (POSIX: ``/`` and NUL; Windows, where results
#: may be copied: ``\\:*?"<>|`` and control characters); each becomes ``_``.
_FORBIDDEN = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
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


def _aliases(value: Any) -> list[str]:
    """An attack set or a variant as a list of names (``"A;B"``, ``"A,B"``, ``"A+B"``)."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [p.strip() for p in re.split(r"[;,+]", str(value or "")) if p.strip()]


def config_name(trial: Mapping[str, Any]) -> str:
    """The configuration's name without the seed (what "best so far" names)."""
    attack = _aliases(trial.get("attack"))
    variant = trial.get("variant")
    if variant and _aliases(variant) == attack:
        variant = None  # the row label only repeats the attack set
    shown = {_fmt(trial[name]) for name in VALUE_FIELDS if trial.get(name) is not None}
    if variant and str(variant) in shown:
        variant = None  # the row label only repeats a value (Table 3's training size)
    parts = [str(trial["task"]), str(variant or trial["method"])]
    if attack:
        parts.append("+".join(attack))
    parts += [f"{name}={_fmt(trial[name])}" for name in VALUE_FIELDS if trial.get(name) is not None]
    if trial.get("step") not in (None, "paper"):
        parts.append(f"step={trial['step']}")  # DropAttack's step as the authors' code ran it
    parts += [f"{name}={_fmt(value)}" for name, value in sorted((trial.get("hp") or {}).items())]
    return " ".join(parts)


def trial_name(trial: Mapping[str, Any]) -> str:
    """The trial's name: :func:`config_name` and the seed (``... s1``)."""
    return f"{config_name(trial)} s{trial['seed']}"


def folder_name(trial: Mapping[str, Any] | None, trial_id: str) -> str:
    """The trial's folder: grid index, :func:`trial_name`, Tune's trial id.

    The name is :func:`trial_name` with only the characters a file system forbids replaced
    (see the module docstring), cut to stay well under the 255-byte limit. The trial id keeps
    names unique (two sampled trials can share a configuration); without a trial dict (a
    config Tune made up) the name is ``t_<trial_id>``.
    """
    if not trial or "task" not in trial:
        return f"t_{trial_id}"
    name = _FORBIDDEN.sub("_", trial_name(trial))
    name = name[: _MAX_FOLDER - len(trial_id) - 8]
    return f"t{trial.get('index', '')}_{name}_{trial_id}"
