"""IMDB LSTM trials packed 1, 2, 4 and 8 on one GPU: throughput, per-trial slowdown, GPU load.

Ray's fractional GPUs (``resources: {gpus: 0.25}``) run one trial per worker process, several
processes sharing the GPU. This benchmark does exactly that without Ray (the GPU machine has
none): for each packing N it starts N ``dropattack train imdb-lstm --device cuda --json``
processes at once and compares them with the same N trials run one after another (the first N
of one sequential series of max(N) trials). NVML is sampled every 0.2 s for GPU utilisation,
device memory and each trial process's memory. Figures per N:

- ``trials/min``: N / wall time of the concurrent group x 60; ``sequential trials/min`` the same
  for the N trials one after another; ``speed-up`` their ratio;
- ``slowdown``: a packed trial's mean wall time over a sequential trial's (how long each waits
  for the shared GPU);
- ``util %``: mean and max GPU utilisation while the group ran; ``memory``: peak device memory
  and the largest single trial process's.

``--ray`` runs the packings through the real sweep driver instead (``run_sweep`` with
``gpus: 1/N``, MLflow in a temp folder), on a machine with Ray. ``--cpu`` runs the process
plumbing on the CPU to check the script; its figures say nothing about GPUs.

Data: the task's data root (``--data-dir``); ``--synthetic N`` writes N random-word reviews in
the authors' CSV layout. Run: ``python bench/gpu_packing.py [--packing 1,2,4,8] [--epochs 1]
[--train-size 1000] [--json PATH]``. Prints one JSON object per N and a Markdown table.
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
import threading
import time
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


class NvmlSampler:
    """GPU utilisation, device memory and per-process memory, sampled in a thread via NVML."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # no NVML (CPU check): sample nothing
            self._nvml = None

    def __enter__(self) -> NvmlSampler:
        if self._nvml is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        nv, h = self._nvml, self._handle
        while not self._stop.is_set():
            util = nv.nvmlDeviceGetUtilizationRates(h)
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            procs = nv.nvmlDeviceGetComputeRunningProcesses(h)
            self.samples.append(
                {
                    "t": time.monotonic(),
                    "util": util.gpu,
                    "used": mem.used,
                    "procs": {p.pid: p.usedGpuMemory or 0 for p in procs},
                }
            )
            self._stop.wait(self.interval)

    def summary(self) -> dict:
        """Mean/max utilisation, peak device memory and the largest process's memory (MiB)."""
        if not self.samples:
            return {
                "util_mean": None,
                "util_max": None,
                "mem_peak_mib": None,
                "proc_peak_mib": None,
            }
        utils = [s["util"] for s in self.samples]
        per_proc = [m for s in self.samples for m in s["procs"].values()]
        return {
            "util_mean": sum(utils) / len(utils),
            "util_max": max(utils),
            "mem_peak_mib": max(s["used"] for s in self.samples) / 2**20,
            "proc_peak_mib": max(per_proc, default=0) / 2**20,
        }


def trial_command(seed: int, args: argparse.Namespace) -> list[str]:
    """One packed trial: ``dropattack train imdb-lstm`` (DropAttack on the embedding), JSON out."""
    cmd = [sys.executable, "-m", "sweeps.cli", "train", "imdb-lstm", "--json"]
    cmd += ["--attack", "Embedding", "--seed", str(seed), "--epochs", str(args.epochs)]
    cmd += ["--train-size", str(args.train_size), "--threads", str(args.threads)]
    cmd += ["--device", "cpu" if args.cpu else "cuda"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    for item in args.model_arg:
        cmd += ["--model-arg", item]
    return cmd


def run_group(seeds: list[int], args: argparse.Namespace, concurrent: bool) -> dict:
    """Run one trial per seed, all at once or one after another; wall times and NVML load."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    walls: list[float] = []
    trial_s: list[float] = []

    def finish(proc: subprocess.Popen, started: float) -> None:
        out, err = proc.communicate()
        walls.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(f"trial failed ({proc.returncode}): {err[-2000:]}")
        trial_s.append(json.loads(out.strip().splitlines()[-1])["seconds"])

    def start(seed: int) -> tuple[subprocess.Popen, float]:
        popen = subprocess.Popen(
            trial_command(seed, args), cwd=ROOT, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        return popen, time.perf_counter()

    t0 = time.perf_counter()
    with NvmlSampler() as nvml:
        if concurrent:
            for proc, started in [start(s) for s in seeds]:
                finish(proc, started)
        else:
            for s in seeds:
                finish(*start(s))
    return {
        "wall_s": time.perf_counter() - t0,
        "trial_wall_s": walls,
        "trial_train_s": trial_s,
        **nvml.summary(),
    }


def packing_rows(args: argparse.Namespace) -> list[dict]:
    """The sequential series, then each packing's concurrent group, as rows of figures."""
    packings = [int(k) for k in args.packing.split(",")]
    seq = run_group(list(range(max(packings))), args, concurrent=False)
    rows = []
    for n in packings:
        group = seq if n == 1 else run_group(list(range(n)), args, concurrent=True)
        walls = group["trial_wall_s"][:n]
        seq_wall = sum(seq["trial_wall_s"][:n])
        wall = walls[0] if n == 1 else group["wall_s"]
        seq_mean = seq_wall / n
        rows.append(
            {
                "packing": n,
                "wall_s": wall,
                "sequential_wall_s": seq_wall,
                "trials_per_min": 60 * n / wall,
                "sequential_trials_per_min": 60 * n / seq_wall,
                "speedup": seq_wall / wall,
                "mean_trial_wall_s": sum(walls) / n,
                "mean_trial_train_s": sum(group["trial_train_s"][:n]) / n,
                "slowdown": (sum(walls) / n) / seq_mean,
                **{k: group[k] for k in ("util_mean", "util_max", "mem_peak_mib", "proc_peak_mib")},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _ray_child(packing: int, args: argparse.Namespace) -> dict:
    import ray
    import torch
    from mlflow import MlflowClient

    from sweeps.execution.driver import SweepOptions, run_sweep
    from sweeps.specs.space import expand_grid
    from sweeps.specs.spec import parse_spec

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


def ray_rows(args: argparse.Namespace) -> list[dict]:
    """Each packing through the real sweep driver, one fresh Ray per packing (``--ray``)."""
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
        rows.append(json.loads(line.removeprefix("RESULT ")))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"\nimdb-lstm, train_size {args.train_size}, {args.epochs} epoch(s)\n")
    if args.ray:
        base = rows[0]["mean_trial_s"]
        print("| per GPU | trials | wall s | trials/min | steady trials/min | s/trial | slowdown |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            print(
                f"| {r['packing']} | {r['trials']} | {r['wall_s']:.1f} | "
                f"{r['trials_per_min']:.1f} | {r['steady_trials_per_min']:.1f} | "
                f"{r['mean_trial_s']:.1f} | {r['mean_trial_s'] / base:.2f}x |"
            )
        return
    print("| per GPU | trials/min | one after another | speed-up | slowdown | util % mean/max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        util = "-" if r["util_mean"] is None else f"{r['util_mean']:.0f} / {r['util_max']:.0f}"
        print(
            f"| {r['packing']} | {r['trials_per_min']:.1f} | "
            f"{r['sequential_trials_per_min']:.1f} | {r['speedup']:.2f}x | "
            f"{r['slowdown']:.2f}x | {util} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packing", default="1,2,4,8", help="trials per GPU, comma-separated")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per trial")
    parser.add_argument("--data-dir", default=None, help="data root (default: the task's)")
    parser.add_argument("--synthetic", type=int, default=None, help="use N synthetic reviews")
    parser.add_argument(
        "--model-arg", action="append", default=[], help="model override (KEY=VALUE)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--cpu", action="store_true", help="CPU trials: checks the script only")
    parser.add_argument("--ray", action="store_true", help="through the sweep driver on Ray")
    parser.add_argument("--rounds", type=int, default=2, help="--ray: trials per GPU slot")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(_ray_child(args.child, args)), flush=True)
        return

    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA GPU on this machine: the GPU packing benchmark needs one; nothing measured")
        return
    with tempfile.TemporaryDirectory(prefix="bench-gpu-packing-data-") as tmp:
        if args.synthetic:
            args.data_dir = str(write_synthetic(Path(tmp), args.synthetic))
        rows = ray_rows(args) if args.ray else packing_rows(args)
    device = "cpu" if args.cpu else torch.cuda.get_device_name(0)
    if args.json:
        args.json.write_text(
            json.dumps({"device": device, "torch": torch.__version__, "rows": rows}, indent=1)
        )
    print_table(rows, args)


if __name__ == "__main__":
    main()
