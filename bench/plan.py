"""Plan, then run: ``dropattack plan``'s predicted wall time against the sweep's actual one.

Each case is a real sweep on this machine, in a fresh process (so Ray starts as it does for a
user): :func:`sweeps.cost.plan.make_plan` within the default 60 s budget, then
:func:`~sweeps.execution.driver.run_sweep` with that plan, a local Ray on all CPUs and a sqlite
MLflow store in a temporary folder. Reported: the plan's and the sweep's wall time and their ratio,
and per cost shape the predicted and the mean measured ``trial_seconds`` (read back from the
trials' MLflow runs). Goal: predicted / actual wall within 0.8-1.2 for each case.

- ``digits``: digits-lenet5, 3 epochs: the standard baseline and DropAttack-(I-H) with K = 3
  (7 passes a step), a 2 x 2 eps x p grid, 2 seeds: 10 trials, two cost shapes.
- ``pheme``: pheme-bilstm on the shared PHEME sample, 256 training examples, batch 32,
  1 epoch: standard against DropAttack[Embedding] (2 passes), 4 seeds each: 8 trials, two
  cost shapes.

Run: ``python bench/plan.py [--cases digits,pheme] [--out plan.json]``; the Markdown rows go to
stdout.
"""

from __future__ import annotations

import sys

# bench/ holds scripts named like stdlib modules: keep it off the import path.
sys.path[:] = [p for p in sys.path if p != __file__.rsplit("/", 1)[0]]
# ruff: noqa: E402

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
#: ../shared/data beside the checkout, or shared/data inside it (a copied working tree).
DATA_DIR = next(
    (str(p) for p in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if p.is_dir()),
    str(ROOT.parent / "shared" / "data"),
)
CASES: dict[str, dict[str, Any]] = {
    "digits": {
        "name": "bench-plan-digits",
        "defaults": {"task": "digits-lenet5", "epochs": 3},
        "trials": [
            {"method": "standard"},
            {"method": "dropattack", "attack": ["Input", "Conv.1.w"], "k": 3},
        ],
        "space": {"eps": [1, 5], "p": [0.3, 0.7]},
        "seeds": [0, 1],
        "resources": {"cpus": 1},
        "keep_checkpoint": False,
    },
    "pheme": {
        "name": "bench-plan-pheme",
        "defaults": {
            "task": "pheme-bilstm",
            "epochs": 1,
            "train_size": 256,
            "batch_size": 32,
            "data_dir": DATA_DIR,
        },
        "trials": [{"method": "standard"}, {"method": "dropattack", "attack": ["Embedding"]}],
        "seeds": [0, 1, 2, 3],
        "resources": {"cpus": 1},
        "keep_checkpoint": False,
    },
}


def run_case(name: str, budget: float) -> dict[str, Any]:
    """Plan and run one case in this process; its figures."""
    import yaml

    from sweeps.cost.plan import make_plan
    from sweeps.execution.driver import SweepOptions, run_sweep
    from sweeps.records.tracking import TAG
    from sweeps.specs.load import load_spec

    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        path = Path(tmp) / f"{name}.yaml"
        path.write_text(yaml.safe_dump(CASES[name]))
        spec = load_spec(path)
        t0 = time.perf_counter()
        plan = make_plan(spec, budget=budget)
        plan_seconds = time.perf_counter() - t0
        result = run_sweep(spec, SweepOptions(runs_dir=Path(tmp) / "runs", plan=plan, live=False))
        import mlflow

        client = mlflow.MlflowClient(result.tracking_uri)
        runs = client.search_runs(
            [result.experiment_id], f"tags.`{TAG['parent']}` = '{result.parent_run_id}'"
        )
        measured: dict[str, float] = {}
        for r in runs:
            key = f"{r.data.tags.get(TAG['cell'])};seed={r.data.params.get('seed')}"
            if "trial_seconds" in r.data.metrics:
                measured[key] = r.data.metrics["trial_seconds"]
        parent = client.get_run(result.parent_run_id).data.metrics
    shapes = []
    for s in plan.shapes:
        got = [measured[k] for k in s.keys if k in measured]
        shapes.append(
            {
                "shape": s.describe(),
                "trials": s.trials,
                "passes": s.passes,
                "predicted_trial_seconds": s.trial_seconds(),
                "measured_trial_seconds": sum(got) / len(got) if got else None,
                "calibrated": s.calibration is not None and s.estimated_from is None,
            }
        )
    return {
        "case": name,
        "trials": plan.trials,
        "done": result.counts["done"],
        "concurrency": plan.slots,
        "plan_seconds": plan_seconds,
        "calibration_seconds": plan.calibration_seconds,
        "predicted_wall_seconds": plan.wall_seconds,
        "actual_wall_seconds": result.wall_seconds,
        "ratio": plan.wall_seconds / result.wall_seconds if plan.wall_seconds else None,
        "parent_run": {
            k: parent.get(k) for k in ("wall_seconds", "predicted_wall_seconds", "wall_ratio")
        },
        "startup_seconds": plan.startup_seconds,
        "contention": plan.auto.get("contention"),
        "skipped": plan.skipped,
        "shapes": shapes,
        "load_before": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="digits,pheme")
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--out", default=None, help="write every figure as JSON here")
    parser.add_argument("--tries", type=int, default=2, help="runs of a case that fails")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a case, in-process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.budget)))
        return 0
    env = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
    }
    results, failed = [], []
    for name in args.cases.split(","):
        for attempt in range(1, args.tries + 1):
            out = subprocess.run(
                [sys.executable, __file__, "--one", name, "--budget", str(args.budget)],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if out.returncode == 0:
                results.append({**json.loads(out.stdout.strip().splitlines()[-1]), "try": attempt})
                break
            # a local Ray that cannot start on an overloaded machine: the case again, anew
            print(f"{name}, try {attempt}: {out.stderr.strip()[-600:]}", file=sys.stderr)
        else:
            failed.append(name)
        if args.out:  # after every case: a later failure loses nothing
            Path(args.out).write_text(json.dumps({"env": env, "cases": results}, indent=1))
    print("| case | trials | at once | predicted wall | actual wall | predicted / actual |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['case']} | {r['trials']} | {r['concurrency']} | "
            f"{r['predicted_wall_seconds']:.1f} s | {r['actual_wall_seconds']:.1f} s | "
            f"{r['ratio']:.2f} |"
        )
    print()
    print("| case | shape | trials | passes | predicted s/trial | measured s/trial |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        for s in r["shapes"]:
            measured = s["measured_trial_seconds"]
            print(
                f"| {r['case']} | {s['shape']} | {s['trials']} | {s['passes']} | "
                f"{s['predicted_trial_seconds']:.2f} | "
                + (f"{measured:.2f} |" if measured is not None else "? |")
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
