"""The GPU machine's script (bench/gpu_run.py) on the CPU at toy sizes, as the GPU machine has
it: torch and tokenizers, but no Ray, MLflow, Optuna or pydantic (blocked here), and the data
samples carried in a folder of their own."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BLOCKED = ("ray", "mlflow", "optuna", "pydantic", "datasets")

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"needs the data samples in {SHARED}")


def _blocking_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH with packages of the blocked names that fail to import, as if absent."""
    stubs = tmp_path / "blocked"
    for name in BLOCKED:
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not installed on the GPU machine')\n"
        )
    return {**os.environ, "PYTHONPATH": f"{stubs}{os.pathsep}{ROOT}"}


def _load_report():
    spec = importlib.util.spec_from_file_location("gpu_report", ROOT / "bench" / "gpu_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_and_run_trial_need_none_of_the_service_packages(tmp_path):
    env = _blocking_env(tmp_path)
    code = (
        "from sweeps.trial import TrialConfig, run_trial\n"
        "r = run_trial(TrialConfig('digits-lenet5', epochs=1, train_size=64))\n"
        "import sys\n"
        f"print(r.metrics['test_acc'] > 0, [m for m in {BLOCKED!r} if m in sys.modules])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "True []"
    check = subprocess.run(
        [sys.executable, "-c", "import mlflow"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert "is not installed on the GPU machine" in check.stderr  # the block is in force


def test_gpu_run_script_at_toy_sizes_and_its_report(tmp_path):
    data = tmp_path / "devdata"
    out = tmp_path / "out"
    prep = subprocess.run(
        [sys.executable, "bench/gpu_run.py", "--prepare", str(data)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert prep.returncode == 0, prep.stderr[-2000:]
    cmd = [sys.executable, "bench/gpu_run.py", "--device", "cpu", "--tiny", "--parallel", "2"]
    steps = "cuda_tests,text_step,packing,table3"
    cmd += ["--steps", steps, "--data-dir", str(data), "--out", str(out)]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=_blocking_env(tmp_path), capture_output=True, text=True, timeout=600
    )
    summary = json.loads((out / "summary.json").read_text())
    assert proc.returncode == 0, json.dumps(summary["steps"], indent=1)
    assert {n: s["status"] for n, s in summary["steps"].items()} == dict.fromkeys(
        steps.split(","), "ok"
    )
    assert summary["environment"]["device"] == "cpu"
    assert sorted(p.name for p in out.iterdir()) == [
        "logs.tar.gz", "packing.json", "summary.json", "table3.json", "text_step.json",
    ]  # fmt: skip
    text = json.loads((out / "text_step.json").read_text())["tasks"]
    assert {"packed", "split", "twin"} <= set(text["pheme-bilstm"]["ms_per_step"])

    rows = json.loads((out / "packing.json").read_text())["rows"]
    assert [r["packing"] for r in rows] == [1, 2]
    assert rows[0]["slowdown"] == 1.0 and rows[1]["wall_s"] > 0

    trials = json.loads((out / "table3.json").read_text())["trials"]
    assert len(trials) == 8 and not [t for t in trials if "error" in t]
    assert {(t["train_size"], t["method"]) for t in trials} == {
        (s, m) for s in (32, 64) for m in ("standard", "dropattack3")
    }
    assert all(t["sizes"]["test"] == 250 and 0 <= t["test_acc"] <= 1 for t in trials)

    report = _load_report()
    table = report.table3_rows(trials)
    for row in table:
        pick = [t for t in trials if t["train_size"] == row["train_size"]]
        a = [100 * t["test_acc"] for t in pick if t["method"] == "standard"]
        b = [100 * t["test_acc"] for t in pick if t["method"] == "dropattack3"]
        if a == b:
            continue
        expected = stats.ttest_ind(b, a, equal_var=False)
        assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
        low, high = expected.confidence_interval(0.95)
        assert row["ci95"] == pytest.approx((low, high), rel=1e-9)
        assert row["p_value_adjusted"] >= row["p_value"]
    assert "| pheme-bilstm |" in report.benchmarks_markdown(out)
    page = report.reproduction_markdown(out)
    assert "| 32 |" in page and "| 64 |" in page and "8 of 8 trials finished" in page


def test_gpu_plan_calibrates_and_chooses_without_the_service_packages(tmp_path):
    data = tmp_path / "devdata"
    prep = subprocess.run(
        [sys.executable, "bench/gpu_run.py", "--prepare", str(data)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert prep.returncode == 0, prep.stderr[-2000:]
    out = tmp_path / "plan.json"
    cmd = [sys.executable, "bench/gpu_plan.py", "--device", "cpu", "--tiny"]
    cmd += ["--data-dir", str(data), "--json", str(out)]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=_blocking_env(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    plan = json.loads(out.read_text())
    shapes = plan["shapes"]
    assert (shapes["standard"]["passes"], shapes["dropattack3"]["passes"]) == (1, 7)
    assert all(s["memory"] == "resident" and s["trial_seconds"] > 0 for s in shapes.values())
    assert plan["auto"]["gpus_per_trial"] == 1.0 and plan["auto"]["probes"][0]["k"] == 1
