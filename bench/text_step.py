"""Training-step time of the text models on real token batches, against their padded floor.

For each text task (IMDB LSTM, PHEME BiLSTM, AG News BiGRU, IMDB TextRCNN, IMDB TextCNN) it
draws ``--batches`` training batches of ``--batch-size`` examples from the task's real data
(``--data-dir``, the shared samples by default; seeded, so every run sees the same batches,
with the rows' own token lengths) and times one step (zero_grad, forward, cross-entropy,
backward, Adam) of these variants, interleaved round-robin, ``--reps`` rounds:

- ``model``: the model as this tree builds it (its default RNN path on this device);
- ``floor``: the same batch with every row as long as the batch's longest row (no padding at
  all: what the padded RNN costs; the goal is ``model / floor <= 1.10``);
- ``packed`` (``--reference``): the model on the PackedSequence reference path, on the same
  batches (``models.varlen``'s ``"packed"``); ``--paths`` adds other paths (``split``,
  ``twin``) to compare on CUDA;
- ``ref`` (``--compare REF``): the models of git commit REF, run from a git worktree of it in
  a second process, interleaved with this tree's, the ratio being one of medians.

Each variant's figure is the sum over the batches of its per-batch median, and each variant
runs in a worker process (one per tree) that the parent drives step by step, so the variants
alternate in time and see the same neighbours. On CPU the clock is the worker's process CPU
time with one torch thread (wall time on a shared machine measures the neighbours); on CUDA
it is wall time with synchronisation. ``--bucket`` draws the batches as ``bucket: true``
training does (rows of similar length) instead of uniformly.

Run: ``python bench/text_step.py [--device cpu|cuda] [--data-dir ../shared/data]
[--tasks imdb-lstm,...] [--batches 4] [--batch-size 128] [--reps 3] [--reference]
[--paths split,twin] [--compare aa4e8ad] [--bucket] [--json out.json]``.
Smoke test: ``--batches 1 --batch-size 8 --reps 1``.
"""

from __future__ import annotations

import sys

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if p != __file__.rsplit("/", 1)[0]]
# ruff: noqa: E402

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
#: ../shared/data beside the checkout, or shared/data inside it (a copied working tree).
DATA_DIR = next(
    (str(p) for p in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if p.is_dir()),
    str(ROOT.parent / "shared" / "data"),
)
TASKS = ("imdb-lstm", "pheme-bilstm", "agnews-bigru", "imdb-textrcnn", "imdb-textcnn")


def draw(args: argparse.Namespace, folder: Path) -> dict:
    """Load each task's data (this tree's loader) and save its batches for the workers."""
    sys.path.insert(0, str(ROOT))
    from models import tasks
    from models.data import Batches, DataOptions

    info = {}
    for name in args.tasks.split(","):
        task = tasks.get(name)
        data = task.load(DataOptions(data_dir=args.data_dir))
        bs = args.batch_size or task.batch_size
        order = Batches(data.train, bs, shuffle=True, seed=args.seed, bucket=args.bucket)
        picks = [idx for idx in order.batch_indices(0) if len(idx) == bs][: args.batches]
        if not picks:
            sys.exit(f"--batch-size: {bs} is more than {name}'s {len(data.train)} examples")
        x = [data.train.x[torch.from_numpy(i)].long() for i in picks]
        y = [data.train.y[torch.from_numpy(i)] for i in picks]
        lengths = [data.train.lengths[torch.from_numpy(i)].clamp(min=1) for i in picks]
        torch.save({"x": x, "y": y}, folder / f"{name}.pt")
        info[name] = {
            "epoch_work": epoch_work(data.train, bs, args.seed),
            "model": task.model,
            "num_classes": task.num_classes,
            "lr": task.lr,
            "model_kwargs": {
                k: v for k, v in data.model_kwargs.items() if k in ("vocab_size", "padding_idx")
            },
            "batch_size": bs,
            "width": [int(x_.shape[1]) for x_ in x],
            "longest": [int(L.max()) for L in lengths],
            "mean_length": [round(float(L.float().mean()), 1) for L in lengths],
        }
    return info


def epoch_work(split, batch_size: int, seed: int) -> dict:
    """Token positions an epoch's RNN passes cover, over the real tokens, bucketed or not.

    ``trimmed``: each batch cut to its longest row (this tree); ``fixed``: every batch at the
    full padded width (what a padded model without trimming would cover). Epoch 0's order.
    """
    from models.data import Batches

    lengths = split.lengths.clamp(min=1).numpy()
    real = float(lengths.sum())
    out = {"examples": len(lengths), "real_tokens": int(real)}
    for bucket in (False, True):
        order = Batches(split, batch_size, shuffle=True, seed=seed, bucket=bucket)
        trimmed = sum(len(i) * int(lengths[i].max()) for i in order.batch_indices(0))
        out["bucketed" if bucket else "uniform"] = round(trimmed / real, 3)
    out["fixed"] = round(len(lengths) * split.x.shape[1] / real, 3)
    return out


# ---------------------------------------------------------------- worker (one per tree)


def _worker(tree: Path, folder: Path, info: dict, device: str, threads: int) -> None:
    """Build the models of ``tree`` and run the steps the parent asks for, one per line."""
    sys.path.insert(0, str(tree))
    import torch.nn.functional as F

    import models

    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_num_threads(threads)
    clock = time.perf_counter if dev.type == "cuda" else time.process_time
    state = {}
    for name, meta in info.items():
        torch.manual_seed(0)
        model = models.get(meta["model"], num_classes=meta["num_classes"], **meta["model_kwargs"])
        model = model.to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=meta["lr"])
        saved = torch.load(folder / f"{name}.pt", weights_only=True)
        pad = meta["model_kwargs"].get("padding_idx", 0)
        batches, floors = [], []
        for x, y, longest in zip(saved["x"], saved["y"], meta["longest"], strict=True):
            full = x[:, :longest].clone()
            full[full == pad] = (pad + 1) % meta["model_kwargs"]["vocab_size"]
            batches.append((x.to(dev), y.to(dev)))
            floors.append((full.to(dev), y.to(dev)))
        state[name] = (model, opt, batches, floors)

    def step(name: str, variant: str, i: int) -> float:
        model, opt, batches, floors = state[name]
        x, y = (floors if variant == "floor" else batches)[i]
        if hasattr(model, "rnn_path"):
            model.rnn_path = variant if variant not in ("model", "floor") else None
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = clock()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return clock() - t

    print("READY", flush=True)
    for line in sys.stdin:
        name, variant, i = line.split()
        print(json.dumps(step(name, variant, int(i))), flush=True)


class Worker:
    """A worker process for one tree, driven over its stdin/stdout."""

    def __init__(self, tree: Path, folder: Path, args: argparse.Namespace) -> None:
        cmd = [sys.executable, __file__, "--worker", str(tree), "--folder", str(folder)]
        cmd += ["--device", args.device, "--threads", str(args.threads)]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.proc = subprocess.Popen(
            cmd, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        if self.proc.stdout.readline().strip() != "READY":
            sys.exit(f"worker for {tree} did not start (see its error above)")

    def step(self, name: str, variant: str, i: int) -> float:
        self.proc.stdin.write(f"{name} {variant} {i}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"worker failed on {name} {variant} batch {i} (see its error above)")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _worktree(ref: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-ref-")) / ref.replace("/", "_")
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(folder), ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return folder


def measure(args: argparse.Namespace) -> dict:
    """Interleaved per-batch medians of every (task, variant); see the module docstring."""
    folder = Path(tempfile.mkdtemp(prefix="bench-text-"))
    try:
        return _measure(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _measure(args: argparse.Namespace, folder: Path) -> dict:
    info = draw(args, folder)
    (folder / "info.json").write_text(json.dumps(info))
    own = ["model", "floor"] + (["packed"] if args.reference else [])
    own += [p for p in args.paths.split(",") if p and p not in own]
    ref_tree = _worktree(args.compare) if args.compare else None
    workers = {"": Worker(ROOT, folder, args)}
    try:
        if ref_tree is not None:
            workers["ref"] = Worker(ref_tree, folder, args)
        plan = [("", v) for v in own] + ([("ref", "model")] if ref_tree is not None else [])
        samples: dict[tuple[str, str, int], list[float]] = {}
        for name, meta in info.items():
            n = len(meta["width"])
            for who, variant in plan:  # warm-up
                workers[who].step(name, variant, 0)
            for _ in range(args.reps):
                for i in range(n):
                    for who, variant in plan:
                        label = "ref" if who else variant
                        samples.setdefault((name, label, i), []).append(
                            workers[who].step(name, variant, i)
                        )
            print(f"{name}: done", file=sys.stderr, flush=True)
    finally:
        for w in workers.values():
            w.close()
        if ref_tree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(ref_tree)], cwd=ROOT)
            shutil.rmtree(ref_tree.parent, ignore_errors=True)
    labels = own + (["ref"] if ref_tree is not None else [])
    results = {}
    for name, meta in info.items():
        n = len(meta["width"])
        per_batch = {
            label: [statistics.median(samples[(name, label, i)]) for i in range(n)]
            for label in labels
        }
        total = {label: sum(v) for label, v in per_batch.items()}
        row = {
            **meta,
            "ms_per_step": {k: 1e3 * v / n for k, v in total.items()},
            "per_batch_ms": {k: [round(1e3 * s, 2) for s in v] for k, v in per_batch.items()},
            "model_over_floor": total["model"] / total["floor"],
        }
        if "packed" in total:
            row["packed_over_model"] = total["packed"] / total["model"]
        if "ref" in total:
            row["ref_over_model"] = total["ref"] / total["model"]
        for p in own:
            if p not in ("model", "floor", "packed"):
                row[f"{p}_over_model"] = total[p] / total["model"]
        results[name] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--data-dir", default=DATA_DIR, help="default: ../shared/data")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--batches", type=int, default=4, help="batches per task")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the task's")
    parser.add_argument("--reps", type=int, default=3, help="rounds over the batches")
    parser.add_argument("--seed", type=int, default=0, help="seeds the batch draw")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--bucket", action="store_true", help="draw length-bucketed batches")
    parser.add_argument("--reference", action="store_true", help="also the PackedSequence path")
    parser.add_argument("--paths", default="", help="more models.varlen paths, comma-separated")
    parser.add_argument("--compare", metavar="REF", help="also the models of git commit REF")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        info = json.loads((args.folder / "info.json").read_text())
        _worker(args.worker, args.folder, info, args.device, args.threads)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here")
    results = measure(args)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} torch thread(s)",
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "cudnn": torch.backends.cudnn.version() if args.device == "cuda" else None,
        "clock": "wall, synchronised" if args.device == "cuda" else "process CPU time",
        "torch": torch.__version__,
        "bucket": args.bucket,
        "compare": args.compare,
        "reps": args.reps,
        "tasks": results,
    }
    print("\n| task | longest (mean) | floor ms | model ms | model/floor | others |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        ms = r["ms_per_step"]
        extra = ", ".join(
            f"{k.removesuffix('_over_model')} {v:.2f}x model"
            for k, v in r.items()
            if k.endswith("_over_model")
        )
        span = f"{np.mean(r['longest']):.0f} ({np.mean(r['mean_length']):.0f})"
        print(
            f"| {name} | {span} | {ms['floor']:.0f} | {ms['model']:.0f} | "
            f"{r['model_over_floor']:.3f} | {extra} |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
