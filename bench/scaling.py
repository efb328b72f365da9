"""Trials per minute of the quickstart sweep on a local multi-node Ray cluster (1, 2, 3 workers).

Each configuration runs in a fresh process: a Ray head with no CPUs (it only schedules) and
N worker nodes of 1 CPU each on this machine (``ray.cluster_utils.Cluster``: real raylets,
one per node), then the shipped quickstart spec through ``run_sweep`` as ``dropattack sweep
--address`` runs it, logging to one ``mlflow server`` (sqlite backend) shared by all
configurations, as a cluster logs to its tracking server. Figures per configuration:

- ``trials/min``: trials / sweep wall time (from the call of ``run_sweep``, Ray connect and
  Tune start included, to its return) x 60;
- ``steady trials/min``: the same over the span from the first trial's MLflow start to the
  last trial's end (startup and teardown excluded);
- ``s/trial``: the mean time inside one trial (data, model, training, MLflow), which grows
  when workers outnumber the cores.

A machine with fewer cores than workers is oversubscribed: the figures say how the service
scales its placement, not how many cores there are; the load average is printed beside them.

Configurations are interleaved (1, 2, 3, 1, 2, 3, ...) ``--repeats`` times; the table has
the median and the range of each figure.

Run: ``.venv/bin/python bench/scaling.py [--workers 1,2,3] [--repeats 3] [--epochs N]
[--seeds N]`` (about 2 minutes a repeat on 2 cores). Prints one JSON object per run, the
machine, and a Markdown table.
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
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def _spec(epochs: int | None, seeds: int | None):
    """The quickstart spec, optionally with fewer epochs or seeds (a quicker benchmark)."""
    import yaml

    from sweeps.specs.space import expand_grid
    from sweeps.specs.spec import SPEC_DIR, parse_spec

    path = SPEC_DIR / "quickstart.yaml"
    data = yaml.safe_load(path.read_text())
    if epochs is not None:
        data["defaults"]["epochs"] = epochs
    if seeds is not None:
        data["seeds"] = list(range(seeds))
    return parse_spec(data, str(path), expand=expand_grid)


def _child(workers: int, mlflow_uri: str, epochs: int | None, seeds: int | None) -> dict:
    import ray
    from mlflow import MlflowClient
    from ray.cluster_utils import Cluster

    from sweeps.execution.driver import SweepOptions, run_sweep

    spec = _spec(epochs, seeds)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": 100_000_000,
        },
    )
    try:
        for _ in range(workers):
            cluster.add_node(num_cpus=1, object_store_memory=100_000_000)
        cluster.wait_for_nodes()
        with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
            result = run_sweep(
                spec,
                SweepOptions(
                    address=cluster.address,
                    mlflow_uri=mlflow_uri,
                    experiment=f"scaling-{workers}w-{int(time.time())}",
                    runs_dir=Path(tmp) / "runs",
                    live=False,
                ),
            )
        cpus = ray.cluster_resources().get("CPU", 0)
    finally:
        ray.shutdown()
        cluster.shutdown()
    client = MlflowClient(mlflow_uri)
    kids = client.search_runs(
        [result.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    first = min(r.info.start_time for r in kids) / 1000
    last = max(r.info.end_time for r in kids) / 1000
    n = result.counts["done"]
    return {
        "workers": workers,
        "cluster_cpus": cpus,
        "concurrency": result.concurrency,
        "trials": n,
        "failed": result.counts["failed"],
        "wall_s": result.wall_seconds,
        "trials_per_min": 60 * n / result.wall_seconds,
        "steady_trials_per_min": 60 * n / (last - first),
        "mean_trial_s": sum(result.trial_seconds) / max(1, len(result.trial_seconds)),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_mlflow(folder: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    cmd = [
        str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
        "--serve-artifacts", "--artifacts-destination", str(folder / "artifacts"),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(folder / "mlflow.log", "wb")  # noqa: SIM115 - the server's lifetime
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return proc, uri
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    sys.exit(f"mlflow server did not start:\n{(folder / 'mlflow.log').read_text()[-3000:]}")


def machine() -> str:
    """CPU model, cores, memory and versions: where the figures come from."""
    import ray
    import torch

    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
        f"torch {torch.__version__}, ray {ray.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,3", help="worker counts, comma-separated")
    parser.add_argument("--epochs", type=int, default=None, help="override the spec's epochs")
    parser.add_argument("--seeds", type=int, default=None, help="override the spec's seeds")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mlflow-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        out = _child(args.child, args.mlflow_uri, args.epochs, args.seeds)
        print("RESULT " + json.dumps(out), flush=True)
        return

    counts = [int(w) for w in args.workers.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-mlflow-") as tmp:
        server, uri = _start_mlflow(Path(tmp))
        try:
            for repeat in range(args.repeats):  # configurations interleaved
                for workers in counts:
                    row = _run_child(workers, uri, args)
                    row["repeat"] = repeat
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    print()
    print(machine())
    print()
    print(f"Median of {args.repeats} (min-max); load = 1-minute load average after each run.\n")
    print("| workers | trials | trials/min | steady trials/min | s/trial | wall s | load |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for workers in counts:
        mine = [r for r in rows if r["workers"] == workers]
        cells = [
            _median_range([r[k] for r in mine], fmt)
            for k, fmt in (
                ("trials_per_min", ".1f"),
                ("steady_trials_per_min", ".1f"),
                ("mean_trial_s", ".1f"),
                ("wall_s", ".1f"),
                ("load_after", ".1f"),
            )
        ]
        print(f"| {workers} | {mine[0]['trials']} | " + " | ".join(cells) + " |")


def _run_child(workers: int, uri: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", str(workers), "--mlflow-uri", uri]
    cmd += ["--epochs", str(args.epochs)] if args.epochs else []
    cmd += ["--seeds", str(args.seeds)] if args.seeds else []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{workers} workers failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    row = json.loads(line.removeprefix("RESULT "))
    row["load_after"] = round(os.getloadavg()[0], 1)
    return row


def _median_range(values: list[float], fmt: str) -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return format(median, fmt)
    return f"{median:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


if __name__ == "__main__":
    main()
