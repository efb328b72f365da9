"""System metrics on trial runs (a real ``mlflow server``), the spec field that switches them,
and the experiment kind the service marks its experiments with."""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from sweeps.records.tracking import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    SweepContext,
    SweepRun,
    TrialTracker,
)
from sweeps.specs.load import load_spec
from sweeps.specs.spec import SpecError, parse_spec

CPU, MEMORY = "system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"


def _sweep(uri: str) -> SweepRun:
    sweep = SweepRun(uri, f"sysm-{uuid.uuid4().hex[:8]}")
    sweep.start("tiny", "h" * 64, "", "", "cmd", {}, {})
    return sweep


def _tracker(sweep: SweepRun, interval: float, key: str) -> TrialTracker:
    ctx = SweepContext(sweep.uri, sweep.experiment_id, sweep.run_id, "tiny")
    ctx = dataclasses.replace(ctx, system_metrics=interval)
    return TrialTracker(ctx, key, key, {})


def _history(uri: str, run_id: str, key: str) -> list:
    return MlflowClient(uri).get_metric_history(run_id, key)


def test_trial_runs_get_cpu_and_memory_samples_every_interval(mlflow_server):
    pytest.importorskip("psutil", reason="psutil is a dependency: pip install -e . to add it")
    sweep = _sweep(mlflow_server.uri)
    tracker = _tracker(sweep, 1.0, "long")
    assert tracker.open() == "RUNNING"
    tracker.start_system_metrics()
    sum(i * i for i in range(3_000_000))  # some CPU for the samples to see
    time.sleep(2.6)
    tracker.terminate("FINISHED")
    tracker.flush_final(timeout=30)
    cpu = _history(mlflow_server.uri, tracker.run_id, CPU)
    memory = _history(mlflow_server.uri, tracker.run_id, MEMORY)
    assert len(cpu) >= 2 and sorted(m.step for m in cpu) == list(range(len(cpu)))
    assert all(0 <= m.value <= 100 for m in cpu) and all(m.value > 0 for m in memory)
    run = MlflowClient(mlflow_server.uri).get_run(tracker.run_id)
    assert run.info.status == "FINISHED"


def test_a_trial_shorter_than_an_interval_gets_one_sample_and_zero_means_none(mlflow_server):
    pytest.importorskip("psutil", reason="psutil is a dependency: pip install -e . to add it")
    sweep = _sweep(mlflow_server.uri)
    short = _tracker(sweep, 10.0, "short")
    short.open()
    short.start_system_metrics()
    short.terminate("FINISHED")
    short.flush_final(timeout=30)
    assert len(_history(mlflow_server.uri, short.run_id, MEMORY)) == 1
    off = _tracker(sweep, 0.0, "off")
    off.open()
    off.start_system_metrics()
    off.terminate("FINISHED")
    off.flush_final(timeout=30)
    metrics = MlflowClient(mlflow_server.uri).get_run(off.run_id).data.metrics
    assert not [k for k in metrics if k.startswith("system/")]


def test_spec_system_metrics_field_default_off_seconds_and_errors():
    spec = load_spec("quickstart")
    assert spec.system_metrics is True and spec.system_metrics_interval == 10.0
    data = yaml.safe_load(Path(spec.source).read_text())
    off = parse_spec({**data, "system_metrics": False}, "off.yaml")
    every = parse_spec({**data, "system_metrics": 2}, "two.yaml")
    assert off.system_metrics_interval == 0.0 and every.system_metrics_interval == 2.0
    # how a sweep is observed is not what it computes: the hash (resume's check) ignores it
    assert off.hash == every.hash == spec.hash
    for bad in (0.5, "yes please", [1]):
        with pytest.raises(SpecError, match=r"bad\.yaml.*system_metrics.*true, false or the sec"):
            parse_spec({**data, "system_metrics": bad}, "bad.yaml")


def test_experiments_are_marked_as_model_training(mlflow_server):
    client = MlflowClient(mlflow_server.uri)
    name = f"kind-{uuid.uuid4().hex[:8]}"
    sweep = SweepRun(mlflow_server.uri, name)
    assert client.get_experiment(sweep.experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    client.set_experiment_tag(sweep.experiment_id, EXPERIMENT_KIND_TAG, "genai_development")
    again = SweepRun(mlflow_server.uri, name)  # an experiment made before: marked on reuse
    assert again.experiment_id == sweep.experiment_id
    assert client.get_experiment(sweep.experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert again.ui_url().endswith(
        f"/#/experiments/{sweep.experiment_id}/runs?workflowType=machine_learning"
    )
