"""``dropattack plan``: cost shapes, the list schedule, calibration within its budget, ``auto``
resources and the sweep's use of the plan. Real calibrations on digits and a PHEME sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweeps.cost.calibrate import calibrate
from sweeps.cost.forecast import Forecast, list_schedule
from sweeps.cost.plan import group_shapes, make_plan
from sweeps.specs.load import load_spec
from sweeps.specs.space import expand_grid

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
DROPATTACK = [sys.executable, "-m", "sweeps.cli"]


def _spec(tmp_path: Path, name: str = "p", **data) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **data}))
    return path


def test_eps_p_and_seed_never_split_a_shape_k_groups_attack_and_train_size_do(tmp_path):
    spec = load_spec(
        _spec(
            tmp_path,
            defaults={"task": "digits-lenet5", "epochs": 1},
            trials=[
                {"method": "standard"},
                {"attack": ["Input"]},
                {"attack": ["Input", "Conv.1.w"]},
                {"attack": ["Input", "Conv.1.w"], "groups": "joint"},
                {"attack": ["Input"], "train_size": 200},
            ],
            space={"eps": [1, 5], "p": [0.3, 0.7], "k": [1, 3]},
            seeds=[0, 1, 2],
        )
    )
    trials = expand_grid(spec)
    shapes = group_shapes(trials)
    # standard: 1 shape (no k); each DropAttack entry: one shape per K
    assert len(shapes) == 1 + 4 * 2
    assert sum(s.trials for s in shapes) == len(trials) == 3 * (1 + 4 * 2 * 2 * 2)
    for s in shapes:
        members = [t for t in trials if t["key"] in set(s.keys)]
        if s.fields["method"] == "dropattack":
            assert {t["eps"] for t in members} == {1.0, 5.0}
            assert {t["p"] for t in members} == {0.3, 0.7}
        assert {t["seed"] for t in members} == {0, 1, 2}
    dropattack = [s.fields for s in shapes if s.fields["method"] == "dropattack"]
    assert {f["k"] for f in dropattack} == {1, 3}
    assert {f["groups"] for f in dropattack} == {"paper", "joint"}
    assert {tuple(f["attacked"]) for f in dropattack} == {("input",), ("input", "conv1.weight")}
    assert {f["train_size"] for f in dropattack} == {None, 200}
    # the passes a step costs follow K and the groups: 1 + K * G
    passes = {(tuple(f["attacked"]), f["k"], f["groups"]): f["passes"] for f in dropattack}
    assert passes[(("input", "conv1.weight"), 3, "paper")] == 7
    assert passes[(("input", "conv1.weight"), 3, "joint")] == 4


def test_list_schedule_simulates_the_order_not_a_division():
    # one long trial last: the division (13/2 = 6.5) would be half the real wall time
    assert list_schedule([1, 1, 1, 10], 2) == 11
    assert list_schedule([10, 1, 1, 1], 2) == 10
    assert list_schedule([2, 2], 2, start=5) == 7
    assert list_schedule([3], 2, busy=[4, 1]) == 4
    forecast = Forecast({"a": 10, "b": 10, "c": 10}, ["a", "b", "c"], slots=1, startup=5)
    assert forecast.eta({}, {}, elapsed=0) == 35
    # a trial took twice its prediction: the rest are corrected by the same factor
    assert forecast.eta({"a": 20}, {"b": 5}, elapsed=30) == pytest.approx(15 + 20)


def test_calibration_of_a_text_task_on_real_batches():
    if not (SHARED_DATA / "pheme" / "2018_val.csv").is_file():
        pytest.skip("the shared PHEME sample is absent")
    c = calibrate(
        "pheme-bilstm",
        method="dropattack",
        train_size=64,
        batch_size=16,
        epochs=2,
        data_dir=str(SHARED_DATA),
        budget=1.0,
        threads=1,
    )
    assert (c.task, c.passes, c.steps_per_epoch, c.epochs) == ("pheme-bilstm", 2, 4, 2)
    assert c.steps_timed == 3  # 4 steps an epoch: the warm-up and 3 timed
    assert c.setup_seconds > 0 and c.step_seconds > 0 and c.eval_seconds_per_example > 0
    assert c.val_examples > 0 and c.test_examples > 0
    assert c.memory == "resident" and c.peak_memory_bytes > 100 * 2**20
    assert c.trial_seconds() > c.setup_seconds + 2 * 4 * c.step_seconds


def _plan(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DROPATTACK, "plan", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


def test_plan_honours_its_budget_and_says_what_it_skipped(tmp_path):
    spec = _spec(
        tmp_path,
        defaults={"task": "digits-lenet5", "epochs": 2},
        trials=[{"method": "standard"}, {"attack": ["Input", "Conv.1.w"]}],
        space={"k": [1, 3]},
        seeds=[0, 1],
    )
    out = _plan([str(spec), "--budget", "0", "--json"])
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    shapes = plan["shapes"]
    assert [s["trials"] for s in shapes] == [2, 2, 2]
    assert [s["passes"] for s in shapes] == [1, 3, 7]
    assert [s["calibrated"] for s in shapes] == [True, False, False]
    assert [s["estimated_from"] for s in shapes] == [None, 0, 0]
    assert all("budget" in s["skipped"] for s in shapes[1:])
    assert any("#1, #2" in line for line in plan["skipped"])
    assert any("contention" in line for line in plan["skipped"])
    # only the first shape ran (a plan measures at least one): nothing started past the budget
    steps = [s["step_seconds"] for s in shapes]
    assert steps[2] / steps[0] == pytest.approx(7) and steps[1] / steps[0] == pytest.approx(3)
    # everything but the one calibration (spec, shapes, schedule) is quick
    assert plan["calibration_seconds"] - shapes[0]["calibration_seconds"] < 5
    assert plan["trials"] == 6 and plan["unpredicted_trials"] == 0
    assert plan["wall_seconds"] > plan["startup_seconds"]
    total = sum(s["trials"] * s["trial_seconds"] for s in shapes)
    assert plan["trial_seconds"] == pytest.approx(total)


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from sweeps.cli import main

    try:
        code = main(args)
    except SystemExit as e:  # argparse
        code = e.code
    return code, capsys.readouterr().err


def test_plan_errors_are_the_sweeps_one_line_errors(tmp_path, capsys):
    bad = str(_spec(tmp_path, defaults={"task": "digits-lenet5", "k": 0}))
    (plan_code, plan), (sweep_code, sweep) = (
        _main(["plan", bad], capsys),
        _main(["sweep", bad], capsys),
    )
    assert plan_code == sweep_code == 2
    assert plan.count("\n") == 1 and "defaults.k" in plan
    assert plan.replace("dropattack plan:", "dropattack sweep:") == sweep
    code, gpu = _main(["plan", "quickstart", "--gpus-per-trial", "1"], capsys)
    assert code == 2 and gpu.count("\n") == 1 and "no GPU torch can see" in gpu
    for flag, value in (("--budget", "-1"), ("--gpus-per-trial", "half"), ("--budget", "inf")):
        code, err = _main(["plan", "quickstart", flag, value], capsys)
        assert code == 2 and flag in err


def test_cpus_auto_measures_threads_and_the_sweep_records_plan_and_wall(
    tmp_path, ray_local, monkeypatch
):
    from sweeps.execution.driver import SweepOptions, run_sweep

    monkeypatch.chdir(tmp_path)
    spec = load_spec(
        _spec(
            tmp_path,
            name="autocpu",
            defaults={"task": "digits-lenet5", "epochs": 1, "train_size": 200},
            trials=[{"method": "standard"}, {"attack": ["Input"]}],
            resources={"cpus": "auto"},
            seeds=[0],
        )
    )
    plan = make_plan(spec, budget=30)
    figures = plan.auto["cpus"]
    tried = {(p["k"], p["threads"]): p["trials_per_hour"] for p in figures["probes"]}
    assert set(tried) == {(2, 1), (1, 2)}  # this 2-CPU machine: 2 x 1 against 1 x 2
    best = max(tried, key=tried.get)
    assert plan.cpus_per_trial == best[1] and plan.slots == best[0]
    result = run_sweep(spec, SweepOptions(runs_dir=tmp_path / "runs", plan=plan, live=False))
    assert result.counts["done"] == 2
    import mlflow

    run = mlflow.MlflowClient(result.tracking_uri).get_run(result.parent_run_id)
    assert float(run.data.params["cpus_per_trial"]) == best[1]
    assert json.loads(run.data.params["auto_cpus"])["cpus_per_trial"] == best[1]
    assert float(run.data.params["planned_wall_seconds"]) == pytest.approx(plan.wall_seconds)
    metrics = run.data.metrics
    assert metrics["predicted_wall_seconds"] == pytest.approx(plan.wall_seconds)
    assert metrics["wall_ratio"] == pytest.approx(metrics["wall_seconds"] / plan.wall_seconds)


def test_gpus_auto_is_the_cpu_where_there_is_no_gpu(tmp_path):
    from sweeps.specs.placement import gpu_count_here

    if gpu_count_here():
        pytest.skip("this machine has a GPU: auto sizes a share there (tests/test_gpu_run.py)")
    spec = load_spec(
        _spec(
            tmp_path,
            defaults={"task": "digits-lenet5", "method": "standard", "epochs": 1},
            space={"train_size": [64]},
            resources={"cpus": 1, "gpus": "auto"},
        )
    )
    said: list[str] = []
    plan = make_plan(spec, budget=3.0, status=said.append)
    assert plan.device == "cpu" and plan.gpus_per_trial == 0.0
    assert "gpus: auto: this machine has no GPU: trials run on CPU" in said
    assert "CPU-hours" in plan.summary()


def test_shapes_are_named_by_alias_as_the_sweep_names_trials():
    shapes = group_shapes(expand_grid(load_spec("table3")))
    names = [s.describe() for s in shapes]
    assert "imdb-lstm dropattack Embedding+Lstm.ih.w k=3 groups=paper train_size=100" in names
    assert not any("weight" in n for n in names), names
