"""Trials that train identically, merged: one training per seed stands for every cell.

DropAttack perturbs a target only where its ``eps > 0`` and ``p > 0``
(:class:`dropattack.attack.DropAttack` keeps no group otherwise and takes the clean step
alone). A DropAttack trial with ``p = 0`` or ``eps = 0`` therefore trains exactly like every
other such trial of the same task, targets, data and seed, whatever its eps, p, K and
grouping: Table 10's ``p = 0`` row is one training per seed, not seven.

:func:`merge_identical` keeps the first trial of each such family (in grid order) and lists
the cells of the others in its ``stands_for``: each entry holds the merged trial's ``cell``,
``key``, readable ``name``, ``variant`` and its own values of the fields that do not matter.
The trial's MLflow run records them (tag ``dropattack.stands_for``) and
:mod:`sweeps.records.collect` reads the run back once for each cell it stands for, so the
report fills every cell of the grid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["IRRELEVANT_WHEN_IDLE", "idle", "merge_identical", "stood_for_cells"]

#: The fields that do not change an idle DropAttack trial's training.
IRRELEVANT_WHEN_IDLE = ("eps", "p", "k", "groups")
#: Methods whose perturbation is off at ``eps = 0`` or ``p = 0`` (the engine then takes the
#: clean step alone).
_IDLE_METHODS = frozenset({"dropattack"})
#: Trial fields that are bookkeeping, not training.
_LABELS = ("cell", "key", "index", "variant", "passes", "stands_for")


def idle(trial: Mapping[str, Any]) -> bool:
    """A trial whose method perturbs nothing: DropAttack with ``eps = 0`` or ``p = 0``."""
    if trial.get("method") not in _IDLE_METHODS:
        return False
    return trial.get("eps") == 0 or trial.get("p") == 0


def _training(trial: Mapping[str, Any]) -> str:
    """What decides the trial's training: every field but the labels (and, idle, the
    fields that do not matter)."""
    drop = set(_LABELS) | (set(IRRELEVANT_WHEN_IDLE) if idle(trial) else set())
    return json.dumps({k: v for k, v in trial.items() if k not in drop}, sort_keys=True)


def merge_identical(trials: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``trials`` with each family of identical trainings (per seed) merged into its first
    member, which lists the others' cells in ``stands_for``; re-indexed in grid order."""
    from sweeps.specs.names import config_name

    first: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for trial in trials:
        if not idle(trial):
            out.append(trial)
            continue
        identity = _training(trial)
        kept = first.get(identity)
        if kept is None:
            first[identity] = trial
            out.append(trial)
            continue
        kept.setdefault("stands_for", []).append(
            {
                "cell": trial["cell"],
                "key": trial["key"],
                "name": config_name(trial),
                "variant": trial.get("variant", ""),
                **{n: trial.get(n) for n in IRRELEVANT_WHEN_IDLE},
            }
        )
    for i, trial in enumerate(out):
        trial["index"] = i
    return out


def stood_for_cells(trials: Sequence[Mapping[str, Any]]) -> set[str]:
    """Every cell the trials fill: their own and those they stand for."""
    return {t["cell"] for t in trials} | {
        s["cell"] for t in trials for s in t.get("stands_for") or ()
    }
