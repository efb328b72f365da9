"""A measured configuration back as a spec's ``trials`` entry, and seeds a sweep has not used.

What a rerun of some of a sweep's configurations needs (``dropattack confirm``, the rounds of
``dropattack seeds --run``): the entry is rebuilt from the configuration's runs' params, so
the caller checks that it expands to the same cell key.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from sweeps.report.aggregate import CellStats

__all__ = ["fresh_seeds", "trial_fields"]

#: Trial fields a spec entry takes directly from a run's params.
_DIRECT = ("task", "method", "attack", "eps", "p", "k", "data_dir", "vectors")
#: Fields a run logs even when its trial left them at the default: taken only when the
#: configuration's cell key names them (the trial set them).
_IF_IN_CELL = ("groups", "train_size", "epochs", "batch_size", "lr", "step")
#: Params that are not hyperparameters of the method.
_NOT_HP = frozenset({*_DIRECT, *_IF_IN_CELL, "attacked", "seed", "vectors", "dataset", "task_args"})


def fresh_seeds(used: set[str], count: int) -> list[int]:
    """``count`` seeds after the largest integer seed in ``used`` (so none of them)."""
    numbers = [int(s) for s in used if s.lstrip("-").isdigit()]
    start = max(numbers, default=-1) + 1
    return list(range(start, start + count))


def _typed(text: str) -> bool | int | float | str:
    """A hyperparameter param back as the value the spec gave (``"1e-05"`` -> 1e-05)."""
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text)
    return {"true": True, "false": False}.get(text.lower(), text)


def trial_fields(cell: CellStats) -> dict[str, Any]:
    """The spec ``trials`` entry of a configuration, from its runs' params."""
    named = {part.split("=", 1)[0] for part in cell.key.split(";") if "=" in part}
    params = cell.params
    fields: dict[str, Any] = {k: params[k] for k in _DIRECT if params.get(k, "") != ""}
    fields.update({k: params[k] for k in _IF_IN_CELL if k in named and params.get(k, "") != ""})
    if "attack" in fields:
        fields["attack"] = [a for a in fields["attack"].split(";") if a]
    if params.get("task_args"):
        fields["task_args"] = json.loads(params["task_args"])
    hp = {
        k: _typed(v)
        for k, v in params.items()
        if k not in _NOT_HP and not k.startswith("model.") and k in named
    }
    if hp:
        fields["hp"] = hp
    if cell.variant:
        fields["variant"] = cell.variant
    return fields
