"""A real sweep end to end: Ray trials -> MLflow (real server) -> report, checkpoints, landscape.

A small quickstart-layout grid (digits-lenet5, 1 epoch: the standard baseline and DropAttack
on eps {1, 5} x p {0.3, 0.7}, 2 seeds each) runs on a real local Ray against the session's
``mlflow server``. Every number the report shows is recomputed here from the runs MLflow
returns, and every trial's ``checkpoint/best.pt`` is loaded into a fresh model and scored.
"""

from __future__ import annotations

import json
import math
import statistics
import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mlflow import MlflowClient
from scipy import stats

from models import tasks
from models.data import DataOptions
from sweeps import cli
from sweeps.execution.driver import SweepOptions, run_sweep
from sweeps.execution.trainable import trial_params
from sweeps.records.tracking import (
    CHECKPOINT_ARTIFACT,
    TAG,
    SweepContext,
    SweepRun,
    TrackingError,
    TrialTracker,
    model_overrides,
)
from sweeps.report import build_report, checkpoint_path, plots
from sweeps.report.figures import task_grid
from sweeps.report.tables import cells_table
from sweeps.specs.load import load_spec
from sweeps.specs.spec import SpecError, parse_spec

TASK = "digits-lenet5"
TRAIN_SIZE = 800
SEEDS = (0, 1)
GRID = """
name: {name}
paper_table: quickstart
defaults: {{task: digits-lenet5, epochs: 1, train_size: 800}}
trials:
  - {{method: standard, variant: baseline}}
  - {{method: dropattack, attack: "Input;Conv.1.w", variant: dropattack_ih}}
space: {{eps: [1, 5], p: [0.3, 0.7]}}
seeds: [0, 1]
resources: {{cpus: 1}}
"""
NO_CHECKPOINT = """
name: {name}
defaults: {{task: digits-lenet5, method: standard, epochs: 1, train_size: 200}}
seeds: [0]
resources: {{cpus: 1}}
keep_checkpoint: false
"""


def _sweep(text: str, name: str, uri: str, folder: Path):
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text.format(name=name)))
    spec = load_spec(path)
    return spec, run_sweep(spec, SweepOptions(mlflow_uri=uri, runs_dir=folder, live=False))


def _children(client: MlflowClient, experiment_id: str, parent: str) -> list:
    return client.search_runs(
        [experiment_id], filter_string=f"tags.`{TAG['parent']}` = '{parent}'", max_results=1000
    )


def _config(run) -> tuple:
    """A run's configuration read from its params (not from the report's cell tag)."""
    p = run.data.params
    return (p["method"], p["attack"], p.get("eps"), p.get("p"))


@pytest.fixture(scope="module")
def sweep(ray_local, mlflow_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report-sweep")
    spec, result = _sweep(GRID, "report-sweep", mlflow_server.uri, folder)
    client = MlflowClient(mlflow_server.uri)
    runs = _children(client, result.experiment_id, result.parent_run_id)
    return spec, result, client, runs, folder


@pytest.fixture(scope="module")
def digits():
    return tasks.get(TASK).load(DataOptions(train_size=TRAIN_SIZE))


def _load_best(client: MlflowClient, run_id: str, folder: Path) -> torch.nn.Module:
    path = client.download_artifacts(run_id, CHECKPOINT_ARTIFACT, str(folder))
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = tasks.get(TASK).build_model()
    model.load_state_dict(state)  # strict: every tensor of the task's model, nothing else
    return model.eval()


def _accuracy(model: torch.nn.Module, data, part: str) -> float:
    correct = total = 0
    with torch.no_grad():
        for x, y in data.batches(part, 64):
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total


def test_the_sweep_ran_every_trial(sweep):
    spec, result, _, runs, _ = sweep
    assert spec.keep_checkpoint is True
    assert result.counts["done"] == 10 and result.counts["failed"] == 0
    assert len(runs) == 10 and all(r.info.status == "FINISHED" for r in runs)


def test_report_cells_and_statistics_match_the_runs(sweep, tmp_path):
    _, result, client, runs, _ = sweep
    by_config: dict[tuple, list] = defaultdict(list)
    for run in runs:
        by_config[_config(run)].append(run)
    assert len(by_config) == 5  # the baseline and 2 x 2 DropAttack configurations

    report = build_report(
        result.experiment,
        tracking_uri=result.tracking_uri,
        out_dir=tmp_path / "report",
        formats="md,html,json",
    )
    analysis = report.analysis
    assert analysis.sweep.parent.run_id == result.parent_run_id
    assert analysis.matcher.name == "generic" and analysis.metric == "test_acc"
    assert not analysis.failed and analysis.sweep.status_counts() == {"FINISHED": 10}
    assert len(analysis.cells) == len(by_config)
    data = json.loads(report.files["json"].read_text())
    json_cells = {c["key"]: c for c in data["cells"]}
    means = {}
    for cell in analysis.cells:
        p = cell.params
        members = by_config[(p["method"], p["attack"], p.get("eps"), p.get("p"))]
        accs = [100 * r.data.metrics["test_acc"] for r in members]
        mean, std = statistics.mean(accs), statistics.stdev(accs)
        means[cell.key] = (mean, cell, accs)
        assert cell.n == len(SEEDS) == len(members)
        assert sorted(cell.seeds) == [str(s) for s in SEEDS]
        assert sorted(cell.run_ids) == sorted(r.info.run_id for r in members)
        assert cell.mean == pytest.approx(mean, abs=1e-9)
        assert cell.std == pytest.approx(std, abs=1e-9)
        js = json_cells[cell.key]
        assert js["n"] == len(SEEDS)
        assert js["mean"] == pytest.approx(mean, abs=1e-9)
        assert js["std"] == pytest.approx(std, abs=1e-9)
        # quickstart has no paper numbers: no verdict; the baseline is the standard method
        assert cell.paper_metric is None and cell.verdict is None and js["verdict"] is None
        assert cell.is_baseline == (p["method"] == "standard")

    (comparison,) = analysis.comparisons
    # selected on validation: the highest mean val_acc over seeds, reported on test_acc
    val = {}
    for key, (_, cell, _) in means.items():
        p = cell.params
        members = by_config[(p["method"], p["attack"], p.get("eps"), p.get("p"))]
        val[key] = statistics.mean(r.data.metrics["val_acc"] for r in members)
    best_key = max(val, key=val.get)
    best_mean, best, best_accs = means[best_key]
    assert comparison.task == TASK and comparison.best.key == best.key
    assert comparison.best.mean == pytest.approx(best_mean)
    assert data["tasks"][0]["best_selection_mean"] == pytest.approx(val[best_key], abs=1e-12)
    base = next(c for c in analysis.cells if c.params["method"] == "standard")
    if best is base:
        assert comparison.baseline is None
        assert comparison.note == "the best configuration is a baseline"
    else:
        assert comparison.baseline is base
        base_accs = means[base.key][2]
        t, pvalue = stats.ttest_ind(best_accs, base_accs, equal_var=False)
        if math.isfinite(t):
            assert comparison.t == pytest.approx(float(t))
            assert comparison.pvalue == pytest.approx(float(pvalue))
        else:
            assert comparison.note == "both sides have zero variance"
    # every cell's 95% CI at n = 2 (Student's t, as the comparisons compute one)
    table = cells_table(analysis, set())
    column = table.header.index("95% CI")
    for cell in analysis.cells:
        half = stats.t.ppf(0.975, 1) * cell.std / math.sqrt(2)
        # clipped to the metric's range: an accuracy lies in [0, 100]
        want = (max(0.0, cell.mean - half), min(100.0, cell.mean + half))
        assert cell.ci95 == pytest.approx(want)
    shown = {"".join(span.text for span in row[column]) for row in table.rows}
    assert shown == {f"[{c.ci95[0]:.2f}, {c.ci95[1]:.2f}]" for c in analysis.cells}
    # the heatmap marks the selected configuration (◆); Figure 4 names the task
    grid = task_grid(analysis, TASK, analysis.cells)
    heat = plots.heatmap_figure(grid)
    marked = [t for t in heat.axes[0].texts if "◆" in t.get_text()]
    if comparison.best.is_baseline:
        assert grid.selected is None and not marked
    else:
        eps, p = float(best.params["eps"]), float(best.params["p"])
        assert grid.selected == (eps, p) and len(marked) == 1
        assert marked[0].get_position() == (list(grid.eps).index(eps), list(grid.p).index(p))
    assert plots.figure4_figure(grid).axes[0].get_title().startswith(f"{TASK}: accuracy")
    markdown = report.files["md"].read_text()
    assert "No measured configuration has a paper number to compare with." in markdown
    assert f"Sweep parent run: {result.parent_run_id}" in markdown

    for fmt in ("md", "html", "json"):
        assert report.files[fmt].is_file() and report.files[fmt].stat().st_size > 0
    logged = {a.path for a in client.list_artifacts(result.parent_run_id, "report")}
    assert logged == set(report.logged) == {f"report/{p.name}" for p in report.files.values()}
    remote = client.download_artifacts(result.parent_run_id, "report/report.json", str(tmp_path))
    assert json.loads(Path(remote).read_text()) == data


def test_every_trial_keeps_its_best_weights(sweep, digits, tmp_path):
    _, _, client, runs, _ = sweep
    for run in runs:
        rid = run.info.run_id
        listed = [a.path for a in client.list_artifacts(rid, "checkpoint")]
        assert listed == [CHECKPOINT_ARTIFACT], rid
        model = _load_best(client, rid, tmp_path / rid)
        # the best-on-validation weights: they score the run's val and test metrics again
        metrics = run.data.metrics
        assert _accuracy(model, digits, "val") == pytest.approx(metrics["val_acc"], abs=1e-6)
        assert _accuracy(model, digits, "test") == pytest.approx(metrics["test_acc"], abs=1e-6)
        assert run.data.params["train_size"] == str(TRAIN_SIZE)
        assert "data_dir" not in run.data.params  # only logged when the spec sets one


def test_landscape_loads_a_trials_checkpoint(sweep, digits, tmp_path, capsys):
    _, _, client, runs, _ = sweep
    run = next(r for r in runs if r.data.params["method"] == "dropattack")
    rid = run.info.run_id
    out = tmp_path / "land"
    argv = ["landscape", rid, "--mlflow-uri", client.tracking_uri, "--steps", "5"]
    argv += ["--samples", "128", "--span", "0.5", "--out", str(out)]
    assert cli.main(argv) == 0
    land = json.loads((out / "landscape.json").read_text())["runs"][rid]
    loss = np.array(land["loss"])
    assert loss.shape == (5, 5) and np.isfinite(loss).all() and loss.std() > 0
    # the centre of the grid is the trial's checkpoint itself, on the first 128 test images
    model = _load_best(client, rid, tmp_path / "ckpt")
    x, y = next(iter(digits.batches("test", 256)))
    with torch.no_grad():
        centre = float(F.cross_entropy(model(x[:128]), y[:128]))
    assert loss[2, 2] == pytest.approx(centre, rel=1e-5)
    assert (out / "landscape.png").stat().st_size > 10_000
    logged = {a.path for a in client.list_artifacts(rid, "landscape")}
    assert logged == {
        "landscape/landscape.png",
        "landscape/landscape.json",
        "landscape/landscape-1d.png",
    }
    assert f"{rid}: {TASK} dropattack: 128 of the 179 test examples; centre loss" in (
        capsys.readouterr().out
    )


def test_keep_checkpoint_false_logs_no_checkpoint(ray_local, mlflow_server, tmp_path, capsys):
    spec, result = _sweep(NO_CHECKPOINT, "no-checkpoint", mlflow_server.uri, tmp_path)
    assert spec.keep_checkpoint is False and result.counts["done"] == 1
    client = MlflowClient(mlflow_server.uri)
    (run,) = _children(client, result.experiment_id, result.parent_run_id)
    rid = run.info.run_id
    assert run.info.status == "FINISHED" and "test_acc" in run.data.metrics
    assert [a.path for a in client.list_artifacts(rid)] == ["history.json"]
    with pytest.raises(ValueError, match=r"has no artifact checkpoint/best.pt .*keep_checkpoint"):
        checkpoint_path(client, rid)
    argv = ["landscape", rid, "--mlflow-uri", mlflow_server.uri, "--out", str(tmp_path / "l")]
    assert cli.main(argv) == 2
    assert "`keep_checkpoint: true`" in capsys.readouterr().err


def _tracker(uri: str, via: str, folder: Path) -> TrialTracker:
    sweep = SweepRun(uri, "checkpoint-outage")
    sweep.start("tiny", "h", "", "", "cmd", {}, {})
    ctx = SweepContext(via, sweep.experiment_id, sweep.run_id, "tiny")
    return TrialTracker(ctx, "k", "r", {}, spill_dir=folder)


def _weights(folder: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    state = tasks.get(TASK).build_model().state_dict()
    path = folder / "checkpoint" / "best.pt"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return path, state


def test_a_checkpoint_survives_an_outage_and_a_process_restart(mlflow_server, relay, tmp_path):
    tracker = _tracker(mlflow_server.uri, relay.uri, tmp_path)
    assert tracker.open() == "RUNNING"
    path, state = _weights(tmp_path)
    relay.down()
    tracker.log_file(path, "checkpoint", remove=True)  # the first record MLflow cannot take
    tracker.log_metrics({"test_acc": 0.5})
    tracker.terminate("FINISHED")
    with pytest.raises(TrackingError, match="took no records for 1s"):
        tracker.flush_final(timeout=1)
    assert path.is_file()  # kept on disk while MLflow cannot take it
    spilled = json.loads((tmp_path / "mlflow_pending.json").read_text())
    assert [r["op"] for r in spilled["pending"]] == ["file", "metric", "end"]
    relay.up()
    # the trial's next process sends what the last one spilled, the file included
    again = TrialTracker(
        tracker.ctx, "k", "r", {}, run_id=spilled["run_id"], pending=spilled["pending"]
    )
    assert again.open() == "RUNNING"
    again.flush_final(timeout=30)
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["test_acc"] == 0.5
    got = torch.load(
        client.download_artifacts(tracker.run_id, CHECKPOINT_ARTIFACT, str(tmp_path / "dl")),
        weights_only=True,
    )
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    assert not path.exists()  # deleted once MLflow had it


def test_a_vanished_checkpoint_file_fails_at_once_naming_it(mlflow_server, tmp_path):
    tracker = _tracker(mlflow_server.uri, mlflow_server.uri, tmp_path)
    tracker.open()
    path, _ = _weights(tmp_path)
    tracker.log_file(path, "checkpoint")
    path.unlink()
    with pytest.raises(TrackingError, match=f"local file {path} queued for MLflow is gone"):
        tracker.flush_final(timeout=60)
    assert tracker.pending[0]["op"] == "file"  # not dropped


def test_params_hold_what_landscape_rebuilds_the_model_from(mlflow_server, tmp_path):
    trial = {
        "task": "imdb-lstm",
        "method": "standard",
        "seed": 0,
        "data_dir": "/data/root",
        "vectors": "/data/glove.txt",
        "model": {"embed_dim": 50, "dropout": 0.25, "bidirectional": True, "cell": "gru"},
    }
    tracker = _tracker(mlflow_server.uri, mlflow_server.uri, tmp_path)
    tracker.open()
    tracker.log_params(trial_params(trial))
    tracker.flush_final(timeout=30)
    params = MlflowClient(mlflow_server.uri).get_run(tracker.run_id).data.params
    assert params["data_dir"] == "/data/root" and params["vectors"] == "/data/glove.txt"
    assert model_overrides(params) == trial["model"]  # typed again, as landscape passes them
    bare = trial_params({"task": TASK, "method": "standard", "seed": 0, "data_dir": None})
    assert not {"data_dir", "vectors"} & set(bare) and not model_overrides(bare)


@pytest.mark.parametrize("value", ["no", "false", 0, None])
def test_keep_checkpoint_takes_only_true_or_false(value):
    spec = {"name": "s", "defaults": {"task": TASK}}
    assert parse_spec(spec).keep_checkpoint is True  # kept unless the spec says otherwise
    assert parse_spec({**spec, "keep_checkpoint": False}).keep_checkpoint is False
    expected = rf"s\.yaml: keep_checkpoint: expected true or false, got {value!r}"
    with pytest.raises(SpecError, match=expected):
        parse_spec({**spec, "keep_checkpoint": value}, "s.yaml")
