"""Tasks from the user's code: ``"package.module:factory"`` references and installed packages.

A spec names a factory as ``task: "package.module:factory"`` with ``task_args: {...}``; the
factory is called with the arguments and returns a :class:`~models.interface.TaskInterface`.
An installed package registers factories under the entry-point group ``dropattack.tasks``
(``[project.entry-points."dropattack.tasks"] wine-mlp = "mypkg.tasks:make"``), and a spec
names them by their entry-point name.

The current folder is importable (as with ``python -m``), so a module next to the spec runs
without installing it. Importing a module runs its code: a spec that names code is code.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from models.interface import TaskInterface

__all__ = [
    "ENTRY_POINT_GROUP",
    "TaskLoadError",
    "import_root",
    "installed",
    "is_reference",
    "load_task",
    "origin",
    "origin_or_empty",
]

ENTRY_POINT_GROUP = "dropattack.tasks"
_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class TaskLoadError(ValueError):
    """A task reference that does not give a task: it does not import, its factory raises
    or returns something else. ``field`` is the spec field to blame (``task``, ``task_args``)."""

    def __init__(self, message: str, field: str = "task") -> None:
        super().__init__(message)
        self.field = field


def is_reference(name: str) -> bool:
    """Whether ``name`` is a ``package.module:factory`` reference."""
    return bool(_REFERENCE.match(name))


def installed() -> dict[str, str]:
    """Entry-point name -> ``package.module:factory`` of the group ``dropattack.tasks``."""
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _factory(reference: str) -> Any:
    module_name, _, attr = reference.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any failure of the user's import is reported
        raise TaskLoadError(
            f"cannot import {module_name!r} for {reference!r} ({type(e).__name__}: {e}); "
            "is it installed, in the current folder or on PYTHONPATH?"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TaskLoadError(f"{module_name!r} has no {attr!r} (from {reference!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TaskLoadError(f"{reference!r} is a {type(obj).__name__}, expected a function")
    return obj


def _resolve_name(name: str) -> str:
    return name if is_reference(name) else installed().get(name, name)


def load_task(name: str, args: dict[str, Any]) -> TaskInterface:
    """Call the factory ``name`` (a reference or an entry-point name) with ``args``.

    Raises:
        TaskLoadError: it does not import, raises, or returns no :class:`TaskInterface`.
    """
    return _load(name, json.dumps(args, sort_keys=True, default=str))


@cache
def _load(name: str, args_json: str) -> TaskInterface:
    reference = _resolve_name(name)
    if not is_reference(reference):
        raise TaskLoadError(f"unknown {name!r}; expected 'package.module:factory'")
    factory = _factory(reference)
    args = json.loads(args_json)
    try:
        task = factory(**args)
    except Exception as e:  # noqa: BLE001 - the user's factory may raise anything
        raise TaskLoadError(
            f"{reference}(**task_args) raised {type(e).__name__}: {e}", field="task_args"
        ) from None
    if not isinstance(task, TaskInterface):
        raise TaskLoadError(
            f"{reference} returned {type(task).__name__}, expected a "
            "models.interface.TaskInterface (e.g. a SimpleTask)"
        )
    if not getattr(task, "name", ""):
        raise TaskLoadError(f"{reference} returned a task without a name")
    return task


def origin(name: str) -> dict[str, str]:
    """What a record names of a task's code: ``task_factory`` (the reference) and
    ``task_version`` (the distribution's version where it is installed, else
    ``sha256:<12 hex>`` of the module file). Empty for a built-in task."""
    reference = _resolve_name(name)
    if not is_reference(reference):
        return {}
    module_name = reference.partition(":")[0]
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    version = _distribution_version(module_name)
    if version is None:
        path = getattr(module, "__file__", None)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12] if path else "unknown"
        version = f"sha256:{digest}"
    return {"task_factory": reference, "task_version": version}


def origin_or_empty(name: str) -> dict[str, str]:
    """:func:`origin`, or ``{}`` where the module does not import."""
    try:
        return origin(name)
    except Exception:  # noqa: BLE001 - only a listing: the load itself reports the error
        return {}


def _distribution_version(module_name: str) -> str | None:
    top = module_name.split(".")[0]
    for dist in metadata.packages_distributions().get(top, []):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def import_root(name: str) -> Path | None:
    """The folder to put on ``sys.path`` for task ``name``'s top-level package (``None``
    for a built-in or an installed task)."""
    reference = _resolve_name(name)
    if not is_reference(reference):
        return None
    top = reference.partition(":")[0].split(".")[0]
    module = sys.modules.get(top) or importlib.import_module(top)
    path = getattr(module, "__file__", None)
    if path is None:
        return None
    path = Path(path).resolve()
    root = path.parent.parent if path.name == "__init__.py" else path.parent
    if "site-packages" in root.parts or "dist-packages" in root.parts:
        return None
    return root
