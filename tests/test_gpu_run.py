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
import torch
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


def _load_bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_report():
    return _load_bench("gpu_report")


def _assert_same_members(fused, separate, m: int) -> None:
    for i in range(m):
        got, want = fused.member_state(i), separate.member_state(i)
        assert got.keys() == want.keys()
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=1e-10, atol=1e-12, msg=name)


@pytest.fixture
def one_thread():
    """One torch thread: tiny ops on a loaded 2-core machine spin-wait otherwise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_fused_probe_steps_equal_the_separate_steps_float64(one_thread):
    """Two training steps of M fused trials give each trial's own losses and updated weights
    (Adam included), for vmap-ed LeNet-5 and the baddbmm LSTM on real IMDB batches."""
    probe = _load_bench("fused_probe")
    f64 = torch.float64
    m = 3
    batches = probe.lenet_batches(m, 2, 5, dtype=f64)
    separate = probe.Separate(probe.lenet_members(m, dtype=f64), 1e-3)
    fused = probe.VmapFused(probe.lenet_members(m, dtype=f64), 1e-3)
    for x, y in batches:
        want = separate.step(list(x), list(y))
        torch.testing.assert_close(fused.step(x, y), want, rtol=1e-12, atol=0)
    _assert_same_members(fused, separate, m)
    shared = probe.VmapFused(probe.lenet_members(m, dtype=f64), 1e-3, shared_input=True)
    separate = probe.Separate(probe.lenet_members(m, dtype=f64), 1e-3)
    for x, y in batches:  # every member on member 0's batch
        want = separate.step([x[0]] * m, [y[0]] * m)
        torch.testing.assert_close(shared.step(x[0], y[0].expand(m, -1)), want, rtol=1e-12, atol=0)
    _assert_same_members(shared, separate, m)

    data = probe.load_imdb(str(SHARED))
    size = {"vocab_size": data.model_kwargs["vocab_size"], "hidden": 7, "embed_dim": 5}
    batches = probe.imdb_batches(data, m, 2, 6)
    pad = data.model_kwargs["padding_idx"]
    rows = [r.clone() for r in batches[0].rows]
    rows[1][2] = pad  # an all-padding row reads one padding token, as the real model does
    batches[0] = probe.TextBatch(rows, batches[0].ys, pad)
    assert len({w for b in batches for w in b.member_widths}) > 1  # members of unequal widths
    separate = probe.Separate(probe.lstm_members(m, **size, dtype=f64), 1e-3)
    fused = probe.FusedLSTM(probe.lstm_members(m, **size, dtype=f64), 1e-3)
    for b in batches:
        want = separate.step(b.rows, b.ys)
        torch.testing.assert_close(fused.step(b.x, b.lengths, b.y), want, rtol=1e-12, atol=0)
    _assert_same_members(fused, separate, m)
    assert fused.params["embedding.weight"][:, pad].abs().max() == 0  # padding row untouched


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
    steps = "cuda_tests,text_step,packing,fused_probe,table3"
    cmd += ["--steps", steps, "--data-dir", str(data), "--out", str(out)]
    cmd += ["--budget", "900"]  # the device's 480 s is for a GPU; a loaded 2-core CPU needs more
    proc = subprocess.run(
        cmd, cwd=ROOT, env=_blocking_env(tmp_path), capture_output=True, text=True, timeout=1000
    )
    summary = json.loads((out / "summary.json").read_text())
    assert proc.returncode == 0, json.dumps(summary["steps"], indent=1)
    assert {n: s["status"] for n, s in summary["steps"].items()} == dict.fromkeys(
        steps.split(","), "ok"
    )
    assert summary["environment"]["device"] == "cpu"
    assert sorted(p.name for p in out.iterdir()) == [
        "fused_probe.json", "logs.tar.gz", "packing.json", "summary.json", "table3.json",
        "text_step.json",
    ]  # fmt: skip
    assert summary["steps"]["fused_probe"]["result"] == "all ran"
    text = json.loads((out / "text_step.json").read_text())["tasks"]
    assert {"packed", "split", "twin"} <= set(text["pheme-bilstm"]["ms_per_step"])

    rows = json.loads((out / "packing.json").read_text())["rows"]
    assert [r["packing"] for r in rows] == [1, 2]
    assert rows[0]["slowdown"] == 1.0 and rows[1]["wall_s"] > 0

    probe = json.loads((out / "fused_probe.json").read_text())
    for name, fused in (("lenet5", "vmap"), ("lenet5", "vmap_shared"), ("lstm", "baddbmm")):
        assert [r["m"] for r in probe[name]["rows"]] == [1, 2]
        for row in probe[name]["rows"]:
            v = row["variants"][fused]
            assert v["trial_steps_per_s"] > 0 and v["speedup"] > 0
            assert len(v["first_losses"]) == row["m"] and v["first_loss_diff"] < 1e-4
    lstm = probe["lstm"]["rows"][1]
    assert lstm["variants"]["streams"] == {"skipped": "CUDA only"}
    assert "baddbmm_compile" not in lstm["variants"]  # left out at toy sizes
    assert lstm["widths"]["fused_over_separate"] >= 1

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
    markdown = report.benchmarks_markdown(out)
    assert "| pheme-bilstm |" in markdown
    assert "| 2 | vmap |" in markdown and "| 2 | baddbmm |" in markdown
    joined = report.probe_vs_packing(probe, {"rows": rows})  # the packing step's N = 1, 2
    assert [line.split(" | ")[0] for line in joined[-2:]] == ["| 1", "| 2"]
    assert "one process / N processes" in markdown
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
