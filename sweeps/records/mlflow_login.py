"""A login forwarded to a Ray job, handed to MLflow in memory, never into the environment.

The job's processes on a shared cluster may all run as one user (the compose stack's uid
10001), and a process's environment is readable by every process of that user through
``/proc/PID/environ``, inherited by every child. So the forwarded login
(:mod:`sweeps.records.credentials`) is unsealed into this module only: MLflow gets it as an
``Authorization`` header from a request-header provider registered in this process, and the
node's own login is taken out of ``os.environ`` so that it cannot override the forwarded one.
"""

from __future__ import annotations

import base64
import os
from collections.abc import MutableMapping

from sweeps.records.credentials import FORWARDABLE, SEALED_ENV, ray_token, unseal

__all__ = ["use_forwarded_login"]

_LOGIN: dict[str, str] = {}
_registered = False


class _ForwardedLogin:
    """MLflow's request-header provider interface: Basic auth of the forwarded login."""

    def in_context(self) -> bool:
        return bool(_LOGIN.get("MLFLOW_TRACKING_USERNAME"))

    def request_headers(self) -> dict[str, str]:
        user = _LOGIN.get("MLFLOW_TRACKING_USERNAME", "")
        password = _LOGIN.get("MLFLOW_TRACKING_PASSWORD", "")
        token = base64.standard_b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}


def use_forwarded_login(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """When :data:`SEALED_ENV` is set, open it into memory and have MLflow's requests carry
    it; returns the names it holds (none when nothing was forwarded).

    Raises:
        CredentialError: the bundle cannot be opened with this node's token.
    """
    global _registered
    env = os.environ if environ is None else environ
    blob = env.get(SEALED_ENV)
    if not blob:
        return sorted(_LOGIN)
    values = unseal(blob, ray_token(env))
    _LOGIN.clear()
    _LOGIN.update(values)
    for name in FORWARDABLE:  # the node's own login would win over the header
        env.pop(name, None)
    if not _registered:
        from mlflow.tracking.request_header.registry import _request_header_provider_registry

        _request_header_provider_registry.register(_ForwardedLogin)
        _registered = True
    return sorted(values)
