"""Benchmark: `dropattack report` over a 1,000-run sweep in a sqlite MLflow store.

The store (a Table 10 sweep: 7 x 7 eps x p grid x 20 seeds = 980 finished trials plus 20
failed ones, each with the contract's params, tags, final and per-epoch metrics) is written
once with MlflowClient and cached under /tmp. Then build_report runs end to end (MLflow reads,
statistics, tables, heatmap and Figure 4, Markdown + HTML, artifacts logged to the parent run)
and the time is printed with where it goes and the hardware. Target: under 5 s.

    .venv/bin/python bench/report.py [--runs 1000] [--repeat 3] [--store DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402

from sweeps.report import build_report, paper  # noqa: E402

EXPERIMENT = "bench-table10"
EPOCHS = 5


def write_store(root: Path, runs: int) -> str:
    """Write the sweep (once; reused while the marker file says it has ``runs`` runs)."""
    uri = f"sqlite:///{root}/mlflow.db"
    marker = root / f"complete-{runs}"
    if marker.exists():
        return uri
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob("*"):
        if stale.is_file():
            stale.unlink()
    client = MlflowClient(uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "art").as_uri())
    parent = client.create_run(
        exp_id,
        run_name=EXPERIMENT,
        tags={"dropattack.role": "sweep", "dropattack.paper_table": "table10"},
    ).info.run_id
    rng = random.Random(0)
    grid = [(e, p) for p in paper.PROBABILITIES for e in paper.EPSILONS]
    failed = max(0, runs - len(grid) * ((runs - 20) // len(grid)))
    seeds = (runs - failed) // len(grid)
    plan = [(e, p, s, "FINISHED") for s in range(seeds) for e, p in grid]
    plan += [
        (grid[i % len(grid)][0], grid[i % len(grid)][1], seeds + i, "FAILED")
        for i in range(runs - len(plan))
    ]
    t0 = time.perf_counter()
    for i, (eps, p, seed, status) in enumerate(plan):
        cell = (
            f"task=imdb-lstm;method=dropattack;attack=Embedding;Lstm.ih.w;eps={eps:g};p={p:g};k=1"
        )
        rid = client.create_run(
            exp_id,
            tags={
                "mlflow.parentRunId": parent,
                "dropattack.role": "trial",
                "dropattack.paper_table": "table10",
                "dropattack.cell": cell,
                "dropattack.variant": "dropattack_ih",
                "dropattack.trial_id": str(i),
            },
        ).info.run_id
        params = {
            "task": "imdb-lstm",
            "method": "dropattack",
            "attack": "Embedding;Lstm.ih.w",
            "attacked": "embedding.weight,lstm.weight_ih_l0",
            "eps": str(eps),
            "p": str(p),
            "k": "1",
            "groups": "paper",
            "seed": str(seed),
            "train_size": "40000",
            "epochs": str(EPOCHS),
        }
        acc = paper.TABLE10[(eps, p)].acc / 100 + rng.gauss(0, 0.002)
        metrics = []
        tags = []
        if status == "FINISHED":
            for e in range(EPOCHS):
                metrics += [
                    Metric("epoch_train_loss", 0.6 - 0.1 * e, 0, e),
                    Metric("epoch_train_acc", 0.75 + 0.04 * e, 0, e),
                    Metric("epoch_val_acc", acc - 0.01 * (EPOCHS - e), 0, e),
                    Metric("epoch_val_f1", acc - 0.012 * (EPOCHS - e), 0, e),
                ]
            metrics += [
                Metric(k, v, 0, 0)
                for k, v in {
                    "test_acc": acc,
                    "test_f1": acc - 0.002,
                    "val_acc": acc + 0.001,
                    "val_f1": acc - 0.001,
                    "best_epoch": EPOCHS - 1,
                    "seconds": 60 + 40 * p + rng.random(),
                    "gpu_seconds": 55 + 38 * p,
                }.items()
            ]
        else:
            tags = [RunTag("dropattack.error", "NonFiniteLossError: loss became nan")]
        client.log_batch(rid, metrics, [Param(k, v) for k, v in params.items()], tags)
        client.set_terminated(rid, status)
        if (i + 1) % 200 == 0:
            print(f"  wrote {i + 1}/{len(plan)} runs ({time.perf_counter() - t0:.0f} s)")
    client.set_terminated(parent, "FINISHED")
    marker.touch()
    return uri


def _hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs{mem}, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "dropattack-bench-report"))
    args = ap.parse_args()
    root = Path(args.store)
    print(f"store: {root} ({args.runs} runs)")
    uri = write_store(root, args.runs)

    totals, phases = [], []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        report = build_report(EXPERIMENT, tracking_uri=uri, out_dir=root / f"out{i}")
        totals.append(time.perf_counter() - t0)
        phases.append(report.timings)
    a = report.analysis
    print(
        f"report over {len(a.sweep.runs)} runs ({sum(c.n for c in a.cells)} finished in "
        f"{len(a.cells)} cells, {len(a.failed)} failed), md + html + 2 PNGs, logged to MLflow: "
        f"best of {args.repeat} {min(totals):.2f} s, median {statistics.median(totals):.2f} s"
    )
    where = ", ".join(f"{k} {statistics.median(p[k] for p in phases):.2f} s" for k in phases[0])
    print(f"  median per phase: {where}")
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "report", EXPERIMENT, "--mlflow-uri", uri,
         "--out", str(root / "out-cli"), "--no-log"],
        check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    print(
        f"  the command in a fresh process (Python start and imports included, no artifact "
        f"logging): {time.perf_counter() - t0:.2f} s"
    )
    print(f"  hardware: {_hardware()}")
    verdict = "PASS" if min(totals) < 5.0 else "FAIL"
    print(f"  target < 5 s: {verdict}")


if __name__ == "__main__":
    main()
