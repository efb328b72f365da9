"""The quickstart end to end: sweep, report, confirm on fresh seeds, report again.

Real trials on the session's local Ray write to a sqlite store in a tmp runs folder. The
selected configuration (highest mean val_acc) and every confirmed number are recomputed here
from the runs MLflow returns, independently of the report code.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from mlflow import MlflowClient
from scipy import stats

from sweeps import cli
from sweeps.records.tracking import TAG, SweepContext, SweepRun, TrialTracker

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "quickstart"
CONFIRM = "quickstart-confirm"


def _children(client: MlflowClient, experiment: str) -> tuple[str, list]:
    exp = client.get_experiment_by_name(experiment)
    (parent,) = client.search_runs([exp.experiment_id], "tags.`dropattack.role` = 'sweep'")
    runs = client.search_runs(
        [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    return parent, runs


def _by_cell(runs: list) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for run in runs:
        out[run.data.tags[TAG["cell"]]].append(run)
    return out


def _config(run) -> dict:
    p = run.data.params
    return {
        "method": p["method"],
        "attack": p["attack"] or None,
        "eps": float(p["eps"]) if "eps" in p else None,
        "p": float(p["p"]) if "p" in p else None,
    }


@pytest.fixture(scope="module")
def flow(ray_local, tmp_path_factory):
    """The quickstart swept, reported, confirmed on 2 fresh seeds and reported again."""
    runs_dir = tmp_path_factory.mktemp("confirm")
    uri = f"sqlite:///{runs_dir}/mlflow.db"
    common = ["--mlflow-uri", uri, "--runs-dir", str(runs_dir)]
    out: dict = {"uri": uri, "runs_dir": runs_dir}
    assert cli.main(["sweep", EXPERIMENT, *common, "--no-live"]) == 0
    out["first"] = runs_dir / "first"
    assert cli.main(["report", EXPERIMENT, *common, "--out", str(out["first"])]) == 0
    argv = ["confirm", EXPERIMENT, "--seeds", "2", *common, "--no-live"]
    assert cli.main(argv) == 0
    out["resumed"] = cli.main([*argv, "--resume"])  # a finished confirmation: nothing to run
    out["changed"] = cli.main(["confirm", EXPERIMENT, "--seeds", "3", *common, "--resume"])
    # the same spec swept again: the finished sweep is reported, not trained a second time
    out["again"] = cli.main(["sweep", EXPERIMENT, *common, "--no-live"])
    out["second"] = runs_dir / "second"
    assert cli.main(["report", EXPERIMENT, *common, "--out", str(out["second"])]) == 0
    return out


def test_report_selects_the_highest_mean_val_acc_the_sweep_named(flow):
    client = MlflowClient(flow["uri"])
    parent, runs = _children(client, EXPERIMENT)
    cells = _by_cell(runs)
    assert len(runs) == 10 and len(cells) == 5
    means = {k: statistics.mean(r.data.metrics["val_acc"] for r in rs) for k, rs in cells.items()}
    best = max(means, key=means.get)
    assert parent.data.tags["dropattack.best_cell"] == best  # the sweep's own summary
    data = json.loads((flow["first"] / "report.json").read_text())
    assert (data["selection_metric"], data["metric"]) == ("val_acc", "test_acc")
    (task,) = data["tasks"]
    chosen = {k: v for k, v in task["best"].items() if k in ("method", "attack", "eps", "p")}
    assert chosen == _config(cells[best][0])
    assert task["best_selection_mean"] == pytest.approx(means[best], abs=1e-12)
    test_accs = [100 * r.data.metrics["test_acc"] for r in cells[best]]
    assert task["best_metric_mean"] == pytest.approx(statistics.mean(test_accs), abs=1e-9)
    assert task["comparisons"] == 4 and task["confirmed"] is None
    md = (flow["first"] / "report.md").read_text()
    assert "highest mean val_acc" in md and "Not confirmed yet: `dropattack confirm" in md


def test_confirmation_runs_the_selected_and_the_baseline_on_fresh_seeds(flow):
    client = MlflowClient(flow["uri"])
    parent, runs = _children(client, EXPERIMENT)
    c_parent, c_runs = _children(client, CONFIRM)
    assert c_parent.data.tags["dropattack.confirms"] == parent.info.run_id
    assert c_parent.info.status == "FINISHED" and len(c_runs) == 4
    # resumed like any sweep: the same parent run (one only) and no run twice
    assert flow["resumed"] == 0 and len(_by_cell(c_runs)) == 2
    assert flow["changed"] == 2  # --resume of another confirmation (3 seeds) is refused
    assert all(r.info.status == "FINISHED" for r in c_runs)
    sweep_seeds = {r.data.params["seed"] for r in runs}
    confirm_seeds = {r.data.params["seed"] for r in c_runs}
    assert len(confirm_seeds) == 2 and not confirm_seeds & sweep_seeds
    means = {
        k: statistics.mean(r.data.metrics["val_acc"] for r in rs)
        for k, rs in _by_cell(runs).items()
    }
    top = max((k for k in means if "method=standard" not in k), key=means.get)
    baseline = next(k for k in means if "method=standard" in k)
    assert set(_by_cell(c_runs)) == {top, baseline}  # same configurations, same cell keys


def test_report_adds_the_confirmed_difference(flow):
    """Also after ``dropattack sweep quickstart`` ran a second time (one parent run still)."""
    assert flow["again"] == 0
    client = MlflowClient(flow["uri"])
    _, runs = _children(client, EXPERIMENT)
    _, c_runs = _children(client, CONFIRM)
    means = {
        k: statistics.mean(r.data.metrics["val_acc"] for r in rs)
        for k, rs in _by_cell(runs).items()
    }
    best = max(means, key=means.get)
    data = json.loads((flow["second"] / "report.json").read_text())
    (task,) = data["tasks"]
    md = (flow["second"] / "report.md").read_text()
    assert "## Confirmation on fresh seeds" in md
    if "method=standard" in best:  # the baseline itself was selected: nothing to confirm
        assert task["confirmed"] is None
        return
    by_cell = _by_cell(c_runs)
    a = [100 * r.data.metrics["test_acc"] for r in by_cell[best]]
    b = [100 * r.data.metrics["test_acc"] for k, rs in by_cell.items() if k != best for r in rs]
    confirmed = task["confirmed"]
    assert set(confirmed) == {"difference", "ci95", "p_value", "n"}
    assert confirmed["n"] == 2
    assert confirmed["difference"] == pytest.approx(statistics.mean(a) - statistics.mean(b))
    result = stats.ttest_ind(a, b, equal_var=False)
    if statistics.stdev(a) + statistics.stdev(b) > 0:
        assert confirmed["p_value"] == pytest.approx(float(result.pvalue), rel=1e-6)
        low, high = result.confidence_interval(0.95)
        assert confirmed["ci95"] == pytest.approx([float(low), float(high)], rel=1e-6)
    # the sweep's own numbers are unchanged by the confirmation
    first = json.loads((flow["first"] / "report.json").read_text())["tasks"][0]
    assert {k: v for k, v in task.items() if k != "confirmed"} == {
        k: v for k, v in first.items() if k != "confirmed"
    }
    assert "fresh seeds" in md and "(the sweep used 0, 1)" in md


def _store_with(uri: str, name: str, trials: list[tuple[str, str, str]]) -> None:
    """A sweep written by the tracking code: (cell, method, status) per trial, no training."""
    root = Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    sweep = SweepRun(uri, name, artifact_root=root)
    parent = sweep.start(name, "h", "", "", "test", {"metric": "val_acc", "mode": "max"}, {})
    ctx = SweepContext(uri, sweep.experiment_id, parent, name)
    for i, (cell, method, status) in enumerate(trials):
        tracker = TrialTracker(ctx, f"{cell};seed={i}", f"t{i}", {TAG["cell"]: cell})
        tracker.open()
        params = {"task": "digits-lenet5", "method": method, "seed": i, "epochs": 1}
        tracker.log_params({**params, "attack": "Input" if method == "dropattack" else ""})
        tracker.log_metrics({"val_acc": 0.9, "test_acc": 0.9})
        tracker.terminate(status, "RuntimeError: boom" if status == "FAILED" else None)
        tracker.flush_final(timeout=30)
    sweep.finish("FINISHED", {}, {})


@pytest.mark.parametrize(
    ("name", "trials", "message"),
    [
        (
            "no-baseline",
            [("task=digits-lenet5;method=dropattack;attack=Input", "dropattack", "FINISHED")] * 2,
            "task 'digits-lenet5': no baseline configuration among its 1 finished",
        ),
        (
            "only-baseline",
            [("task=digits-lenet5;method=standard", "standard", "FINISHED")] * 2,
            "only baseline configurations finished",
        ),
        (
            "all-failed",
            [("task=digits-lenet5;method=standard", "standard", "FAILED")],
            "has no FINISHED trial runs to report on (1 FAILED)",
        ),
    ],
)
def test_bad_input_is_one_line_and_runs_nothing(tmp_path, capsys, name, trials, message):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _store_with(uri, name, trials)
    capsys.readouterr()  # MLflow's own log lines while the store was written
    argv = ["confirm", name, "--mlflow-uri", uri, "--runs-dir", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("dropattack confirm: error: ")
    assert MlflowClient(uri).get_experiment_by_name(f"{name}-confirm") is None


def test_unknown_experiment_is_one_line(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _store_with(uri, "other", [("task=digits-lenet5;method=standard", "standard", "FINISHED")])
    capsys.readouterr()
    assert cli.main(["confirm", "nope", "--mlflow-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "no MLflow experiment named 'nope'" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"task": "imdb-lstm", "method": "dropattack", "attack": ["Embedding", "Lstm.ih.w"],
         "eps": 7, "p": 0.7, "train_size": 2000, "groups": "joint"},
        {"task": "imdb-lstm", "method": "l1", "hp": {"lam": 1.0e-5}, "epochs": 3, "lr": 0.002},
        {"task": "digits-lenet5", "method": "dropout", "hp": {"rate": 0.5}, "batch_size": 32},
        {"task": "digits-lenet5", "method": "standard"},
        {"task": "imdb-lstm", "method": "standard", "vectors": "glove"},
    ],
)  # fmt: skip
def test_a_configuration_is_rebuilt_from_its_params_with_the_same_cell_key(fields):
    """What confirm reruns is what the sweep ran: spec entry from params -> the same cell."""
    from sweeps.commands.confirm import trial_fields
    from sweeps.execution.trainable import trial_params
    from sweeps.report.aggregate import CellStats
    from sweeps.specs.space import expand_grid, make_trial
    from sweeps.specs.spec import parse_spec

    trial = make_trial(fields, seed=0, index=0)
    params = {k: str(v) for k, v in trial_params(trial).items() if k != "seed"}
    params["train_size"] = params.get("train_size", "800")  # logged even when left default
    params["epochs"] = params.get("epochs", "2")
    cell = CellStats(trial["cell"], params, "", [1.0], ["0"], ["r"])
    spec = parse_spec({"name": "rebuilt", "trials": [trial_fields(cell)], "seeds": [7]})
    (again,) = expand_grid(spec)
    assert again["cell"] == trial["cell"] and again["seed"] == 7
    for name in ("method", "attack", "eps", "p", "k", "groups", "hp", "lr", "batch_size"):
        assert again[name] == trial[name], name
    assert again.get("vectors") == trial.get("vectors")  # GloVe or random: the same start


def _sweep_in_a_subprocess(spec: str, runs_dir: Path, uri: str, *flags: str):
    """``dropattack sweep`` as a user runs it; the last stdout line says whether Ray was
    imported at all."""
    code = (
        "import sys\nfrom sweeps.cli import main\nrc = main(sys.argv[1:])\n"
        "print('ray imported:', 'ray' in sys.modules)\nsys.exit(rc)\n"
    )
    argv = ["sweep", spec, "--mlflow-uri", uri, "--runs-dir", str(runs_dir), "--no-live", *flags]
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("flags", [(), ("--resume",)], ids=["again", "resume"])
def test_a_finished_sweep_run_again_runs_nothing_and_starts_no_ray(flow, flags):
    proc = _sweep_in_a_subprocess(EXPERIMENT, flow["runs_dir"], flow["uri"], *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    parent, _ = _children(MlflowClient(flow["uri"]), EXPERIMENT)
    assert lines[0] == (
        f"quickstart: the same spec ran before (MLflow parent run {parent.info.run_id}, "
        "finished): nothing to run; a new sweep of it needs --experiment NAME"
        if not flags
        else f"quickstart: finished before (MLflow parent run {parent.info.run_id}): nothing to run"
    )
    summary = next(line for line in lines if " done (" in line)
    assert summary.startswith("quickstart: 10 done (10 before this run), 0 failed"), summary
    assert f"MLflow parent run {parent.info.run_id}" in proc.stdout
    assert lines[-1] == "ray imported: False"


def test_another_spec_under_a_swept_name_is_refused_naming_experiment_and_resume(flow, tmp_path):
    shipped = (ROOT / "sweeps" / "specs" / "quickstart.yaml").read_text()
    changed = tmp_path / "quickstart.yaml"
    changed.write_text(shipped.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    assert changed.read_text() != shipped
    proc = _sweep_in_a_subprocess(str(changed), flow["runs_dir"], flow["uri"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "a sweep named 'quickstart' of another spec" in proc.stderr
    assert "--experiment NAME" in proc.stderr and "--resume" in proc.stderr
    assert proc.stdout.splitlines()[-1] == "ray imported: False"


def _copy(client: MlflowClient, run, experiment_id: str, tags: dict[str, str]) -> str:
    """A copy of ``run`` (params, final metrics, tags; ``tags`` override) in ``experiment_id``."""
    from mlflow.entities import Metric, Param, RunTag

    keep = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") or k in tags}
    new = client.create_run(experiment_id, run_name=run.info.run_name, tags={**keep, **tags})
    client.log_batch(
        new.info.run_id,
        metrics=[Metric(k, v, 0, 0) for k, v in run.data.metrics.items()],
        params=[Param(k, v) for k, v in run.data.params.items()],
        tags=[RunTag(k, v) for k, v in {**keep, **tags}.items()],
    )
    client.set_terminated(new.info.run_id, run.info.status)
    return new.info.run_id


def test_report_keeps_the_confirmation_of_an_earlier_parent_of_the_same_spec(flow, tmp_path):
    """A store with two parent runs of the same spec (what running a sweep twice left before):
    the report reads the newest and still finds the confirmation of the older one; and a
    confirmation in an experiment of its own name (``confirm --experiment``) is found too."""
    client = MlflowClient(flow["uri"])
    parent, runs = _children(client, EXPERIMENT)
    exp_id = parent.info.experiment_id
    made: list[str] = []
    try:
        newer = _copy(client, parent, exp_id, {})
        made += [newer] + [_copy(client, r, exp_id, {TAG["parent"]: newer}) for r in runs]
        out = tmp_path / "report"
        argv = ["report", EXPERIMENT, "--mlflow-uri", flow["uri"], "--out", str(out), "--no-log"]
        assert cli.main([*argv, "--format", "json,md"]) == 0
        md = (out / "report.md").read_text()
        assert f"It confirms parent run {parent.info.run_id}, an earlier run" in md
        assert "Not confirmed yet" not in md

        c_parent, c_runs = _children(client, CONFIRM)
        elsewhere = client.create_experiment("quickstart-confirm-elsewhere")
        tags = {TAG["confirms"]: newer}
        c_new = _copy(client, c_parent, elsewhere, tags)
        made += [c_new] + [_copy(client, r, elsewhere, {TAG["parent"]: c_new}) for r in c_runs]
        assert cli.main([*argv, "--format", "md"]) == 0
        md = (out / "report.md").read_text()
        assert f"experiment quickstart-confirm-elsewhere, parent run {c_new}" in md
        assert "an earlier run" not in md
    finally:
        for run_id in made:  # the module's other tests see one parent run per experiment
            client.delete_run(run_id)


def test_confirm_experiment_names_the_confirmation_sweep(flow, capsys):
    argv = ["confirm", EXPERIMENT, "--seeds", "2", "--mlflow-uri", flow["uri"], "--resume"]
    argv += ["--runs-dir", str(flow["runs_dir"]), "--experiment", "qs-named"]
    assert cli.main(argv) == 2  # nothing of that name to resume: its own folder was looked for
    err = capsys.readouterr().err
    assert f"--resume: no sweep to resume at {flow['runs_dir']}/ray/qs-named" in err, err
