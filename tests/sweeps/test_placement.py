"""Where trials run: ``resources.gpus: auto`` in the paper specs, the dry run's header, and
``submit --slurm`` refusing a GPU job whose trials would all train on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps import cli
from sweeps.cluster.slurm import gpu_request, idle_gpus_problem
from sweeps.specs.load import load_spec
from sweeps.specs.placement import gpu_count_here, placement, resolve_gpus_here
from sweeps.specs.spec import SPEC_DIR

PAPER_SPECS = [f"table{i}" for i in range(2, 11)] + ["figure2", "search"]

CPU_SPEC = """
name: cpuonly
defaults: {task: digits-lenet5, method: standard, epochs: 1, train_size: 50}
resources: {cpus: 1, gpus: 0}
"""


@pytest.mark.parametrize("name", PAPER_SPECS)
def test_paper_specs_use_the_gpus_they_are_given(name: str) -> None:
    assert (SPEC_DIR / f"{name}.yaml").exists()
    assert load_spec(name).resources.gpus == "auto"


def test_placement_words() -> None:
    assert placement(1.0, 0.0) == "on CPU, 1 CPU a trial"
    assert placement(2.0, 0.25) == "on GPU, 0.25 GPU a trial (4 share a GPU), 2 CPU"
    assert placement("auto", 1.0) == "on GPU, 1 GPU a trial (no GPU shared), auto CPUs"


def test_auto_is_the_cpu_on_a_machine_without_gpu() -> None:
    if gpu_count_here():
        assert resolve_gpus_here("auto") == "auto"  # the plan sizes the share
    else:
        assert resolve_gpus_here("auto") == 0.0
    assert resolve_gpus_here(0.5) == 0.5


def test_dry_run_header_says_where_trials_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sweep", "table10", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  where: gpus: auto (a GPU share per trial")
    here = "a GPU share each" if gpu_count_here() else "this machine has no GPU: on CPU"
    assert here in lines[1]
    assert cli.main(["sweep", "table10", "--dry-run", "--gpus-per-trial", "0.25"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  where: on GPU, 0.25 GPU a trial (4 share a GPU), 1 CPU"


@pytest.mark.parametrize(
    ("args", "asked"),
    [
        (["--gres=gpu:4", "--cpus-per-task=16"], "--gres=gpu:4"),
        (["--gres", "gpu:a100:2"], "--gres gpu:a100:2"),
        (["--gres=tmpfs:10G,gpu:1"], "--gres=tmpfs:10G,gpu:1"),
        (["--gpus=2"], "--gpus=2"),
        (["--gpus-per-node", "4"], "--gpus-per-node 4"),
        (["-G", "1"], "-G 1"),
        (["--time=1:00:00", "--gres=tmpfs:10G"], None),
        ([], None),
    ],
)
def test_gpu_request(args: list[str], asked: str | None) -> None:
    assert gpu_request(args) == asked


def test_submit_slurm_refuses_gpus_its_trials_would_not_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cpuonly.yaml"
    path.write_text(CPU_SPEC)
    argv = ["submit", str(path), "--slurm", "--runs-dir", str(tmp_path / "runs")]
    code = cli.main([*argv, "--", "--gres=gpu:4", "--cpus-per-task=16"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--gres=gpu:4" in err and f"resources.gpus: 0 in {path}" in err
    assert "resources.gpus: auto" in err and "--gpus-per-trial auto" in err
    # the flag that would leave them idle is named as such
    code = cli.main([*argv, "--gpus-per-trial", "0", "--", "--gpus=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "(--gpus-per-trial 0)" in err, err


def test_no_refusal_when_trials_take_a_gpu_share() -> None:
    spec = load_spec("table10")  # gpus: auto
    assert idle_gpus_problem(spec, None, ["--gres=gpu:4"]) is None
    assert idle_gpus_problem(spec, 0.5, ["--gres=gpu:4"]) is None
    assert idle_gpus_problem(spec, 0, ["--gres=gpu:4"]) is not None
    assert idle_gpus_problem(spec, 0, ["--time=1:00:00"]) is None


def test_dry_run_counts_say_seed_for_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sweep", "figure2", "--dry-run"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert "(6 cells x 1 seed)" in head, head
    assert cli.main(["sweep", "table10", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("table10: grid, 215 trials (49 cells x 5 seeds, less 30 that would")
    assert out[2].startswith("  merged: 30 trials saved")
