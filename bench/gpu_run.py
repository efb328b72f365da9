"""Every GPU figure of the project in one run on a lent GPU machine, as JSON under ``--out``.

The GPU machine has its own ``python3`` (torch and tokenizers, no Ray, MLflow, Optuna or
pydantic, no network) and only the checkout travels, so this script needs nothing but the
source tree and a data folder carried beside it. Steps, each a subprocess with a time limit
inside one overall budget (a step that fails or runs out of time is recorded, the rest go on):

1. ``cuda_tests``: ``pytest tests/dropattack/test_cuda.py``;
2. ``engine_step``: ``bench/engine_step.py`` (DropAttack K = 1, 3 over the pass floor and
   against the notebook-shaped loop; peak allocator memory);
3. ``text_step``: ``bench/text_step.py`` (each text model's step on real IMDB, PHEME and AG
   News batches: the project's default path, PackedSequence, and the split and twin paths);
4. ``packing``: ``bench/gpu_packing.py`` (1, 2, 4, 8 concurrent IMDB LSTM trial processes on
   the GPU against the same trials one after another, NVML load);
5. ``fused_probe``: ``bench/fused_probe.py`` (M = 1, 4, 8, 16, 64 trials as one vectorised
   training step against M separate steps: LeNet-5 through ``vmap``, the IMDB LSTM as a
   ``baddbmm`` recurrence, eager, CUDA-graphed and compiled, and as M cuDNN LSTMs on M CUDA
   streams), bounded by its own ``PROBE_BUDGET`` seconds;
6. ``plan``: ``bench/gpu_plan.py`` (``dropattack plan``'s calibration of imdb-lstm's standard
   and DropAttack-3 shapes on the GPU, and ``gpus: auto``'s fraction from 1, 2, 4, 8
   calibrations at once);
7. ``table3``: the paper's Table 3 rows 500, 1,000 and 2,000 on ``imdb/Train2500.csv`` (its
   seeded 2,000 / 250 / 250 split): standard against DropAttack-3 (Embedding + Lstm.ih.w,
   eps 5, p 0.7, K 3), 5 seeds each, 8 trials at a time, one ``dropattack train --json`` each.

Files written (8): ``summary.json`` (environment, each step's status
and seconds), ``engine_step.json``, ``text_step.json``, ``packing.json``, ``fused_probe.json``,
``plan.json``, ``table3.json`` and ``logs.tar.gz`` (every step's output).
``bench/gpu_report.py`` turns them into the Markdown of ``docs/benchmarks.md`` and a
Table 3 reproduction page.

Prepare here, run there, report back (docs/benchmarks.md, "On a GPU", has the steps)::

    python bench/gpu_run.py --prepare .devdata     # copies the shared samples (git-ignored)
    # on the GPU machine: PYTHONUNBUFFERED=1 python3 bench/gpu_run.py --data-dir .devdata
    python bench/gpu_report.py OUT_DIR --reproduction table3-reproduction.md

``--device cpu --tiny`` runs every step at toy sizes on the CPU to check the script.
"""

from __future__ import annotations

import sys

# bench/ holds scripts named like stdlib modules: keep it off the import path.
sys.path[:] = [p for p in sys.path if p != __file__.rsplit("/", 1)[0]]
# ruff: noqa: E402

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLES = ("imdb/Train2500.csv", "pheme/2018_val.csv", "pheme/2018_test.csv", "agnews/val_ag1.csv")
TABLE3_SIZES = (500, 1000, 2000)
TABLE3_DROPATTACK = ["--attack", "Embedding,Lstm.ih.w", "--eps", "5", "--p", "0.7", "--k", "3"]
CUDA_TESTS = "tests/dropattack/test_cuda.py"
TINY_MODEL = ["--model-arg", "hidden=16", "--model-arg", "embed_dim=16"]
PROBE_BUDGET = 90  # seconds of the fused-trial probe's own (it stops starting variants then)


def prepare(folder: Path) -> None:
    """Copy the shared data samples the steps read into ``folder`` and git-ignore it."""
    for name in SAMPLES:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED_DATA / name, target)
    if not folder.resolve().is_relative_to(ROOT):
        print(f"copied {len(SAMPLES)} files to {folder}")
        return
    git = ["git", "rev-parse", "--git-path", "info/exclude"]
    exclude = ROOT / subprocess.run(git, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    entry = f"/{folder.resolve().relative_to(ROOT)}/"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    if entry not in (exclude.read_text().splitlines() if exclude.is_file() else []):
        with exclude.open("a") as f:
            f.write(entry + "\n")
    print(f"copied {len(SAMPLES)} files to {folder}; carry {entry.strip('/')} to the device")


class Run:
    """The steps' shared state: where output goes, the budget left, the logs."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        self.deadline = time.monotonic() + args.budget
        self.logs: dict[str, str] = {}
        self.steps: dict[str, dict] = {}
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        }

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def command(self, name: str, cmd: list[str], limit: float) -> subprocess.CompletedProcess:
        """Run ``cmd`` within ``limit`` seconds (and the budget); keep its output as a log."""
        limit *= 4 if self.args.tiny else 1  # toy sizes on a CPU are slower than a GPU
        timeout = max(1.0, min(limit, self.left()))
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as e:
            self.logs[name] = _text(e.stdout) + _text(e.stderr)
            raise TimeoutError(f"{name}: over its {timeout:.0f} s") from None
        self.logs[name] = proc.stdout + proc.stderr
        return proc

    def step(self, name: str, fn: Callable[[Run], dict]) -> None:
        """Run one step, recording status, seconds and what it returns; never raises."""
        if self.left() < 5:
            self.steps[name] = {"status": "skipped", "reason": "budget spent"}
            print(f"[{name}] skipped: budget spent", flush=True)
            return
        print(f"[{name}] start ({self.left():.0f} s of budget left)", flush=True)
        t0 = time.monotonic()
        try:
            info = {"status": "ok", **fn(self)}
        except Exception as e:  # a step's failure is a figure too; the others still run
            info = {"status": "failed", "error": f"{type(e).__name__}: {e}"[-2000:]}
        info["seconds"] = round(time.monotonic() - t0, 1)
        self.steps[name] = info
        print(f"[{name}] {info['status']} in {info['seconds']} s", flush=True)

    def finish(self) -> dict:
        summary = {"environment": environment(self.args.device), "steps": self.steps}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
        with tarfile.open(self.out / "logs.tar.gz", "w:gz") as tar:
            for name, text in self.logs.items():
                data = text.encode()
                info = tarfile.TarInfo(f"logs/{name}.log")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return summary


def _text(value: str | bytes | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def environment(device: str) -> dict:
    import torch

    env = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": device,
        "cpus": os.cpu_count(),
    }
    if device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    env["commit"] = commit.stdout.strip() or None
    return env


def cuda_tests(run: Run) -> dict:
    proc = run.command(
        "cuda_tests",
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", CUDA_TESTS],
        limit=90,
    )
    last = next((x for x in reversed(proc.stdout.splitlines()) if x.strip()), "")
    if proc.returncode not in (0, 5):
        raise RuntimeError(f"pytest exit {proc.returncode}: {last}")
    return {"result": last}


def _bench(run: Run, name: str, args: list[str], limit: float, script: str = "") -> dict:
    """Step ``name``: ``bench/<script or name>.py ARGS --json OUT/<name>.json``; a non-zero
    exit fails the step."""
    target = run.out / f"{name}.json"
    cmd = [sys.executable, f"bench/{script or name}.py", *args, "--json", str(target)]
    proc = run.command(name, cmd, limit=limit)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr[-1500:]}")
    return {"file": target.name}


def engine_step(run: Run) -> dict:
    args = ["--device", run.args.device, "--data-dir", str(run.args.data_dir)]
    args += ["--reps", "2", "--no-peak"] if run.args.tiny else []
    return _bench(run, "engine_step", args, limit=90)


def text_step(run: Run) -> dict:
    # PackedSequence and the twin path beside the default: which one bidirectional models take
    # on CUDA (models.varlen.DEFAULT_PATHS) waits for these figures
    args = ["--device", run.args.device, "--data-dir", str(run.args.data_dir)]
    args += ["--reference", "--paths", "split,twin"]
    args += ["--batches", "1", "--batch-size", "8", "--reps", "1"] if run.args.tiny else []
    return _bench(run, "text_step", args, limit=100)


def packing(run: Run) -> dict:
    args = ["--data-dir", str(run.args.data_dir)]
    if run.args.tiny:
        args += ["--cpu", "--packing", "1,2", "--train-size", "32", "--threads", "1", *TINY_MODEL]
    return _bench(run, "packing", args, limit=150, script="gpu_packing")


def fused_probe(run: Run) -> dict:
    """``bench/fused_probe.py``; its variants that failed (it records them and goes on) are
    named in the step's result."""
    args = ["--device", run.args.device, "--data-dir", str(run.args.data_dir)]
    args += ["--budget", str(PROBE_BUDGET)]
    if run.args.tiny:  # no compile at toy sizes: it is half a minute of CPU for nothing
        args += ["--ms", "1,2", "--batch-size", "8", "--batches", "1", "--reps", "1"]
        args += ["--hidden", "16", "--embed-dim", "16"]
        args += ["--variants", "separate,vmap,vmap_shared,streams,baddbmm,baddbmm_graphs"]
    info = _bench(run, "fused_probe", args, limit=PROBE_BUDGET + 30)
    data = json.loads((run.out / info["file"]).read_text())
    failed = [
        f"{name} M={row['m']} {variant}"
        for name in ("lenet5", "lstm")
        for row in data.get(name, {}).get("rows", [])
        for variant, v in row.get("variants", {}).items()
        if "error" in v
    ]
    info["result"] = f"{len(failed)} variants failed: {', '.join(failed)}" if failed else "all ran"
    return info


def plan(run: Run) -> dict:
    args = ["--device", run.args.device, "--data-dir", str(run.args.data_dir)]
    args += ["--tiny"] if run.args.tiny else []
    return _bench(run, "plan", args, limit=150, script="gpu_plan")


def table3(run: Run) -> dict:
    """30 trials (3 sizes x 2 methods x 5 seeds), ``--parallel`` at a time, JSON per trial."""
    tiny = run.args.tiny
    sizes = (32, 64) if tiny else TABLE3_SIZES
    seeds = range(2 if tiny else 5)
    jobs = [
        (size, method, seed)
        for size in sizes
        for method in ("standard", "dropattack3")
        for seed in seeds
    ]
    threads = 1 if tiny else max(1, (os.cpu_count() or 8) // run.args.parallel)

    def one(job: tuple[int, str, int]) -> dict:
        size, method, seed = job
        cmd = [sys.executable, "-m", "sweeps.cli", "train", "imdb-lstm", "--json"]
        cmd += ["--train-size", str(size), "--seed", str(seed), "--threads", str(threads)]
        cmd += ["--device", run.args.device, "--data-dir", str(run.args.data_dir)]
        cmd += ["--method", "standard"] if method == "standard" else TABLE3_DROPATTACK
        cmd += ["--epochs", "1", *TINY_MODEL] if tiny else []
        row = {"train_size": size, "method": method, "seed": seed}
        t0 = time.monotonic()
        try:
            proc = run.command(f"table3-{size}-{method}-s{seed}", cmd, limit=run.left())
        except TimeoutError as e:
            return {**row, "error": str(e)}
        row["wall_s"] = round(time.monotonic() - t0, 2)
        if proc.returncode != 0:
            return {**row, "error": proc.stderr.strip().splitlines()[-1:] or ["exit"]}
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        keep = ("val_acc", "val_f1", "test_acc", "test_f1", "best_epoch", "epochs", "seconds")
        return {**row, **{k: result[k] for k in keep}, "sizes": result["sizes"]}

    with ThreadPoolExecutor(run.args.parallel) as pool:
        rows = list(pool.map(one, jobs))
    (run.out / "table3.json").write_text(json.dumps({"trials": rows}, indent=1))
    failed = [r for r in rows if "error" in r]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(rows)} trials failed: {failed[0]['error']}")
    return {"file": "table3.json", "trials": len(rows)}


STEPS: dict[str, Callable[[Run], dict]] = {
    "cuda_tests": cuda_tests,
    "engine_step": engine_step,
    "text_step": text_step,
    "packing": packing,
    "fused_probe": fused_probe,
    "plan": plan,
    "table3": table3,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, metavar="DIR", help="copy the data samples, exit")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-run")))
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".devdata")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--budget", type=float, default=480, help="seconds for all steps")
    parser.add_argument("--parallel", type=int, default=8, help="Table 3 trials at a time")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (checks the script)")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return
    unknown = sorted(set(args.steps.split(",")) - set(STEPS))
    if unknown:
        parser.error(f"--steps: unknown {unknown}; expected some of {list(STEPS)}")
    missing = [n for n in SAMPLES if not (args.data_dir / n).is_file()]
    if missing:
        parser.error(f"--data-dir {args.data_dir}: missing {missing} (run --prepare first)")
    args.out.mkdir(parents=True, exist_ok=True)
    args.data_dir = args.data_dir.resolve()
    args.out = args.out.resolve()
    run = Run(args)
    for name in args.steps.split(","):
        run.step(name, STEPS[name])
    summary = run.finish()
    print(json.dumps(summary, indent=1))
    sys.exit(0 if all(s["status"] == "ok" for s in summary["steps"].values()) else 1)


if __name__ == "__main__":
    main()
