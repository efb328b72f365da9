"""Connect this process to Ray: check an address, start or join Ray, shut down what it started.

The one place that starts Ray for the service: the sweep's driver and the plan's calibration on
a cluster both go through :func:`init_ray`, so they connect alike and fail alike.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from sweeps.records.store import UnreachableError

__all__ = [
    "RAY_INIT_IMPORTS",
    "AddressError",
    "check_address",
    "describe",
    "import_for_ray_init",
    "init_ray",
    "is_client",
    "ray_session",
    "runtime_env",
    "task_module_paths",
]


class AddressError(ValueError):
    """A Ray address that is not ``auto``, ``local``, ``ray://HOST:PORT`` or ``HOST:PORT``."""


#: Modules that ``ray.init`` imports on first use (Ray 2.60). The driver imports them before
#: its import thread starts, so that the thread and ``ray.init`` never import one module at
#: the same moment (CPython raises ``_DeadlockError`` when two threads enter the two halves
#: of a circular import at once). A name another Ray version lacks is skipped.
RAY_INIT_IMPORTS = (
    "click",
    "colorful",
    "ray._common.usage.usage_lib",
    "ray._private.node",
    "ray._private.runtime_env.uv_runtime_env_hook",
    "ray._private.thirdparty.pynvml",
    "ray.autoscaler.v2.utils",
    "ray.dashboard.optional_deps",
)


def import_for_ray_init() -> None:
    """Import :data:`RAY_INIT_IMPORTS` now, before another thread starts importing."""
    for name in RAY_INIT_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast when a ``ray://`` or ``HOST:PORT`` address does not accept connections.

    Raises:
        AddressError: not an address Ray takes.
        UnreachableError: nothing listens there.
    """
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname or not parsed.port:
        raise AddressError(
            f"--address: expected auto, ray://HOST:PORT or HOST:PORT, got {address!r}"
        )
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout):
            pass
    except OSError as e:
        raise UnreachableError(
            f"--address: cannot reach Ray at {address}: {e.strerror or e}"
        ) from None


def init_ray(address: str | None, spec: Any = None) -> None:
    """Join the Ray at ``address``, or start a local one on this machine's CPUs (``None`` or
    ``local``); nothing when this process is already connected. Joining a cluster, it ships
    what :func:`runtime_env` names for ``spec``.

    Raises:
        UnreachableError: the address did not answer as a Ray.
    """
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": "ERROR",
    }
    try:
        if address and address != "local":
            env = runtime_env(address, spec)
            if env:
                kwargs["runtime_env"] = env
            ray.init(address=address, **kwargs)
        else:
            # "local": a Ray of its own, even where another Ray runs on this machine (a
            # bare ray.init() would join that one, or refuse num_cpus for it).
            ray.init(address="local", num_cpus=os.cpu_count(), **kwargs)
    except ConnectionError as e:
        raise UnreachableError(f"cannot connect to Ray at {address}: {e}") from None


#: Set by Ray in the driver of a Ray job: ``submit`` shipped the job's code already.
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def runtime_env(address: str | None, spec: Any = None) -> dict[str, Any] | None:
    """What a driver joining the cluster at ``address`` gives its trials: the modules of the
    user's tasks that ``spec`` names (``py_modules``; a cluster's nodes need not have this
    folder) and, through Ray Client, where Tune itself runs on the cluster, this process's
    ``TUNE_*`` settings. ``None`` for a Ray of this machine's own, and in a Ray job's driver
    (``submit`` shipped the job's modules with it).

    Raises:
        ValueError: a task's module is a namespace package (nothing to ship).
    """
    if not address or address == "local" or JOB_CONFIG_ENV in os.environ:
        return None
    env: dict[str, Any] = {}
    modules = task_module_paths(spec) if spec is not None else []
    if modules:
        from sweeps.cluster.ray_jobs import EXCLUDES, nocase

        env["py_modules"] = modules
        env["excludes"] = [nocase(p) for p in EXCLUDES]
    if is_client(address):
        tune = {k: v for k, v in os.environ.items() if k.startswith("TUNE_")}
        if tune:
            env["env_vars"] = tune
    return env or None


def task_module_paths(spec: Any) -> list[str]:
    """The package folders (or single module files) of the user's tasks that ``spec`` names,
    as this process imports them; none for built-in and installed tasks."""
    from models import external

    out: list[str] = []
    for name in spec.task_names():
        root = external.import_root(name)
        if root is None:
            continue
        top = name.partition(":")[0].split(".")[0]
        path = root / top if (root / top).is_dir() else root / f"{top}.py"
        if not path.exists():
            raise ValueError(f"task {name}: no package folder or file {path} to ship")
        if str(path) not in out:
            out.append(str(path))
    return out


@contextlib.contextmanager
def ray_session() -> Iterator[None]:
    """Shut down, at the end of the block, the Ray it started: at interpreter exit Ray would
    first sleep 0.5 s for worker logs. A finished sweep imports Ray not at all."""
    ours = not _ray_running()
    try:
        yield
    finally:
        if ours and _ray_running():
            sys.modules["ray"].shutdown()


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def is_client(address: str | None) -> bool:
    """A Ray Client address: Tune then runs the experiment on the cluster, not here."""
    return (address or "").startswith("ray://")


def describe(address: str | None) -> str:
    """Which Ray a sweep runs on, for the status line."""
    import ray

    if ray.is_initialized():
        return "the Ray this process already uses"
    return f"Ray at {address}" if address else "a new local Ray (starting it)"
