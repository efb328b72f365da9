"""The scale benchmark's cases at a small size, on the real services: ``bench/scale.py`` itself.

- driver: 200 trivial trials through the real driver on the session's multi-node Ray, logging to
  ``mlflow server`` on PostgreSQL; stopped by SIGTERM half-way and resumed; every trial is
  recorded exactly once, FINISHED;
- tracking: 16 simulated trials logging at once to that server, every value read back;
- report: ``dropattack report`` over a 300-run store reads every run, and its bulk reading of a
  PostgreSQL store is MLflow's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCALE = ROOT / "bench" / "scale.py"


def _bench(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> dict:
    done = subprocess.run(
        [sys.executable, str(SCALE), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [json.loads(ln) for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert len(rows) == 1, done.stdout
    return rows[0]


def test_driver_records_every_trial_once_across_a_stop_and_resume(ray_cluster, mlflow_pg):
    row = _bench(
        ["driver", "--trials", "200", "--algorithm", "grid", "--address", ray_cluster.address]
        + ["--mlflow-uri", mlflow_pg.uri],
        env=ray_cluster.env,
    )
    assert row["interrupted"], json.dumps(row)  # the first driver was stopped by its SIGTERM ...
    assert 100 <= row["stopped_at"] < 200, row  # ... half-way, and the second finished it
    assert (row["recorded"], row["duplicates"], row["missing"]) == (200, 0, 0), row
    assert row["not_finished"] == 0, row
    assert row["state_saves"] > 0 and row["state_kb"] > 0, row
    assert row["resume_s"] is not None and row["resume_s"] > 0, row


def test_sixteen_writers_lose_nothing(mlflow_pg):
    row = _bench(
        ["tracking", "--writers", "16", "--procs", "2", "--epochs", "2"]
        + ["--epoch-seconds", "1", "--artifact-kb", "64", "--mlflow-uri", mlflow_pg.uri]
    )
    assert (row["trials_ok"], row["failed"], row["lost"]) == (16, 0, 0), row
    assert row["log_batch_p50_ms"] > 0 and row["log_artifact_p99_ms"] > 0, row


def test_report_reads_every_run():
    row = _bench(["report", "--runs", "300"])
    assert row["runs_read"] == 300, row


def test_report_reads_postgresql_in_bulk_as_mlflow_does(postgres, mlflow_pg):
    """The bulk reading of the compose stack's store (PostgreSQL, its schema made by the
    server) against MLflow's own ``search_runs``, and the report's reading through it."""
    from sweeps.records.collect import collect
    from tests.sweeps.test_bulk_read import assert_reads_alike, plain, write_store

    name = f"bulk-read-{time.time_ns()}"
    ids = write_store(postgres.url, name)
    assert_reads_alike(postgres.url, ids)
    in_bulk = collect(name, postgres.url)
    served = collect(name, mlflow_pg.uri)  # through the server: MLflow's search_runs
    assert len(in_bulk.runs) == 7
    assert [plain(r.__dict__) for r in in_bulk.runs] == [plain(r.__dict__) for r in served.runs]


def test_params_sent_twice_at_once_are_retried_not_failed(postgres, mlflow_pg):
    """At 256 writers a ``log_batch`` timed out and was resent while the server still wrote
    it: the two raced to insert the params, the loser got a unique-key violation (an HTTP 400),
    and the tracker failed the trial. Made deterministic here: another transaction inserts
    one of the params uncommitted, the server's insert waits on it, and the commit makes it
    lose the race. The tracker keeps the records, and the next flush sends them."""
    import threading

    import psycopg2
    from mlflow import MlflowClient

    from sweeps.records.tracking import SweepContext, TrialTracker

    client = MlflowClient(mlflow_pg.uri)
    exp = client.create_experiment(f"race-{time.time_ns()}")
    parent = client.create_run(exp).info.run_id
    ctx = SweepContext(mlflow_pg.uri, exp, parent, "race")
    tracker = TrialTracker(ctx, key="k", run_name="k", tags={})
    tracker.open()
    conn = psycopg2.connect(postgres.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO params (key, value, run_uuid) VALUES ('task', 'imdb-lstm', %s)",
                (tracker.run_id,),
            )
        tracker.log_params({"task": "imdb-lstm", "seed": 3})
        result: list = []
        sender = threading.Thread(target=lambda: result.append(_flush(tracker)))
        sender.start()
        assert _lock_waits(postgres.dsn), "the server's insert never waited on the param"
        conn.commit()
        sender.join(60)
    finally:
        conn.close()
    assert result == [False], result  # kept for a retry, not raised as permanent
    assert "param_pk" in tracker.last_error or "duplicate key" in tracker.last_error
    assert tracker.flush()
    assert client.get_run(tracker.run_id).data.params == {"task": "imdb-lstm", "seed": "3"}


def _lock_waits(dsn: str, timeout: float = 60) -> bool:
    """Whether some session of the database comes to wait on a lock within ``timeout``."""
    import psycopg2

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = psycopg2.connect(dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                if cur.fetchone()[0]:
                    return True
        finally:
            conn.close()
        time.sleep(0.2)
    return False


def _flush(tracker) -> object:
    try:
        return tracker.flush()
    except Exception as e:  # the bug: a permanent error
        return e
