"""Where a sweep's MLflow records go: tracking URIs and a fail-fast check that they answer.

Kept apart from :mod:`sweeps.records.tracking` so that the driver can check its URI before it
imports MLflow (about a second), which it then does while Ray starts.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["UnreachableError", "is_local_store", "probe", "sqlite_uri"]


#: Default ports of the database servers MLflow can track into.
_DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


class UnreachableError(ConnectionError):
    """The tracking server (or another service) does not answer; nothing was launched."""


def sqlite_uri(path: str | Path) -> str:
    """``sqlite:///`` URI of an absolute path (trials change their working directory)."""
    return f"sqlite:///{Path(path).resolve()}"


def is_local_store(uri: str) -> bool:
    """A store only this machine can reach (sqlite or a file path), not a server."""
    scheme = urlparse(uri).scheme
    return scheme in ("", "file", "sqlite") or len(scheme) == 1  # "C:" paths


def probe(uri: str, timeout: float = 5.0) -> None:
    """Fail fast when ``uri`` cannot be used: an HTTP server that does not answer ``/health``,
    a database server that does not accept connections (MLflow would retry for minutes), or a
    sqlite file in a folder that cannot be created.

    Raises:
        UnreachableError: with a one-line reason naming the URI.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                if resp.status != 200:
                    raise UnreachableError(f"MLflow at {uri}: /health answered {resp.status}")
        except urllib.error.HTTPError as e:
            raise UnreachableError(f"MLflow at {uri}: /health answered {e.code}") from None
        except OSError as e:  # URLError and timeouts are OSErrors
            reason = getattr(e, "reason", e)
            raise UnreachableError(f"cannot reach MLflow at {uri}: {reason}") from None
    elif parsed.scheme.split("+", 1)[0] in _DB_PORTS and parsed.hostname:
        db = parsed.scheme.split("+", 1)[0]
        where = f"{parsed.hostname}:{parsed.port or _DB_PORTS[db]}"  # no credentials
        try:
            with socket.create_connection(
                (parsed.hostname, parsed.port or _DB_PORTS[db]), timeout=timeout
            ):
                pass
        except OSError as e:
            raise UnreachableError(
                f"cannot reach the {db} tracking database at {where}: {e.strerror or e}"
            ) from None
    elif parsed.scheme == "sqlite":
        path = Path(uri.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UnreachableError(
                f"MLflow store {uri}: cannot create {path.parent}: {e}"
            ) from None
