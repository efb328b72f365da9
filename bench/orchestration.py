"""Orchestration overhead per trial of ``dropattack sweep``, against stock Ray Tune.

    overhead per trial = (sweep wall time - time inside trials / concurrency) / trials

"Inside trials" is what the trainable measures from its first line to its last (data, model,
training, MLflow logging: everything a trial does); the rest of the wall time is the
service's and Ray Tune's: starting Ray and its workers, scheduling, checkpoints, results.
The sweep wall time runs from the call of ``run_sweep`` (Ray not yet started) to its return.
Two more figures split it: *startup* (call to the first trial's MLflow run) and *steady*
(the same formula over the span from the first trial's start to the last trial's end).

Cases, each in a fresh process with a fresh local Ray on this machine's CPUs:

- ``cli``: what a user waits for: ``dropattack sweep quickstart`` as a process, from its start
  to its exit (Python start, spec validation, imports, Ray's start and stop included); the
  time inside trials is read back from MLflow. ``--compare REF`` runs the same command from a
  git worktree of REF too, interleaved, and prints the ratio of the medians;
- ``cli-warm``: the same command with ``--address`` pointing at a local Ray head started
  beforehand (``ray start --head``, not timed): what repeated sweeps pay when Ray is left
  running between them;
- ``floor``: the two one-time costs no driver can hide, each alone on the machine: a local
  ``ray.init``, then two trial workers started the way Tune starts them (an actor per CPU
  with Tune's runtime env) that import the trainable's modules and open the MLflow store.
  Their sum over the quickstart's 10 trials is a lower bound of its overhead per trial;
- ``quickstart``: the shipped quickstart spec through ``run_sweep`` in this process, real
  trials, MLflow sqlite store in a temp dir (wall time from the call of ``run_sweep``);
- ``noop``: 49 no-op trials (a 7 x 7 grid) through the same driver (our Tune settings, actor
  reuse, no MLflow logging in the trial);
- ``stock``/``stock-reuse``: 49 no-op trials through a plain ``Tuner`` with Tune's defaults,
  without and with ``reuse_actors`` (the baseline).

Run: ``.venv/bin/python bench/orchestration.py [--cases CASE,...] [--repeat N] [--compare REF]``
(default: every case once). Prints one JSON object per run and a Markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# ruff: noqa: E402

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
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


def case_cli(runs_dir: Path, tree: Path = ROOT, address: str | None = None) -> dict:
    """``dropattack sweep quickstart`` from ``tree``, timed from the process's start to its exit."""
    import re

    from mlflow import MlflowClient

    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "sweep", "quickstart", "--no-live"]
        + ["--runs-dir", str(runs_dir)]
        + (["--address", address] if address else []),
        cwd=tree,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"quickstart failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    sweep_s = float(re.search(r" in ([0-9.]+)s", proc.stdout).group(1))
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([exp.experiment_id])
    kids = [r for r in runs if r.data.tags.get("dropattack.role") == "trial"]
    parent = next(r for r in runs if r.data.tags.get("dropattack.role") == "sweep")
    inside = sum(r.data.metrics["trial_seconds"] for r in kids)
    first = min(r.info.start_time for r in kids) / 1000
    last = max(r.info.end_time for r in kids) / 1000
    n, conc = len(kids), min(len(kids), os.cpu_count() or 1)  # the quickstart: 1 CPU a trial
    return {
        "case": "cli-warm" if address else "cli",
        "tree": str(tree),
        "trials": n,
        "concurrency": conc,
        "wall_s": wall,
        "sweep_s": sweep_s,
        "inside_s": inside,
        "overhead_per_trial_s": _overhead(wall, inside, conc, n),
        "sweep_overhead_per_trial_s": _overhead(sweep_s, inside, conc, n),
        "startup_s": first - t0,
        "steady_overhead_per_trial_s": _overhead(last - first, inside, conc, n),
        "exit_s": t0 + wall - parent.info.end_time / 1000,
    }


def case_cli_warm(runs_dir: Path) -> dict:
    """:func:`case_cli` against a local Ray head that was started before the clock."""
    import signal
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ray = Path(sys.executable).with_name("ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # for the head and the sweep it serves
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths
    head = subprocess.Popen(
        [str(ray), "start", "--head", f"--port={port}", f"--num-cpus={os.cpu_count()}"]
        + ["--include-dashboard=false", f"--temp-dir={temp}"],
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if head.wait(timeout=120) != 0:
            raise RuntimeError("ray start --head failed")
        return case_cli(runs_dir, ROOT, address=f"127.0.0.1:{port}")
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        time.sleep(2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)


def case_floor(runs_dir: Path) -> dict:
    """``ray.init`` alone, then two Tune-like trial workers up to an open MLflow store."""
    from mlflow import MlflowClient

    runs_dir.mkdir(parents=True)
    uri = f"sqlite:///{runs_dir / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # the driver creates the store before trials start
    t0 = time.perf_counter()
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0

    @ray.remote(num_cpus=1, runtime_env={"env_vars": {"PL_DISABLE_FORK": "1"}})  # as Tune's
    class Worker:
        def ready(self, uri: str) -> bool:
            import sweeps.execution.trainable  # noqa: F401
            from sweeps.records.tracking import client_for

            client_for(uri).search_experiments()
            return True

    t1 = time.perf_counter()
    workers = [Worker.remote() for _ in range(int(ray.cluster_resources()["CPU"]))]
    ray.get([w.ready.remote(uri) for w in workers])
    workers_s = time.perf_counter() - t1
    n = 10  # the quickstart's trials
    return {
        "case": "floor",
        "trials": n,
        "concurrency": len(workers),
        "ray_init_s": init_s,
        "workers_s": workers_s,
        "floor_per_trial_s": (init_s + workers_s) / n,
    }


def case_quickstart(runs_dir: Path) -> dict:
    t0 = time.time()
    from mlflow import MlflowClient

    from sweeps.execution.driver import SweepOptions, run_sweep
    from sweeps.specs.load import load_spec

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
    from sweeps.execution.driver import SweepOptions, run_sweep
    from sweeps.specs.spec import parse_spec

    data = {
        "name": "noop",
        "defaults": {"task": "digits-lenet5", "epochs": 1},
        "space": {"eps": [1, 2, 3, 4, 5, 6, 7], "p": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]},
        "resources": {"cpus": 1},
    }
    from sweeps.specs.space import expand_grid

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
    "cli": case_cli,
    "cli-warm": case_cli_warm,
    "floor": case_floor,
    "quickstart": case_quickstart,
    "noop": case_noop,
    "stock": lambda d: case_stock(d, reuse=False),
    "stock-reuse": lambda d: case_stock(d, reuse=True),
}


def _child(case: str, tree: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-{case}-") as tmp:
        runs = Path(tmp) / "runs"
        out = CASES[case](runs, Path(tree)) if tree else CASES[case](runs)
    print("RESULT " + json.dumps(out), flush=True)


def _run_child(case: str, tree: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--child", case] + (["--tree", str(tree)] if tree else [])
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"case {case} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    row = json.loads(line.removeprefix("RESULT "))
    row["label"] = case if tree is None or tree == ROOT else f"{case}@{tree.name}"
    row["load_after"] = round(os.getloadavg()[0], 1)
    print(json.dumps(row), flush=True)
    return row


def _worktree(ref: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-ref-")) / ref.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=ROOT, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="cli,cli-warm,floor,quickstart,noop,stock,stock-reuse")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case, interleaved")
    parser.add_argument("--compare", metavar="REF", help="also run the cli case from git REF")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.tree)
        return
    other = _worktree(args.compare) if args.compare else None
    rows = []
    try:
        for _ in range(args.repeat):
            for case in args.cases.split(","):
                rows.append(_run_child(case, ROOT if case == "cli" else None))
                if case == "cli" and other is not None:
                    rows.append(_run_child(case, other))
    finally:
        if other is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT)
    print()
    print("| case | runs | trials | wall s | inside s | overhead s/trial | startup s | exit s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    medians: dict[str, dict[str, float]] = {}
    for label in dict.fromkeys(r["label"] for r in rows if "wall_s" in r):
        group = [r for r in rows if r["label"] == label]
        med = {
            k: statistics.median(r[k] for r in group)
            for k in ("wall_s", "inside_s", "overhead_per_trial_s", "startup_s", "exit_s")
            if k in group[0]
        }
        medians[label] = med
        print(
            f"| {label} | {len(group)} | {group[0]['trials']} | {med['wall_s']:.1f} | "
            f"{med['inside_s']:.1f} | {med['overhead_per_trial_s']:.3f} | "
            f"{med.get('startup_s', float('nan')):.1f} | {med.get('exit_s', float('nan')):.1f} |"
        )
    if other is not None and "cli" in medians:
        old = medians[f"cli@{other.name}"]
        new = medians["cli"]
        print(
            f"\ncli vs {args.compare} (medians): wall {new['wall_s'] / old['wall_s']:.3f}, "
            f"overhead per trial {new['overhead_per_trial_s'] / old['overhead_per_trial_s']:.3f}"
        )
    floors = [r for r in rows if r["case"] == "floor"]
    if floors:
        med = {
            k: statistics.median(r[k] for r in floors)
            for k in ("ray_init_s", "workers_s", "floor_per_trial_s")
        }
        print(
            f"\nfloor ({len(floors)} runs, medians): ray.init {med['ray_init_s']:.2f} s, "
            f"two trial workers ready {med['workers_s']:.2f} s, over 10 trials "
            f"{med['floor_per_trial_s']:.3f} s/trial"
        )
    for r in rows:
        if "steady_overhead_per_trial_s" in r:
            print(
                f"{r['label']}: startup {r['startup_s']:.1f} s, steady-state overhead "
                f"{r['steady_overhead_per_trial_s']:.3f} s/trial"
            )


if __name__ == "__main__":
    main()
