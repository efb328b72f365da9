"""Debian packages the tests run for real: PostgreSQL, Slurm (with munge) and Chromium.

``make test`` installs whatever is missing once, before pytest starts (``python -m
tests.debian``): one ``apt-get update`` and one ``apt-get install`` for all of them, so the
suite's time is the tests' and no two test workers ever wait on the dpkg lock. A fixture that
still finds its package missing (pytest run by hand) installs it through :func:`ensure`, under
a file lock that parallel workers share. Where apt-get cannot run (not root, not Debian),
:func:`ensure` says why and the fixture skips with that reason.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable

__all__ = ["PACKAGES", "ensure", "missing"]

_SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"
_LOCK = "/tmp/dropattack-tests-apt.lock"
_LEAN = frozenset({"chromium"})


def _has_postgres() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def _has(*programs: str) -> Callable[[], bool]:
    return lambda: all(shutil.which(p, path=_SBIN) for p in programs)


#: Each package (as apt-get names it) and how to tell it is installed.
PACKAGES: dict[str, Callable[[], bool]] = {
    "postgresql": _has_postgres,
    "slurm-wlm": _has("slurmctld", "slurmd"),
    "munge": _has("munged"),
    "chromium": _has("chromium"),
}


def missing(packages: Iterable[str] = PACKAGES) -> list[str]:
    """The packages of ``packages`` that are not installed."""
    return [p for p in packages if not PACKAGES[p]()]


def ensure(*packages: str, timeout: float = 900) -> str:
    """Install the packages that are missing; ``""`` when all are there, else why not."""
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing the same
        todo = missing(packages)
        if not todo:
            return ""
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return f"{', '.join(todo)} not installed and apt-get cannot run as this user"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "PATH": _SBIN}
        words = " ".join(todo)
        # Chromium without its recommends (fonts and desktop pieces the headless tests never
        # use); the daemons with theirs, as Debian installs them.
        lean = [p for p in todo if p in _LEAN]
        full = [p for p in todo if p not in _LEAN]
        steps = ["apt-get update -q"]
        steps += [f"apt-get install -y -q {' '.join(full)}"] if full else []
        steps += [f"apt-get install -y -q --no-install-recommends {' '.join(lean)}"] if lean else []
        try:
            done = subprocess.run(
                " && ".join(steps),
                shell=True,
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return f"apt-get install {words} took over {timeout:.0f} s"
        if done.returncode != 0:
            return f"apt-get install {words} failed: {done.stderr.strip()[-500:]}"
        still = missing(todo)
        return f"apt-get installed {words}, but {', '.join(still)} is not usable" if still else ""


def main() -> int:
    """Install every missing package; a machine where that is impossible is no error (the
    tests that need them skip and say why)."""
    todo = missing()
    if not todo:
        print("tests: Debian packages present:", ", ".join(PACKAGES))
        return 0
    print("tests: installing", ", ".join(todo), "with apt-get ...", flush=True)
    why = ensure(*todo)
    print(f"tests: {why}; the tests that need them will skip" if why else "tests: installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
