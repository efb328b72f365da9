"""Seconds per epoch of ``dropattack train`` by torch thread count, on a quiet and a busy machine.

``dropattack train TASK --epochs E --json`` runs as a user runs it, once per thread setting:
``--threads 1``, ``--threads C`` (C = the CPUs this process may use: torch's own default, the
command's earlier default) and no flag (the command's default now,
:func:`sweeps.execution.threads.default_threads`). Each setting runs once as the machine is and once
beside C busy processes (``while True: pass``, one per CPU: another job on the same cores).
The settings interleave round-robin for ``--repeat`` rounds; the figure is the median over the
runs of the per-epoch seconds the trainer reports (data loading and start-up excluded), with
its ratio to ``--threads 1`` under the same condition.

Run: ``python bench/threads.py [--task digits-lenet5] [--epochs 2] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DROPATTACK = Path(sys.executable).parent / "dropattack"


def epoch_seconds(task: str, epochs: int, threads: int | None) -> tuple[list[float], int]:
    """Per-epoch seconds of one ``dropattack train`` run and the threads it used."""
    argv = [str(DROPATTACK), "train", task, "--epochs", str(epochs), "--json"]
    if threads is not None:
        argv += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k != "DROPATTACK_THREADS"}
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.splitlines()[-1])
    return [h["seconds"] for h in result["history"]], int(result["threads"])


def busy(n: int) -> list[subprocess.Popen]:
    code = "while True: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits-lenet5")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    settings: dict[str, int | None] = {"--threads 1": 1, f"--threads {cpus}": cpus, "default": None}
    seconds: dict[tuple[str, str], list[float]] = {}
    chosen: dict[tuple[str, str], list[int]] = {}
    load = {"as is": [], "busy": []}
    for _ in range(args.repeat):
        for condition in ("as is", "busy"):
            hogs = busy(cpus) if condition == "busy" else []
            try:
                time.sleep(1 if hogs else 0)
                for name, threads in settings.items():
                    load[condition].append(os.getloadavg()[0])
                    per_epoch, used = epoch_seconds(args.task, args.epochs, threads)
                    seconds.setdefault((condition, name), []).extend(per_epoch)
                    chosen.setdefault((condition, name), []).append(used)
            finally:
                for h in hogs:
                    h.kill()
                    h.wait()
    print(
        f"{platform.node()} {platform.processor() or platform.machine()}, {cpus} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; task {args.task}, "
        f"{args.epochs} epochs x {args.repeat} runs per cell"
    )
    print("| condition | setting | threads used | s/epoch (median) | vs --threads 1 |")
    print("|---|---|---|---|---|")
    for condition in ("as is", "busy"):
        one = statistics.median(seconds[(condition, "--threads 1")])
        for name in settings:
            med = statistics.median(seconds[(condition, name)])
            used = sorted(set(chosen[(condition, name)]))
            print(
                f"| {condition} (load {statistics.median(load[condition]):.1f}) | {name} | "
                f"{'/'.join(map(str, used))} | {med:.2f} | {med / one:.2f}x |"
            )


if __name__ == "__main__":
    main()
