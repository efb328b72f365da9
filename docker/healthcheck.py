"""Compose healthcheck: exit 0 when ``URL`` answers HTTP 200 within 5 seconds, else 1.

Sends ``$RAY_AUTH_TOKEN`` as a bearer token when set (the Ray job API of a head started
with ``RAY_AUTH_MODE=token`` answers 401 without it). With ``--require-auth`` the URL must
also refuse the same request without the token: a Ray older than 2.52 ignores
``RAY_AUTH_MODE=token`` and opens the job API, which runs anyone's code, to everyone; such
a head stays unhealthy, so nothing that waits for it starts and ``docker compose up --wait``
fails with the reason. Uses only the standard library, so it runs in the project image
without extra packages.

    python docker/healthcheck.py [--require-auth] URL
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence


def _get(url: str, headers: dict[str, str], timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout):
            return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))


def check(url: str, timeout: float = 5.0, require_auth: bool = False) -> str | None:
    """None when healthy, else the reason."""
    token = os.environ.get("RAY_AUTH_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reason = _get(url, headers, timeout)
    if reason is not None or not require_auth:
        return reason
    if not token:
        return "--require-auth needs RAY_AUTH_TOKEN"
    if _get(url, {}, timeout) is None:
        return (
            "answers without a token: authentication is off (Ray >= 2.52 with "
            "RAY_AUTH_MODE=token is needed); anyone who reaches it can run code"
        )
    return None


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    require_auth = "--require-auth" in args
    if require_auth:
        args.remove("--require-auth")
    if len(args) != 1:
        print("usage: healthcheck.py [--require-auth] URL", file=sys.stderr)
        return 2
    reason = check(args[0], require_auth=require_auth)
    if reason is not None:
        print(f"{args[0]}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
