"""The plan on a GPU: imdb-lstm's two Table 3 shapes calibrated, and ``gpus: auto``'s choice.

What ``dropattack plan SPEC --gpus-per-trial auto`` measures, without the service (the GPU
machine has torch and tokenizers only): :func:`sweeps.cost.calibrate.calibrate` for the standard
baseline and DropAttack-3 (Embedding + Lstm.ih.w, K = 3: 7 passes a step) on the IMDB sample's
training rows (set-up, step, evaluation, the CUDA allocator's peak), then
:func:`sweeps.cost.plan.choose_gpus` on the DropAttack shape: 1, 2, 4, 8 calibrations at once on
GPU 0, each its own process, the fraction at the knee of trials/hour within memory.

Run: ``python bench/gpu_plan.py --data-dir DIR --json OUT.json [--device cuda|cpu] [--tiny]``
(``bench/gpu_run.py``'s ``plan`` step). ``--device cpu --tiny`` checks the script.
"""

from __future__ import annotations

import sys

# bench/ holds scripts named like stdlib modules: keep it off the import path.
sys.path[:] = [p for p in sys.path if p != __file__.rsplit("/", 1)[0]]
# ruff: noqa: E402

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    "standard": {"method": "standard"},
    "dropattack3": {
        "method": "dropattack",
        "attack": ("Embedding", "Lstm.ih.w"),
        "eps": 5.0,
        "p": 0.7,
        "k": 3,
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--json", required=True, help="write the figures here")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of steps a shape")
    parser.add_argument("--window", type=float, default=5.0, help="seconds a packing is timed")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (checks the script)")
    args = parser.parse_args()

    import torch

    from sweeps.cost.calibrate import calibrate, probe
    from sweeps.cost.plan import choose_gpus

    base = {
        "task": "imdb-lstm",
        "epochs": 10,
        "train_size": args.train_size,
        "data_dir": args.data_dir,
        "device": args.device,
    }
    if args.tiny:
        base.update(train_size=64, epochs=1, model={"hidden": 16, "embed_dim": 16})
    out: dict = {"device": args.device, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.device == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
        out["gpu_memory_bytes"] = torch.cuda.get_device_properties(0).total_memory
    shapes = {}
    for name, fields in SHAPES.items():
        c = calibrate({**base, **fields}, budget=1.0 if args.tiny else args.budget)
        shapes[name] = {**c.as_dict(), "trial_seconds": c.trial_seconds()}
        print(f"{name}: {c.trial_seconds():.1f} s a trial, peak {c.peak_memory_bytes / 2**20:.0f}"
              f" MiB ({c.memory})", flush=True)  # fmt: skip
    out["shapes"] = shapes
    trial = {**base, **SHAPES["dropattack3"]}
    peak = shapes["dropattack3"]["peak_memory_bytes"]
    memory = out.get("gpu_memory_bytes", 0)
    window = 1.0 if args.tiny else args.window
    fraction, figures = choose_gpus(
        lambda k: probe(trial, k, threads=1, window=window),
        peak,
        memory,
        max_k=2 if args.tiny else 8,
    )
    out["auto"] = figures
    print(f"gpus: auto -> {fraction:g} per trial", flush=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
