"""Compose healthcheck: exit 0 when ``URL`` answers HTTP 200 within 5 seconds, else 1.

Sends ``$RAY_AUTH_TOKEN`` as a bearer token when set (the Ray job API of a head started
with ``RAY_AUTH_MODE=token`` answers 401 without it). Uses only the standard library, so it
runs in the project image without extra packages.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence


def check(url: str, timeout: float = 5.0) -> str | None:
    """None when healthy, else the reason."""
    token = os.environ.get("RAY_AUTH_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout):
            return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: healthcheck.py URL", file=sys.stderr)
        return 2
    reason = check(argv[0])
    if reason is not None:
        print(f"{argv[0]}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
