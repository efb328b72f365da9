"""Keep secrets out of what is stored and shown: run tags, job metadata, reports, logs.

Credentials reach the tools through the environment (``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``, ``RAY_AUTH_TOKEN``), never through a URI or a command line:
:func:`uri_credentials` finds the ``user:password@`` part that the command line refuses, and
:func:`redact_uri` / :func:`redact_text` mask what slips through before it is recorded.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "redact_text", "redact_uri", "uri_credentials"]

MASK = "***"
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s]+")


def uri_credentials(uri: str) -> str | None:
    """The ``user:password`` (or ``user``) part of ``uri``'s authority, or ``None``."""
    try:
        parts = urlsplit(uri.strip())
    except ValueError:
        return None
    if not parts.netloc or "@" not in parts.netloc:
        return None
    return parts.netloc.rsplit("@", 1)[0]


def redact_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` replaced by ``***@`` (other URIs unchanged)."""
    if uri_credentials(uri) is None:
        return uri
    parts = urlsplit(uri.strip())
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))


def redact_text(text: str) -> str:
    """``text`` (a command line, a message) with the credentials of every URI in it masked."""
    return _URI.sub(lambda m: redact_uri(m.group(0)), text)
