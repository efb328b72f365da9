"""``dropattack plan --address``: calibration on a node of a real multi-node Ray (``ray start``
process groups on 127.0.0.1: a head without CPUs, two 1-CPU workers and a node that declares
a GPU to Ray although torch there sees no CUDA device, as on a misconfigured machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import RayCluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_node(ray_cluster: RayCluster) -> Iterator[RayCluster]:
    """The session's cluster, two 1-CPU workers, plus a 1-CPU node declaring one GPU (this
    machine has none) for this module's tests; the node is gone afterwards."""
    ray_cluster.ensure_workers(2)
    node = ray_cluster.add_worker(num_cpus=1, extra=["--num-gpus=1"])
    try:
        yield ray_cluster
    finally:
        ray_cluster.remove(node)


def _plan(cluster: RayCluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweeps.cli", "plan", *args, "--address", cluster.address],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cluster.env,
        timeout=600,
    )


def test_plan_calibrates_on_a_node_through_ray(gpu_node: RayCluster, tmp_path: Path) -> None:
    spec = tmp_path / "node.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "node",
                "defaults": {"task": "digits-lenet5", "epochs": 1, "train_size": 200},
                "trials": [{"method": "standard"}, {"attack": ["Input"]}],
                "seeds": [0, 1],
            }
        )
    )
    out = _plan(gpu_node, str(spec), "--budget", "30", "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["target"] == f"Ray at {gpu_node.address}"
    assert plan["concurrency"] == 3  # three 1-CPU nodes, 1 CPU a trial
    assert [s["calibrated"] for s in plan["shapes"]] == [True, True]
    assert [s["passes"] for s in plan["shapes"]] == [1, 2]
    assert all(s["peak_memory_bytes"] > 0 and s["memory"] == "resident" for s in plan["shapes"])
    # the worker's start is measured there (the task's round trip less the calibration)
    assert plan["startup_seconds"] > 0 and plan["startup_seconds"] != 4.7
    assert plan["wall_seconds"] > plan["startup_seconds"]


def test_a_node_declaring_gpus_without_cuda_is_a_one_line_error(gpu_node: RayCluster) -> None:
    out = _plan(gpu_node, "quickstart", "--gpus-per-trial", "1", "--budget", "5", "--json")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("dropattack plan: error: node ")
    assert "declares GPUs to Ray" in out.stderr and "sees no CUDA device" in out.stderr
