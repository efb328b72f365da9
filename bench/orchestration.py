"""Orchestration overhead per trial of ``dropattack sweep``, against stock Ray Tune.

    overhead per trial = (sweep wall time - time inside trials / concurrency) / trials

"Inside trials" is what the trainable measures from its first line to its last (data, model,
training, MLflow logging: everything a trial does); the rest of the wall time is the
service's and Ray Tune's: starting Ray and its workers, scheduling, checkpoints, results.
The sweep wall time runs from the call of ``run_sweep`` (Ray not yet started) to its return.
Two more figures split it: *startup* (call to the first trial's MLflow run) and *steady*
(the same formula over the span from the first trial's start to the last trial's end).

Cases, each in a fresh process with a fresh local Ray on this machine's CPUs:

- ``quickstart``: the shipped quickstart spec, real trials, MLflow sqlite store in a temp dir;
- ``noop``: 49 no-op trials (a 7 x 7 grid) through the same driver (our Tune settings, actor
  reuse, no MLflow logging in the trial);
- ``stock``/``stock-reuse``: 49 no-op trials through a plain ``Tuner`` with Tune's defaults,
  without and with ``reuse_actors`` (the issue's baseline).

Run: ``.venv/bin/python bench/orchestration.py [--cases quickstart,noop,stock,stock-reuse]``.
Prints one JSON object per case and a Markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# ruff: noqa: E402

import argparse
import json
import os
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOOP_TRIALS = 49


def _noop(config: dict, ctx: dict | None = None) -> None:
    from ray import tune

    t0 = time.perf_counter()
    tune.report({"val_acc": 0.0, "trial_seconds": time.perf_counter() - t0})


def _overhead(wall: float, inside: float, concurrency: int, n: int) -> float:
    return (wall - inside / concurrency) / n


def case_quickstart(runs_dir: Path) -> dict:
    t0 = time.time()
    from mlflow import MlflowClient

    from sweeps.driver import SweepOptions, run_sweep
    from sweeps.spec import load_spec

    spec = load_spec("quickstart")
    t_call = time.time()
    result = run_sweep(spec, SweepOptions(runs_dir=runs_dir, live=False))
    client = MlflowClient(result.tracking_uri)
    kids = client.search_runs(
        [result.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    first = min(r.info.start_time for r in kids) / 1000
    last = max(r.info.end_time for r in kids) / 1000
    n, inside, conc = len(result.trial_seconds), sum(result.trial_seconds), result.concurrency
    return {
        "case": "quickstart",
        "trials": n,
        "concurrency": conc,
        "wall_s": result.wall_seconds,
        "inside_s": inside,
        "overhead_per_trial_s": _overhead(result.wall_seconds, inside, conc, n),
        "startup_s": first - t_call,
        "steady_overhead_per_trial_s": _overhead(last - first, inside, conc, n),
        "process_s": time.time() - t0,
        "done": result.counts["done"],
    }


def case_noop(runs_dir: Path) -> dict:
    from sweeps.driver import SweepOptions, run_sweep
    from sweeps.spec import parse_spec

    data = {
        "name": "noop",
        "defaults": {"task": "digits-lenet5", "epochs": 1},
        "space": {"eps": [1, 2, 3, 4, 5, 6, 7], "p": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]},
        "resources": {"cpus": 1},
    }
    from sweeps.space import expand_grid

    spec = parse_spec(data, "noop", expand=expand_grid)
    result = run_sweep(spec, SweepOptions(runs_dir=runs_dir, live=False, trainable=_noop))
    n, inside, conc = len(result.trial_seconds), sum(result.trial_seconds), result.concurrency
    return {
        "case": "noop",
        "trials": n,
        "concurrency": conc,
        "wall_s": result.wall_seconds,
        "inside_s": inside,
        "overhead_per_trial_s": _overhead(result.wall_seconds, inside, conc, n),
    }


def case_stock(runs_dir: Path, reuse: bool) -> dict:
    t0 = time.perf_counter()
    import ray
    from ray import tune

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False)
    tuner = tune.Tuner(
        _noop,
        param_space={"i": tune.grid_search(list(range(NOOP_TRIALS)))},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", reuse_actors=reuse),
        run_config=tune.RunConfig(storage_path=str(runs_dir), name="stock"),
    )
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    inside = sum(r.metrics.get("trial_seconds", 0.0) for r in grid)
    conc = int(ray.cluster_resources().get("CPU", 1))
    return {
        "case": "stock-reuse" if reuse else "stock",
        "trials": len(grid),
        "concurrency": conc,
        "wall_s": wall,
        "inside_s": inside,
        "overhead_per_trial_s": _overhead(wall, inside, conc, len(grid)),
    }


CASES = {
    "quickstart": case_quickstart,
    "noop": case_noop,
    "stock": lambda d: case_stock(d, reuse=False),
    "stock-reuse": lambda d: case_stock(d, reuse=True),
}


def _child(case: str) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-{case}-") as tmp:
        out = CASES[case](Path(tmp) / "runs")
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="quickstart,noop,stock,stock-reuse")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    rows = []
    for case in args.cases.split(","):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", case],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"case {case} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        row = json.loads(line.removeprefix("RESULT "))
        row["load_after"] = round(os.getloadavg()[0], 1)
        print(json.dumps(row))
        rows.append(row)
    print()
    print("| case | trials | concurrency | wall s | inside s | overhead s/trial | load |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['case']} | {r['trials']} | {r['concurrency']} | {r['wall_s']:.1f} | "
            f"{r['inside_s']:.1f} | {r['overhead_per_trial_s']:.3f} | {r['load_after']} |"
        )
    for r in rows:
        if "startup_s" in r:
            print(
                textwrap.dedent(f"""
                {r["case"]}: startup (call to first trial) {r["startup_s"]:.1f} s, steady-state
                overhead {r["steady_overhead_per_trial_s"]:.3f} s/trial""").strip()
            )


if __name__ == "__main__":
    main()
