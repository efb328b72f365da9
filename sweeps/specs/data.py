"""Where a spec's trials read their data: the ``--data-dir`` override and the check before a run.

The data root of a trial, first found wins:

1. ``--data-dir DIR`` on ``plan``, ``sweep``, ``submit``, ``confirm``, ``train`` and
   ``landscape`` (:func:`apply_data_dir` writes it into every trial of the spec);
2. the spec's ``data_dir`` (in ``defaults`` or a ``trials`` entry);
3. ``$DROPATTACK_DATA``, read where the trial runs;
4. none: a task that needs data fails at once, naming the fix.

:func:`data_problems` finds, before anything is calibrated, started or queued, every task
whose data is not where its trials will read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweeps.specs.space import expand_grid
from sweeps.specs.spec import Spec

__all__ = [
    "DATA_DIR_HELP",
    "absolute",
    "apply_data_dir",
    "data_pairs",
    "data_problems",
    "first_problem",
]

DATA_DIR_HELP = (
    "data root of every task (the layout `dropattack data fetch` writes; 'hf' for Hugging Face "
    "datasets); it wins over the spec's data_dir, which wins over $DROPATTACK_DATA"
)


def absolute(data_dir: str | None) -> str | None:
    """A folder as an absolute path (a job elsewhere reads the same one); ``hf`` as given."""
    if not data_dir or data_dir == "hf" or data_dir.startswith("hf:"):
        return data_dir
    return str(Path(data_dir).expanduser().resolve())


def apply_data_dir(data: Any, data_dir: str | None) -> Any:
    """A spec document (parsed YAML) whose trials all read ``data_dir`` (unchanged if None)."""
    if not data_dir or not isinstance(data, Mapping):
        return data
    out = dict(data)
    defaults = out.get("defaults")
    if defaults is None or isinstance(defaults, Mapping):
        out["defaults"] = {**(defaults or {}), "data_dir": absolute(data_dir)}
    trials = out.get("trials")
    if isinstance(trials, list):
        out["trials"] = [
            {k: v for k, v in t.items() if k != "data_dir"} if isinstance(t, Mapping) else t
            for t in trials
        ]
    return out


def data_pairs(spec: Spec) -> list[tuple[str, str | None]]:
    """(task, data_dir) of every trial (for a grid) or of every task a search may draw."""
    if spec.search.algorithm == "grid":
        return list(dict.fromkeys((t["task"], t.get("data_dir")) for t in expand_grid(spec)))
    tasks = spec.space.get("task") or spec.defaults.task
    names = [tasks] if isinstance(tasks, str) else list(tasks or [])
    pairs = [(t, spec.defaults.data_dir) for t in names]
    pairs += [
        (e.task or t, e.data_dir or spec.defaults.data_dir) for e in spec.trials for t in names
    ]
    return list(dict.fromkeys(p for p in pairs if p[0]))


def data_problems(spec: Spec) -> list[str]:
    """One line per task whose data is missing where its trials will read it (the root
    resolved here as in the trial: ``$DROPATTACK_DATA`` of this process)."""
    from models.availability import task_problems  # imports torch

    return task_problems(data_pairs(spec))


def first_problem(problems: list[str]) -> str:
    """The first problem, with how many more there are."""
    more = f" (and {len(problems) - 1} more: `dropattack data list`)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"
