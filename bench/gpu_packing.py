"""IMDB LSTM trials packed 1, 2, 4 and 8 per GPU: sweep throughput and per-trial slowdown.

Needs a CUDA GPU: without one it says so and exits 0, measuring nothing.

For each packing K, a fresh process starts a local Ray with the first GPU and this machine's
CPUs and runs ``K x rounds`` DropAttack trials of imdb-lstm (one per seed) through
``run_sweep`` with ``--gpus-per-trial 1/K``, so Ray places K trials on the GPU at once; MLflow
logs to a sqlite store in a temp folder. Figures per K:

- ``trials/min``: trials / sweep wall time x 60 (Ray and Tune start included);
- ``steady trials/min``: over the span from the first trial's MLflow start to the last end;
- ``s/trial``: mean time inside a trial; ``slowdown``: that over the K=1 figure (how much
  each packed trial waits for the shared GPU).

Data: the task's data root (``--data-dir``, default as ``dropattack train`` finds it); with
``--synthetic N``, N random-word reviews in the authors' CSV layout (throughput depends on
lengths and vocabulary size, not on the words). ``--cpu`` runs the same plumbing on CPU
workers to check the script on a machine without a GPU; its figures say nothing about GPUs.

Run: ``.venv/bin/python bench/gpu_packing.py [--packing 1,2,4,8] [--rounds 2] [--epochs 1]
[--train-size 2000] [--synthetic 5000]``. Prints one JSON object per K and a Markdown table.
"""

from __future__ import annotations

import sys

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if p != __file__.rsplit("/", 1)[0]]
# ruff: noqa: E402

import argparse
import csv
import json
import os
import random
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_synthetic(folder: Path, rows: int, seed: int = 0) -> Path:
    """``rows`` reviews of 150-400 random words (a 20,000-word vocabulary), labels 0/1, in
    ``folder/imdb/Train.csv``, ``Valid.csv`` and ``Test.csv`` (80/10/10)."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(20_000)]
    (folder / "imdb").mkdir(parents=True, exist_ok=True)
    sizes = {"Train.csv": rows * 8 // 10, "Valid.csv": rows // 10, "Test.csv": rows // 10}
    for name, n in sizes.items():
        with open(folder / "imdb" / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            for _ in range(n):
                text = " ".join(rng.choices(words, k=rng.randint(150, 400)))
                writer.writerow([text, rng.randint(0, 1)])
    return folder


def _child(packing: int, args: argparse.Namespace) -> dict:
    import ray
    import torch
    from mlflow import MlflowClient

    from sweeps.driver import SweepOptions, run_sweep
    from sweeps.space import expand_grid
    from sweeps.spec import parse_spec

    trials = packing * args.rounds
    defaults = {
        "task": "imdb-lstm",
        "method": "dropattack",
        "attack": ["Embedding"],
        "epochs": args.epochs,
        "train_size": args.train_size,
    }
    if args.data_dir:
        defaults["data_dir"] = args.data_dir
    spec = parse_spec(
        {
            "name": f"gpu-packing-{packing}",
            "defaults": defaults,
            "seeds": list(range(trials)),
            "resources": {"cpus": 1, "gpus": 0 if args.cpu else 1 / packing},
        },
        "gpu_packing",
        expand=expand_grid,
    )
    gpus = 0 if args.cpu else 1
    ray.init(num_cpus=os.cpu_count(), num_gpus=gpus, include_dashboard=False)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gpu-packing-") as tmp:
            result = run_sweep(
                spec,
                SweepOptions(runs_dir=Path(tmp) / "runs", max_concurrent=packing, live=False),
            )
            client = MlflowClient(result.tracking_uri)
            kids = client.search_runs(
                [result.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
            )
    finally:
        ray.shutdown()
    first = min(r.info.start_time for r in kids) / 1000
    last = max(r.info.end_time for r in kids) / 1000
    n = result.counts["done"]
    return {
        "packing": packing,
        "device": "cpu" if args.cpu else torch.cuda.get_device_name(0),
        "trials": n,
        "failed": result.counts["failed"],
        "concurrency": result.concurrency,
        "wall_s": result.wall_seconds,
        "trials_per_min": 60 * n / result.wall_seconds,
        "steady_trials_per_min": 60 * n / (last - first),
        "mean_trial_s": sum(result.trial_seconds) / max(1, len(result.trial_seconds)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packing", default="1,2,4,8", help="trials per GPU, comma-separated")
    parser.add_argument("--rounds", type=int, default=2, help="trials per GPU slot")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--data-dir", default=None, help="data root (default: the task's)")
    parser.add_argument("--synthetic", type=int, default=None, help="use N synthetic reviews")
    parser.add_argument("--cpu", action="store_true", help="CPU workers: checks the script only")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(_child(args.child, args)), flush=True)
        return

    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA GPU on this machine: the GPU packing benchmark needs one; nothing measured")
        return
    with tempfile.TemporaryDirectory(prefix="bench-gpu-packing-data-") as tmp:
        if args.synthetic:
            args.data_dir = str(write_synthetic(Path(tmp), args.synthetic))
        rows = []
        for packing in (int(k) for k in args.packing.split(",")):
            cmd = [sys.executable, __file__, "--child", str(packing)]
            for flag in ("rounds", "epochs", "train_size", "data_dir"):
                value = getattr(args, flag)
                if value is not None:
                    cmd += [f"--{flag.replace('_', '-')}", str(value)]
            cmd += ["--cpu"] if args.cpu else []
            env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"packing {packing} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
            row = json.loads(line.removeprefix("RESULT "))
            print(json.dumps(row), flush=True)
            rows.append(row)
    base = next((r["mean_trial_s"] for r in rows if r["packing"] == 1), rows[0]["mean_trial_s"])
    print()
    print(f"{rows[0]['device']}, imdb-lstm, train_size {args.train_size}, {args.epochs} epoch(s)")
    print()
    print("| per GPU | trials | wall s | trials/min | steady trials/min | s/trial | slowdown |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['packing']} | {r['trials']} | {r['wall_s']:.1f} | {r['trials_per_min']:.1f} | "
            f"{r['steady_trials_per_min']:.1f} | {r['mean_trial_s']:.1f} | "
            f"{r['mean_trial_s'] / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
