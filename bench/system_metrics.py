"""What MLflow's system metrics cost a trial: a trial run's records with and without them.

A trial's tracker is driven as ``sweeps.execution.trainable`` drives it, against a sqlite store on
local disk: open the child run, log params, then ``--epochs`` epochs of the real digits-lenet5
training step count (what one epoch's report logs: four metrics and a flush), close it and
send the rest. Variants run interleaved round-robin in one process: ``off`` (``system_metrics:
false``), ``on`` (every 10 s, the default: a trial shorter than that gets one sample at its
end) and ``on-1s`` (a sample every second). The clock is the process's CPU time (the monitor's
thread included), which a shared machine's neighbours do not move; wall time is printed too.

Run: ``python bench/system_metrics.py [--reps 10] [--epochs 3] [--epoch-seconds 1.5]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweeps.records.tracking import SweepContext, SweepRun, TrialTracker, sqlite_uri  # noqa: E402

VARIANTS = {"off": 0.0, "on": 10.0, "on-1s": 1.0}


def trial(sweep: SweepRun, interval: float, epochs: int, epoch_seconds: float) -> None:
    """One trial's tracking, with ``epoch_seconds`` of idle time per epoch (the training)."""
    ctx = SweepContext(sweep.uri, sweep.experiment_id, sweep.run_id, "bench")
    ctx = dataclasses.replace(ctx, system_metrics=interval)
    tracker = TrialTracker(ctx, uuid.uuid4().hex, "bench trial", {})
    tracker.open()
    tracker.log_params({"task": "digits-lenet5", "eps": 5, "p": 0.3, "k": 1, "seed": 0})
    tracker.start_system_metrics()
    for epoch in range(1, epochs + 1):
        time.sleep(epoch_seconds)
        tracker.log_metrics(
            {"epoch_train_loss": 0.3, "epoch_train_acc": 0.9, "epoch_val_acc": 0.9},
            step=epoch,
        )
        tracker.flush()
    tracker.log_metrics({"val_acc": 0.9, "test_acc": 0.9})
    tracker.terminate("FINISHED")
    tracker.flush_final()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--epoch-seconds", type=float, default=1.5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-sysmetrics-"))
    sweep = SweepRun(sqlite_uri(folder / "mlflow.db"), "bench", artifact_root=folder / "art")
    sweep.start("bench", "h" * 64, "", "", "bench", {}, {})
    trial(sweep, 1.0, 1, 0.1)  # warm-up: imports, the monitor class, the store's first writes
    cpu = {name: [] for name in VARIANTS}
    wall = {name: [] for name in VARIANTS}
    for _ in range(args.reps):
        for name, interval in VARIANTS.items():
            c0, w0 = time.process_time(), time.perf_counter()
            trial(sweep, interval, args.epochs, args.epoch_seconds)
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0 - args.epochs * args.epoch_seconds)
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{args.reps} trials per variant, {args.epochs} epochs of {args.epoch_seconds}s idle")
    base = statistics.median(cpu["off"])
    for name in VARIANTS:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(
            f"{name:>6}: CPU {c * 1000:7.1f} ms per trial (x{c / base:.2f} of off, "
            f"+{(c - base) * 1000:.1f} ms)  wall beyond the idle time {w * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    main()
