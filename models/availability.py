"""Each task's data: where it is read from, whether it is there, what ``fetch`` gets for it.

The logic behind ``dropattack data list|fetch|check`` and the data checks of ``plan``,
``sweep`` and ``submit``: task names map to their dataset (:mod:`models.tasks`), datasets to
the files a load reads (:mod:`models.data.inventory`) and to the items
:mod:`models.data.sources` downloads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models import tasks
from models.data.inventory import Needs, check_files, glove_file, needs
from models.data.sources import ITEMS

__all__ = ["TaskFiles", "check", "fetch_items", "task_data", "task_problems"]


@dataclass
class TaskFiles:
    """One task's data under one data root."""

    task: str
    dataset: str
    needs: Needs
    item: str | None
    glove: Path | None
    text: bool

    def as_json(self) -> dict:
        """One line of ``dropattack data list --json``."""
        return {
            "task": self.task,
            "dataset": self.dataset,
            "reads_from": self.needs.where,
            "files": [str(p) for p in self.needs.files],
            "present": self.needs.problem is None,
            "problem": self.needs.problem,
            "fetch": self.item,
            "glove": str(self.glove) if self.glove else None,
        }


def task_data(task: str, data_dir: str | os.PathLike | None) -> TaskFiles:
    """Where ``task`` reads from under ``data_dir`` (resolved as a trial resolves it).

    Raises:
        ValueError: an unknown task.
    """
    t = tasks.get(task)
    n = needs(t.dataset, data_dir)
    return TaskFiles(
        task,
        t.dataset,
        n,
        t.dataset if t.dataset in ITEMS else None,
        glove_file(n.root) if t.is_text else None,
        t.is_text,
    )


def fetch_items(names: Iterable[str]) -> list[str]:
    """Task or item names -> the items to fetch, in order, once each.

    Raises:
        ValueError: a name that is neither (one line listing both).
    """
    out: list[str] = []
    for name in names:
        if name in ITEMS:
            out.append(name)
            continue
        if name in tasks.names():
            dataset = tasks.get(name).dataset
            if dataset not in ITEMS:
                raise ValueError(f"{name}: its dataset {dataset!r} needs no download")
            out.append(dataset)
            continue
        raise ValueError(
            f"data fetch: unknown {name!r}; expected a task ({', '.join(tasks.names())}) or "
            f"one of {', '.join(ITEMS)}"
        )
    return list(dict.fromkeys(out))


def _reads_a_dataset(task: str) -> bool:
    """Whether ``task`` reads one of the datasets this package knows (a paper task)."""
    try:
        return isinstance(getattr(tasks.get(task), "dataset", None), str)
    except Exception:  # a user's factory that needs its task_args: its own data, its own checks
        return False


def task_problems(pairs: Iterable[tuple[str, str | None]]) -> list[str]:
    """One line per (task, data_dir) whose data is not there, each naming the fix."""
    out = []
    for task, data_dir in dict.fromkeys(pairs):
        if not _reads_a_dataset(task):
            continue  # a task from the user's code loads its own data
        problem = task_data(task, data_dir).needs.problem
        if problem and problem not in out:
            out.append(problem)
    return out


def check(
    data_dir: str | os.PathLike, names: Sequence[str] = (), *, checksums: bool = True
) -> tuple[list[TaskFiles], list[str]]:
    """What jobs on ``names`` (default: every task whose data is present) would read under
    ``data_dir``, and the problems: data missing, or files whose size or SHA-256 differ from
    the manifest. A missing task's data is a problem only when the task is named.

    Raises:
        ValueError: an unknown task name.
    """
    every = [task_data(n, data_dir) for n in (names or tasks.names())]
    rows = every if names else [r for r in every if r.needs.problem is None and r.needs.root]
    problems = [r.needs.problem for r in rows if r.needs.problem]
    root = Path(data_dir).expanduser()
    seen: set[Path] = set()
    for row in rows:
        files = [p for p in row.needs.files if p not in seen]
        if row.glove is not None:
            files.append(row.glove)
        seen.update(files)
        if row.needs.problem is None and row.needs.checked:
            problems += check_files(root, files, checksums=checksums)
    if not rows:
        problems.append(
            f"{root}: no task's data is there; fetch some with `dropattack data fetch TASK "
            f"--to {root}` (or name tasks to check)"
        )
    return rows, list(dict.fromkeys(problems))
