"""MLflow tracking against a real ``mlflow server``: parent/child layout, buffering, outages."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from sweeps.records.tracking import (
    TAG,
    SweepContext,
    SweepRun,
    TrackingError,
    TrialTracker,
    UnreachableError,
    probe,
    sqlite_uri,
)


def new_sweep(uri: str) -> SweepRun:
    sweep = SweepRun(uri, f"exp-{uuid.uuid4().hex[:8]}")
    sweep.start(
        spec_name="tiny",
        spec_hash="h" * 64,
        paper_table="table10",
        git_commit="abc",
        command="dropattack sweep tiny",
        params={"algorithm": "grid", "trials": 2},
        files={"spec.yaml": "name: tiny\n"},
    )
    return sweep


def ctx_for(sweep: SweepRun, uri: str | None = None) -> SweepContext:
    return SweepContext(uri or sweep.uri, sweep.experiment_id, sweep.run_id, "tiny", "table10")


def test_probe_accepts_a_live_server_and_names_a_dead_one(mlflow_server, relay):
    probe(mlflow_server.uri)
    relay.down()
    t0 = time.monotonic()
    with pytest.raises(UnreachableError, match=rf"cannot reach MLflow at {relay.uri}"):
        probe(relay.uri, timeout=2)
    assert time.monotonic() - t0 < 5


def test_probe_sqlite_needs_a_creatable_folder(tmp_path):
    probe(sqlite_uri(tmp_path / "sub" / "mlflow.db"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UnreachableError, match="cannot create"):
        probe(sqlite_uri(blocker / "mlflow.db"))


def test_parent_run_has_the_contract_tags_and_spec(mlflow_server):
    sweep = new_sweep(mlflow_server.uri)
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(sweep.run_id)
    tags = run.data.tags
    assert tags[TAG["role"]] == "sweep" and tags[TAG["spec"]] == "tiny"
    assert tags[TAG["spec_hash"]] == "h" * 64 and tags[TAG["paper_table"]] == "table10"
    assert tags[TAG["git_commit"]] == "abc" and tags[TAG["command"]] == "dropattack sweep tiny"
    assert run.info.run_name == "tiny" and run.info.status == "RUNNING"
    assert [a.path for a in client.list_artifacts(sweep.run_id)] == ["spec.yaml"]
    sweep.finish("FINISHED", {"trials_done": 2}, {"dropattack.best_cell": "c"})
    run = client.get_run(sweep.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["trials_done"] == 2


def test_child_run_is_nested_and_found_again_by_its_key(mlflow_server):
    sweep = new_sweep(mlflow_server.uri)
    ctx = ctx_for(sweep)
    tags = {TAG["cell"]: "task=x;method=y", TAG["variant"]: "v", TAG["trial_id"]: "t1"}
    first = TrialTracker(ctx, "task=x;method=y;seed=0", "run a", tags)
    assert first.open() == "RUNNING" and not first.found
    first.log_params({"eps": 5.0, "attack": ["Embedding", "Lstm.ih.w"], "seed": 0})
    first.log_metrics({"epoch_val_acc": 0.5}, step=1)
    first.log_metrics({"epoch_val_acc": 0.6}, step=2)
    first.terminate("FINISHED")
    first.flush_final()
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG["parent"]] == sweep.run_id and run.data.tags[TAG["role"]] == "trial"
    assert run.data.tags[TAG["paper_table"]] == "table10"
    assert run.data.params == {"eps": "5", "attack": "Embedding;Lstm.ih.w", "seed": "0"}
    history = client.get_metric_history(first.run_id, "epoch_val_acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.6)]

    again = TrialTracker(ctx, "task=x;method=y;seed=0", "run a", tags)
    assert again.open() == "FINISHED" and again.found and again.run_id == first.run_id
    other = TrialTracker(ctx, "task=x;method=y;seed=1", "run b", tags)
    assert other.open() == "RUNNING" and other.run_id != first.run_id


def test_failed_trial_is_marked_with_its_error(mlflow_server):
    sweep = new_sweep(mlflow_server.uri)
    tracker = TrialTracker(ctx_for(sweep), "k", "r", {})
    tracker.open()
    tracker.terminate("FAILED", RuntimeError("loss is nan at epoch 2"))
    tracker.flush_final()
    run = MlflowClient(mlflow_server.uri).get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[TAG["error"]] == "RuntimeError: loss is nan at epoch 2"
    assert run.data.tags[TAG["error_type"]] == "RuntimeError"
    # a retry clears the error and runs again
    retry = TrialTracker(ctx_for(sweep), "k", "r", {})
    assert retry.open() == "FAILED"
    retry.restart()
    assert retry.flush()
    run = MlflowClient(mlflow_server.uri).get_run(tracker.run_id)
    assert run.info.status == "RUNNING" and TAG["error"] not in run.data.tags


def test_records_survive_an_outage_and_a_process_restart(mlflow_server, relay):
    sweep = new_sweep(mlflow_server.uri)
    ctx = ctx_for(sweep, relay.uri)
    tracker = TrialTracker(ctx, "k", "r", {})
    assert tracker.open() == "RUNNING"
    tracker.log_metrics({"epoch_val_acc": 0.1}, step=1)
    assert tracker.flush()
    relay.down()
    tracker.log_metrics({"epoch_val_acc": 0.2}, step=2)
    tracker.log_params({"seed": 3})
    assert tracker.flush() is False  # kept, not dropped
    assert len(tracker.pending) == 2 and "Error" in tracker.last_error
    # the trial's process dies; its checkpoint carries the unsent records to the next one
    state = json.loads(json.dumps(tracker.state()))
    relay.up()
    restarted = TrialTracker(ctx, "k", "r", {}, run_id=state["run_id"], pending=state["pending"])
    assert restarted.open() == "RUNNING" and restarted.found
    restarted.log_metrics({"epoch_val_acc": 0.3}, step=3)
    restarted.terminate("FINISHED")
    restarted.flush_final(timeout=30)
    client = MlflowClient(mlflow_server.uri)
    history = client.get_metric_history(tracker.run_id, "epoch_val_acc")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.1), (2, 0.2), (3, 0.3)]
    run = client.get_run(tracker.run_id)
    assert run.data.params["seed"] == "3" and run.info.status == "FINISHED"


def test_final_flush_gives_up_at_its_deadline_and_saves_the_records(mlflow_server, relay, tmp_path):
    sweep = new_sweep(mlflow_server.uri)
    tracker = TrialTracker(ctx_for(sweep, relay.uri), "k", "r", {}, spill_dir=tmp_path)
    tracker.open()
    relay.down()
    tracker.log_metrics({"test_acc": 0.9})
    tracker.terminate("FINISHED")
    t0 = time.monotonic()
    with pytest.raises(TrackingError, match="took no records for 2s") as info:
        tracker.flush_final(timeout=2)
    assert time.monotonic() - t0 < 30
    saved = json.loads((tmp_path / "mlflow_pending.json").read_text())
    assert saved["run_id"] == tracker.run_id and len(saved["pending"]) == 2
    assert str(tmp_path / "mlflow_pending.json") in str(info.value)


def test_run_created_later_when_mlflow_is_down_at_start(mlflow_server, relay):
    sweep = new_sweep(mlflow_server.uri)
    relay.down()
    tracker = TrialTracker(ctx_for(sweep, relay.uri), "late", "r", {TAG["cell"]: "c"})
    assert tracker.open() is None and tracker.run_id is None
    tracker.log_metrics({"epoch_val_acc": 0.4}, step=1)
    assert tracker.flush() is False
    relay.up()
    tracker.terminate("FINISHED")
    tracker.flush_final(timeout=30)
    run = MlflowClient(mlflow_server.uri).get_run(tracker.run_id)
    assert run.data.tags[TAG["parent"]] == sweep.run_id and run.data.tags[TAG["cell"]] == "c"
    assert run.data.metrics["epoch_val_acc"] == 0.4 and run.info.status == "FINISHED"


def test_sqlite_store_puts_artifacts_under_the_given_root(tmp_path):
    uri = sqlite_uri(tmp_path / "mlflow.db")
    sweep = SweepRun(uri, "local", artifact_root=tmp_path / "artifacts")
    sweep.start("tiny", "h", "", "", "cmd", {}, {"spec.yaml": "name: tiny\n"})
    assert (tmp_path / "artifacts" / "local").is_dir()
    exe, rest = sweep.ui_command().split(" ", 1)
    assert rest == f"ui --backend-store-uri {uri}"
    assert exe == "mlflow" or (Path(exe).name == "mlflow" and Path(exe).is_absolute())
    # the printed command works from any folder, not only from the one the sweep ran in
    version = subprocess.run([exe, "--version"], cwd="/", capture_output=True, timeout=60)
    assert version.returncode == 0, version.stderr
    found = list((tmp_path / "artifacts").rglob("spec.yaml"))
    assert len(found) == 1 and found[0].read_text() == "name: tiny\n"
