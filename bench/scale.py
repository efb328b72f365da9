"""The scale envelope: many trials through one driver, many writers on one tracking server,
a report over many runs. Loopback only, every case bounded in count and time.

Cases (each measured run in a fresh process):

- ``driver``: N trials of a trivial trainable through the real ``run_sweep``, on a local
  multi-node Ray (a head with no CPUs and ``--nodes`` worker nodes, real raylets), logging to a
  real ``mlflow server`` with PostgreSQL behind it (as in the compose stack). The trainable
  does what a trial does around training and nothing else: it opens its MLflow child run
  through the service's own tracker, logs the trial's params, ``--epochs`` epochs of metrics
  (each reported to Tune), the final metrics, and closes the run FINISHED. ``grid`` sweeps an
  eps x p grid over enough seeds; ``tpe`` draws N samples from Optuna (sqlite study, as by
  default). Figures:

  - ``overhead_ms``: driver overhead per trial, ``(wall - inside / concurrency) / N``, where
    ``inside`` is the sum of the trainable's own wall times;
  - ``peak_rss_mb``: the driver process's peak resident memory;
  - ``state_kb``, ``state_saves``, ``state_save_ms_mean``/``_max``: Tune's experiment state
    file at the end, how often Tune wrote it and how long a write took (its
    ``TuneController.checkpoint``, timed by wrapping it);
  - ``suggest_ms_mean``/``_p99``: Optuna's suggest time per trial (TPE; the searcher's
    ``suggest``, timed the same way);
  - ``resume_s``: a second driver resumes the sweep, stopped by SIGTERM (a scheduler's time
    limit) half-way: seconds from its start to its first new trial, and ``resumed_trials``;
  - ``recorded``/``duplicates``/``missing``: child runs in MLflow, read back at the end: every
    trial must be recorded exactly once and FINISHED.

- ``tracking``: W concurrent simulated trials (threads in ``--procs`` processes) against one
  ``mlflow server`` on PostgreSQL, each logging through the service's tracker what a trial
  logs: the params of a Table 10 trial, ``--epochs`` epochs of metrics ``--epoch-seconds``
  apart, MLflow's system metrics at the default interval, the final metrics, the history
  text and a checkpoint-sized artifact (``--artifact-kb``, LeNet-5's is about 250 KB). Figures:
  p50/p99 latency of each kind of call, errors (retried by the tracker), failed trials, and,
  after the run, every logged value read back and compared (``lost``).

- ``report``: ``dropattack report`` end to end over a sqlite store of R runs (the store of
  ``bench/report.py``, written once and cached), in a fresh process: its wall time, its CPU
  time (what the wall time is on idle cores) and the load average when it ended.

Run: ``.venv/bin/python bench/scale.py driver --trials 1000,5000,10000 --algorithm grid,tpe``;
``bench/scale.py tracking --writers 16,64,256``; ``bench/scale.py report --runs 10000``.
``--mlflow-uri`` reuses a running server instead of starting PostgreSQL and MLflow. Prints
one JSON object per measured run, then a Markdown table and the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if p != __file__.rsplit("/", 1)[0]]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# ruff: noqa: E402

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

GRID = 100  # cells of the driver case's grid (10 eps x 10 p); seeds make up the count
EPOCHS = 2


# --------------------------------------------------------------------------- services


@contextlib.contextmanager
def tracking_server(uri: str | None, workers: int) -> Iterator[str]:
    """``uri`` itself, or a fresh ``mlflow server`` on PostgreSQL for the duration."""
    if uri:
        yield uri
        return
    from tests.services import MlflowService, postgres_server

    with postgres_server(max_connections=300) as pg, tempfile.TemporaryDirectory() as tmp:
        server = MlflowService(pg.url, Path(tmp), workers=workers)
        server.start()
        try:
            yield server.uri
        finally:
            server.stop()


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``bench/scale.py`` ``args`` in a fresh process; its last stdout line is JSON."""
    done = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- driver


def trivial_trainable(started: str) -> Any:
    """The trivial trainable, writing each trial's start time to the file ``started`` (a
    closure: Ray ships it to the workers of a cluster that does not share this environment)."""

    def trainable(config: dict[str, Any], ctx: dict[str, Any]) -> None:
        _trivial_trial(config, ctx, started)

    return trainable


def _trivial_trial(config: dict[str, Any], ctx: dict[str, Any], started: str) -> None:
    """A trial that trains nothing: MLflow run, params, per-epoch and final metrics, Tune."""
    from ray import tune

    from sweeps.execution.progress import COMPLETED
    from sweeps.execution.trainable import run_name, trial_params
    from sweeps.records.tracking import TAG, SweepContext, TrialTracker

    t0 = time.perf_counter()
    trial = config["trial"]
    if started:
        with open(started, "a") as f:
            f.write(f"{time.time()}\n")
    sweep = SweepContext(**{k: v for k, v in ctx.items() if k in SweepContext.__annotations__})
    tracker = TrialTracker(
        sweep,
        key=trial["key"],
        run_name=run_name(trial),
        tags={TAG["cell"]: trial["cell"], TAG["trial_id"]: tune.get_context().get_trial_id()},
    )
    status = tracker.open()
    if status == "FINISHED":
        tune.report({"val_acc": 0.0, COMPLETED: 1, "skipped": 1})
        return
    tracker.log_params(trial_params(trial))
    epochs = int(ctx.get("scale_epochs", EPOCHS))
    for epoch in range(1, epochs + 1):
        metrics = {"val_acc": 0.5 + 0.01 * epoch, "train_loss": 1.0 / epoch}
        tracker.log_metrics(metrics, step=epoch)
        tracker.flush()
        if epoch < epochs:
            tune.report({**metrics, "epoch": epoch})
    final = {"val_acc": 0.5 + 0.01 * epochs, "test_acc": 0.5, "trial_seconds": 0.0}
    final["trial_seconds"] = time.perf_counter() - t0
    tracker.log_metrics(final)
    tracker.terminate("FINISHED")
    tracker.flush_final()
    tune.report({**final, "epoch": epochs, COMPLETED: 1})


def driver_spec(trials: int, algorithm: str, name: str) -> Any:
    """A digits spec of exactly ``trials`` trials (grid: 10 eps x 10 p x seeds)."""
    from sweeps.specs.space import expand_grid
    from sweeps.specs.spec import parse_spec

    data: dict[str, Any] = {
        "name": name,
        "paper_table": "",
        "defaults": {"task": "digits-lenet5", "epochs": EPOCHS},
        "trials": [{"method": "dropattack", "attack": ["Input"]}],
        "resources": {"cpus": 1, "gpus": 0, "max_failures": 1},
        "system_metrics": False,
    }
    if algorithm == "grid":
        if trials % GRID:
            raise SystemExit(f"--trials: a multiple of {GRID} for the grid, got {trials}")
        data["space"] = {
            "eps": [round(0.5 * (i + 1), 2) for i in range(10)],
            # p > 0: at p = 0 the eps cells train alike and the driver would merge them
            "p": [round(0.1 * (i + 1), 1) for i in range(10)],
        }
        data["seeds"] = list(range(trials // GRID))
        data["search"] = {"algorithm": "grid", "metric": "val_acc", "mode": "max"}
    else:
        # TPE samples the space: method and attack are defaults, not explicit trials
        del data["trials"]
        data["defaults"] |= {"method": "dropattack", "attack": "Input"}
        data["space"] = {"eps": {"low": 0.01, "high": 9, "log": True}, "p": {"low": 0, "high": 1}}
        data["seeds"] = [0]
        data["search"] = {
            "algorithm": "tpe",
            "num_samples": trials,
            "metric": "val_acc",
            "mode": "max",
            "seed": 0,
        }
    return parse_spec(data, f"<{name}>", expand=expand_grid if algorithm == "grid" else None)


class _Timer:
    """Wraps ``owner.attr`` to record each call's seconds (instrumentation, not a stand-in)."""

    def __init__(self, owner: Any, attr: str) -> None:
        self.seconds: list[float] = []
        original = getattr(owner, attr)

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                self.seconds.append(time.perf_counter() - t)

        setattr(owner, attr, timed)


def run_driver(
    trials: int,
    algorithm: str,
    uri: str,
    runs_dir: Path,
    nodes: int,
    cpus: int,
    resume: bool,
    stop_after: int,
    address: str = "",
) -> dict[str, Any]:
    """One driver process: the sweep (or its resume), measured. Called in a fresh process.

    ``address``: a running Ray cluster to use instead of starting one."""
    import ray
    from ray.cluster_utils import Cluster
    from ray.tune.execution.tune_controller import TuneController

    from sweeps.execution.driver import SweepOptions, run_sweep
    from sweeps.execution.search import FailAwareOptunaSearch

    saves = _Timer(TuneController, "checkpoint")
    suggests = _Timer(FailAwareOptunaSearch, "suggest")
    name = f"scale-{algorithm}-{trials}"
    spec = driver_spec(trials, algorithm, name)
    started = runs_dir / "started.txt"
    before = len(started.read_text().splitlines()) if started.exists() else 0
    if stop_after:
        # A scheduler's time limit: SIGTERM once ``stop_after`` trials have started.
        def watch() -> None:
            while True:
                time.sleep(0.5)
                if started.exists() and len(started.read_text().splitlines()) >= stop_after:
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

        threading.Thread(target=watch, daemon=True).start()
    cluster = None
    if not address:
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 0, "include_dashboard": False},
        )
    try:
        if cluster is not None:
            for _ in range(nodes):
                cluster.add_node(num_cpus=cpus, object_store_memory=100_000_000)
            cluster.wait_for_nodes()
            address = cluster.address
        t0 = time.perf_counter()
        t_launch = time.time()
        result = run_sweep(
            spec,
            SweepOptions(
                address=address,
                mlflow_uri=uri,
                experiment=name,
                runs_dir=runs_dir,
                resume=resume,
                live=False,
                trainable=trivial_trainable(str(started)),
            ),
        )
        wall = time.perf_counter() - t0
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    lines = started.read_text().splitlines() if started.exists() else []
    starts = [float(x) for x in lines[before:]]
    state = sorted((runs_dir / "ray" / name).glob("experiment_state-*.json"))
    inside = sum(result.trial_seconds)
    n = len(result.trial_seconds) or 1
    return {
        "case": "driver",
        "algorithm": algorithm,
        "trials": trials,
        "resume": resume,
        "ran": len(starts),
        "interrupted": bool(result.interrupted),
        "concurrency": result.concurrency,
        "wall_s": round(wall, 2),
        "first_trial_s": round(min(starts) - t_launch, 2) if starts else None,
        "overhead_ms": round(1000 * (wall - inside / result.concurrency) / n, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "state_kb": round(state[-1].stat().st_size / 1024, 1) if state else None,
        "state_saves": len(saves.seconds),
        "state_save_ms_mean": _ms(statistics.fmean(saves.seconds)) if saves.seconds else None,
        "state_save_ms_max": _ms(max(saves.seconds)) if saves.seconds else None,
        "suggest_ms_mean": _ms(statistics.fmean(suggests.seconds)) if suggests.seconds else None,
        "suggest_ms_p99": _ms(_quantile(suggests.seconds, 0.99)) if suggests.seconds else None,
        "experiment_id": result.experiment_id,
        "parent_run_id": result.parent_run_id,
    }


def recorded(uri: str, experiment_id: str, parent: str, expected: int) -> dict[str, int]:
    """Child runs of ``parent`` read back: each trial once, FINISHED."""
    from mlflow import MlflowClient

    from sweeps.records.tracking import TAG

    runs = MlflowClient(uri).search_runs(
        [experiment_id], f"tags.`{TAG['parent']}` = '{parent}'", max_results=50_000
    )
    keys = [r.data.tags.get(TAG["trial_key"]) for r in runs]
    finished = sum(r.info.status == "FINISHED" for r in runs)
    return {
        "recorded": len(set(keys)),
        "duplicates": len(keys) - len(set(keys)),
        "missing": expected - len(set(keys)),
        "not_finished": len(runs) - finished,
    }


def case_driver(
    trials: int, algorithm: str, uri: str, nodes: int, cpus: int, address: str = ""
) -> dict[str, Any]:
    """The sweep to the half (SIGTERM), then its resume: two fresh driver processes."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        common = [
            "_driver", str(trials), algorithm, uri, tmp, str(nodes), str(cpus), address or "-",
        ]  # fmt: skip
        limit = 60 + trials * 2.0
        first = _child([*common, "0", str(trials // 2)], limit)
        second = _child([*common, "1", "0"], limit)
        counts = recorded(uri, first["experiment_id"], first["parent_run_id"], trials)
    ran = first["ran"] + second["ran"]
    wall = first["wall_s"] + second["wall_s"]
    return {
        "case": "driver",
        "algorithm": algorithm,
        "trials": trials,
        "overhead_ms": first["overhead_ms"],
        "overhead_ms_resumed": second["overhead_ms"],
        "wall_s": round(wall, 1),
        "trials_started": ran,
        "peak_rss_mb": max(first["peak_rss_mb"], second["peak_rss_mb"]),
        "state_kb": second["state_kb"],
        "state_saves": first["state_saves"] + second["state_saves"],
        "state_save_ms_mean": first["state_save_ms_mean"],
        "state_save_ms_max": max(
            x for x in (first["state_save_ms_max"], second["state_save_ms_max"], 0) if x
        ),
        "suggest_ms_mean": first["suggest_ms_mean"],
        "suggest_ms_p99": first["suggest_ms_p99"],
        "resume_s": second["first_trial_s"],
        "stopped_at": first["ran"],
        "interrupted": first["interrupted"],
        **counts,
    }


# --------------------------------------------------------------------------- tracking


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 2)


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class _CallLog:
    """Latency and errors of every MLflow client call, by method (thread-safe)."""

    CALLS = ("create_run", "log_batch", "set_terminated", "log_artifact", "log_text", "get_run")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seconds: dict[str, list[float]] = {c: [] for c in self.CALLS}
        self.errors: dict[str, int] = {c: 0 for c in self.CALLS}

    def wrap(self, client: Any) -> None:
        for name in self.CALLS:
            original = getattr(client, name)

            def timed(*a: Any, _name: str = name, _f: Any = original, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return _f(*a, **kw)
                except Exception:
                    with self.lock:
                        self.errors[_name] += 1
                    raise
                finally:
                    with self.lock:
                        self.seconds[_name].append(time.perf_counter() - t)

            setattr(client, name, timed)


def _simulated_trial(
    ctx: Any, index: int, epochs: int, epoch_seconds: float, artifact: Path, log: _CallLog
) -> dict[str, Any]:
    """One trial's records through the service's tracker; returns what it logged."""
    from sweeps.records.tracking import TAG, TrialTracker

    key = f"writer-{index}"
    tracker = TrialTracker(ctx, key=key, run_name=key, tags={TAG["cell"]: f"cell-{index % 49}"})
    params = {
        "task": "imdb-lstm", "method": "dropattack", "attack": "Embedding;Lstm.ih.w",
        "eps": 0.5 + index % 7, "p": round(0.1 * (index % 10), 1), "k": 1, "groups": "paper",
        "seed": index, "epochs": epochs, "batch_size": 128, "lr": 0.001,
    }  # fmt: skip
    tracker.open()
    tracker.log_params(params)
    tracker.start_system_metrics()
    history = []
    for epoch in range(1, epochs + 1):
        time.sleep(epoch_seconds)
        m = {"train_loss": 1.0 / epoch + index * 1e-6, "val_acc": 0.5 + 0.001 * (index % 100)}
        m["val_f1"] = m["val_acc"] - 0.01
        history.append({"epoch": epoch, **m})
        tracker.log_metrics(m, step=epoch)
        tracker.flush()
    final = {"test_acc": 0.6 + 0.0001 * index, "trial_seconds": epochs * epoch_seconds}
    tracker.log_metrics(final)
    tracker.log_text(json.dumps(history), "history.json")
    tracker.log_file(artifact, "checkpoint")
    tracker.terminate("FINISHED")
    tracker.flush_final()
    return {"run_id": tracker.run_id, "params": params, "history": history, "final": final}


def run_writers(
    uri: str, experiment_id: str, parent: str, first: int, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    """``count`` simulated trials as threads in this process (a fresh one)."""
    from concurrent.futures import ThreadPoolExecutor

    from sweeps.records.tracking import SweepContext, client_for
    from sweeps.specs.spec import SYSTEM_METRICS_INTERVAL

    ctx = SweepContext(
        tracking_uri=uri,
        experiment_id=experiment_id,
        parent_run_id=parent,
        sweep="scale-tracking",
        system_metrics=SYSTEM_METRICS_INTERVAL,
    )
    log = _CallLog()
    log.wrap(client_for(uri))
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "best.pt"
        artifact.write_bytes(os.urandom(args.artifact_kb * 1024))
        with ThreadPoolExecutor(count) as pool:
            futures = [
                pool.submit(
                    _simulated_trial, ctx, i, args.epochs, args.epoch_seconds, artifact, log
                )
                for i in range(first, first + count)
            ]
        done, failed = [], 0
        for f in futures:
            try:
                done.append(f.result())
            except Exception as e:  # a trial the tracker failed: counted, not fatal
                failed += 1
                print(f"trial failed: {type(e).__name__}: {e}", file=sys.stderr)
    return {
        "trials": done,
        "failed": failed,
        "seconds": log.seconds,
        "errors": log.errors,
        "artifact_kb": args.artifact_kb,
    }


def _same_param(logged: str | None, value: Any) -> bool:
    """A param as MLflow holds it (a string; ``0`` for ``0.0``) against the value logged."""
    if logged is None:
        return False
    if isinstance(value, float):
        return float(logged) == value
    return logged == str(value)


def _verify(uri: str, trials: list[dict[str, Any]], artifact_kb: int) -> list[str]:
    """What did not come back as logged (params, every epoch, final, artifacts, status)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    lost: list[str] = []
    for t in trials:
        rid = t["run_id"]
        run = client.get_run(rid)
        if run.info.status != "FINISHED":
            lost.append(f"{rid}: status {run.info.status}")
        lost += [
            f"{rid}: param {k} {run.data.params.get(k)!r} != {v!r}"
            for k, v in t["params"].items()
            if not _same_param(run.data.params.get(k), v)
        ]
        for key in ("train_loss", "val_acc", "val_f1"):
            got = {m.step: m.value for m in client.get_metric_history(rid, key)}
            lost += [
                f"{rid}: {key}@{h['epoch']} {got.get(h['epoch'])} != {h[key]}"
                for h in t["history"]
                if got.get(h["epoch"]) != h[key]
            ]
        lost += [
            f"{rid}: {k} {run.data.metrics.get(k)} != {v}"
            for k, v in t["final"].items()
            if run.data.metrics.get(k) != v
        ]
        sizes = {a.path: a.file_size for a in client.list_artifacts(rid, "checkpoint")}
        if sizes.get("checkpoint/best.pt") != artifact_kb * 1024:
            lost.append(f"{rid}: checkpoint/best.pt {sizes}")
        if not any(a.path == "history.json" for a in client.list_artifacts(rid)):
            lost.append(f"{rid}: history.json")
    return lost


def case_tracking(writers: int, uri: str, args: argparse.Namespace) -> dict[str, Any]:
    """``writers`` simulated trials at once, spread over ``--procs`` processes."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    name = f"scale-tracking-{writers}-{int(time.time())}"
    exp = client.create_experiment(name)
    parent = client.create_run(exp, run_name=name).info.run_id
    procs = min(args.procs, writers)
    shares = [writers // procs + (i < writers % procs) for i in range(procs)]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        children = []
        first = 0
        for i, count in enumerate(shares):
            out = Path(tmp) / f"{i}.json"
            cmd = [
                sys.executable, __file__, "_writers", uri, exp, parent, str(first), str(count),
                str(out), "--epochs", str(args.epochs), "--epoch-seconds",
                str(args.epoch_seconds), "--artifact-kb", str(args.artifact_kb),
            ]  # fmt: skip
            children.append((subprocess.Popen(cmd, cwd=ROOT), out))
            first += count
        results = []
        for proc, out in children:
            proc.wait(timeout=600 + 10 * writers)
            results.append(json.loads(out.read_text()) if out.exists() else None)
    wall = time.perf_counter() - t0
    client.set_terminated(parent)
    trials = [t for r in results if r for t in r["trials"]]
    failed = sum(r["failed"] for r in results if r) + sum(r is None for r in results) * (
        writers // procs
    )
    seconds: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    for r in results:
        for k, xs in (r or {}).get("seconds", {}).items():
            seconds.setdefault(k, []).extend(xs)
        for k, n in (r or {}).get("errors", {}).items():
            errors[k] = errors.get(k, 0) + n
    row: dict[str, Any] = {
        "case": "tracking",
        "writers": writers,
        "wall_s": round(wall, 1),
        "trials_ok": len(trials),
        "failed": failed,
        "errors": sum(errors.values()),
    }
    lost = _verify(uri, trials, args.artifact_kb)
    row["lost"] = len(lost)
    if lost:
        row["lost_examples"] = lost[:5]
    for k, xs in seconds.items():
        if xs:
            row[f"{k}_p50_ms"] = _ms(statistics.median(xs))
            row[f"{k}_p99_ms"] = _ms(_quantile(xs, 0.99))
    return row


# --------------------------------------------------------------------------- report


def case_report(runs: int) -> dict[str, Any]:
    """``dropattack report`` over ``runs`` runs in a fresh process, as a user runs it.

    The store is bench/report.py's (a Table 10 sweep: finished and failed trials with the
    params, tags and per-epoch metrics the service logs), written once and cached.
    """
    import importlib.util

    loader = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    bench_report = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(bench_report)
    store = Path(tempfile.gettempdir()) / f"bench-scale-report-{runs}"
    t0 = time.perf_counter()
    uri = bench_report.write_store(store, runs)
    written = time.perf_counter() - t0
    out = store / "out"
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "report", bench_report.EXPERIMENT,
         "--mlflow-uri", uri, "--out", str(out)],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    report = json.loads((out / "report.json").read_text())
    return {
        "case": "report",
        "runs": runs,
        "store_written_s": round(written, 1),
        "report_s": round(seconds, 2),
        "report_cpu_s": round(cpu, 2),
        "load_1m": round(os.getloadavg()[0], 1),
        "runs_read": report_runs(report),
    }


def report_runs(report: dict[str, Any]) -> int:
    """Trials the report read, by status (``status_counts``): all of them."""
    return sum(report["status_counts"].values())


# --------------------------------------------------------------------------- main


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln), "")
    cpu = cpu or platform.processor()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB, {time.strftime('%Y-%m-%d')}"


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _table(rows: list[dict[str, Any]]) -> str:
    keys = [k for k in rows[0] if k not in ("case", "output")]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_driver":
        trials, algorithm, uri, runs, nodes, cpus, address, resume, stop = argv[1:10]
        row = run_driver(
            int(trials), algorithm, uri, Path(runs), int(nodes), int(cpus), resume == "1",
            int(stop), "" if address == "-" else address,
        )  # fmt: skip
        print(json.dumps(row), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=["driver", "tracking", "report", "_writers"])
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--trials", type=_ints, default=[1000, 5000, 10000])
    parser.add_argument("--algorithm", default="grid,tpe")
    parser.add_argument("--address", default="", help="a running Ray cluster (driver)")
    parser.add_argument("--nodes", type=int, default=2, help="Ray worker nodes (driver)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs per worker node (driver)")
    parser.add_argument("--writers", type=_ints, default=[16, 64, 256])
    parser.add_argument("--procs", type=int, default=8, help="processes the writers share")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--epoch-seconds", type=float, default=4.0)
    parser.add_argument("--artifact-kb", type=int, default=256)
    parser.add_argument("--runs", type=_ints, default=[10000])
    parser.add_argument("--mlflow-uri", help="a running tracking server (default: start one)")
    parser.add_argument("--server-workers", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="JSON lines only")
    args = parser.parse_args(argv)
    if args.case == "_writers":
        uri, exp, parent, first, count, out = args.rest
        result = run_writers(uri, exp, parent, int(first), int(count), args)
        Path(out).write_text(json.dumps(result))
        return 0
    algorithms = args.algorithm.split(",")
    if not set(algorithms) <= {"grid", "tpe"}:
        parser.error(f"--algorithm: grid, tpe or both, got {args.algorithm!r}")
    rows: list[dict[str, Any]] = []
    if args.case == "report":
        for runs in args.runs:
            rows.append(case_report(runs))
            print(json.dumps(rows[-1]), flush=True)
    else:
        with tracking_server(args.mlflow_uri, args.server_workers) as uri:
            if args.case == "driver":
                for algorithm in algorithms:
                    for n in args.trials:
                        rows.append(
                            case_driver(n, algorithm, uri, args.nodes, args.cpus, args.address)
                        )
                        print(json.dumps(rows[-1]), flush=True)
            else:
                for w in args.writers:
                    rows.append(case_tracking(w, uri, args))
                    print(json.dumps(rows[-1]), flush=True)
    if not args.json:
        print(f"\nmachine: {machine()}\n")
        print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
