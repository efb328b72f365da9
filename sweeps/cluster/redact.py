"""Keep secrets out of what is stored and shown: run tags, job metadata, reports, logs.

Credentials reach the tools through the environment (``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``, ``RAY_AUTH_TOKEN``), never through a URI or a command line:
:func:`uri_credentials` finds the ``user:password@`` part that the command line refuses, and
:func:`redact_uri` / :func:`redact_text` mask what slips through before it is recorded.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact_text", "redact_uri", "uri_credentials"]

MASK = "***"
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")
#: Query parameters whose values are secrets (``password=``, ``sslpassword=``,
#: ``access_token=``, ``X-Amz-Signature=``, ``api_key=``, ...).
_SECRET_PARAM = re.compile(r"pass|pwd|token|secret|key|sig|credential|auth", re.IGNORECASE)
_PARAM = re.compile(r"([?&;])([^=&;#]+)=([^&;#]*)")


def _split(uri: str) -> tuple[str, str, str] | None:
    """``(scheme://, userinfo, rest)`` when ``uri`` has a userinfo part. The userinfo ends at
    the last ``@`` before any ``?`` or ``#``, so that a password holding an unencoded ``/``
    is found whole; a part before ``@`` with a ``/`` and no ``:`` is a path, not a login."""
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*://)(.*)", uri.strip(), re.DOTALL)
    if m is None:
        return None
    scheme, rest = m.groups()
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    if "@" not in head:
        return None
    userinfo = head[: head.rindex("@")]
    if "/" in userinfo and ":" not in userinfo:
        return None
    return scheme, userinfo, rest[len(userinfo) + 1 :]


def _query_secrets(uri: str) -> list[str]:
    return [f"{k}={v}" for _, k, v in _PARAM.findall(uri) if _SECRET_PARAM.search(k) and v]


def uri_credentials(uri: str) -> str | None:
    """The ``user:password`` (or ``user``) part of ``uri``'s authority, else its first secret
    query parameter (``password=...``, ``token=...``) as ``name=value``, or ``None``."""
    found = _split(uri)
    if found is not None:
        return found[1]
    if "://" not in uri:
        return None
    secrets = _query_secrets(uri)
    return secrets[0] if secrets else None


def redact_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` replaced by ``***@`` and the values of secret query
    parameters by ``***`` (other URIs unchanged)."""
    if uri_credentials(uri) is None:
        return uri
    found = _split(uri)
    text = uri.strip() if found is None else f"{found[0]}{MASK}@{found[2]}"
    return _PARAM.sub(
        lambda m: f"{m[1]}{m[2]}={MASK}" if _SECRET_PARAM.search(m[2]) and m[3] else m[0], text
    )


def redact_text(text: str) -> str:
    """``text`` (a command line, a message) with the credentials of every URI in it masked."""
    return _URI.sub(lambda m: redact_uri(m.group(0)), text)
