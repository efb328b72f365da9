"""Processes of this machine from /proc: listing, descendants, killing a process group.

Tests stop what they start by process id or group, never by name (``ray stop`` would stop
every Ray on the machine, other tests' included).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Proc", "descendants", "group_alive", "kill_group", "kill_now", "processes"]


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str
    cmdline: str


def processes() -> dict[int, Proc]:
    """Every process of this machine, from /proc (zombies included, state ``Z``)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            raw = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        pid = int(stat.parent.name)
        cmd = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        out[pid] = Proc(pid, int(fields[1]), int(fields[2]), fields[0], cmd)
    return out


def descendants(root: int, table: dict[int, Proc] | None = None) -> list[int]:
    """Process ids below ``root`` (children, grandchildren, ...)."""
    table = processes() if table is None else table
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        kids = [p.pid for p in table.values() if p.ppid == parent]
        found += kids
        frontier += kids
    return found


def kill_now(pids: list[int]) -> None:
    """SIGKILL each process that still exists."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    return any(p.pgid == pgid and p.state != "Z" for p in processes().values())


def kill_group(pgid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.2)
