"""Real services for the fault tests: PostgreSQL, ``mlflow server`` on it, a multi-node Ray.

- :func:`postgres`: Debian's PostgreSQL (``apt-get install postgresql`` when it is missing and
  we may install it), a fresh cluster in a temp folder listening on 127.0.0.1 with a free
  port, a ``mlflow`` login role (password authentication over TCP) owning database ``mlflow``.
  PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user.
- :func:`mlflow_pg`: ``mlflow server`` with that database as its backend store and served
  artifacts; :class:`MlflowService` stops and restarts it on the same port (an outage).
- :func:`ray_cluster`: a Ray head (no CPUs: trials only run on workers) and two worker nodes,
  each its own ``ray start`` process group with its own ports, so one node can be killed with
  SIGKILL like a machine that dies. Token authentication is on, as in docker-compose.yml.

Every process is stopped by its process id or group, never by ``ray stop`` (which would stop
every Ray on the machine, other tests' included).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netutil import free_ports
from tests.procutil import Proc, descendants, kill_group, kill_now, processes
from tests.services import (
    MlflowService,
    Postgres,
    ServiceError,
    ServiceUnavailable,
    postgres_server,
    tail,
)

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server of our own on 127.0.0.1 with database ``mlflow``."""
    try:
        with postgres_server() as pg:
            yield pg
    except ServiceUnavailable as e:
        pytest.skip(f"for the fault tests: {e}")
    except ServiceError as e:
        pytest.fail(str(e))


# --------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="session")
def mlflow_pg(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowService]:
    """``mlflow server`` backed by :func:`postgres`, serving artifacts from a temp folder.

    A test may stop and restart it; it is running again when the test ends.
    """
    service = MlflowService(postgres.url, tmp_path_factory.mktemp("mlflow-pg"))
    try:
        service.start()
    except ServiceError as e:
        pytest.fail(str(e))
    try:
        yield service
    finally:
        service.stop()


# --------------------------------------------------------------------------- Ray


@dataclass
class RayNode:
    name: str
    pgid: int  # the `ray start` process group: raylet, agents (and GCS on the head)
    log: Path

    def raylet(self, table: dict[int, Proc] | None = None) -> int | None:
        table = processes() if table is None else table
        for p in table.values():
            if p.pgid == self.pgid and p.state != "Z" and "raylet/raylet" in p.cmdline:
                return p.pid
        return None

    def trial_processes(self) -> list[int]:
        """Tune trial workers busy on this node (Ray workers are the raylet's children, in
        process groups of their own)."""
        table = processes()
        raylet = self.raylet(table)
        if raylet is None:
            return []
        return [
            pid
            for pid in descendants(raylet, table)
            if "ImplicitFunc.train" in table[pid].cmdline and table[pid].state != "Z"
        ]


class RayCluster:
    """A Ray head and worker nodes on 127.0.0.1, each a ``ray start`` process group."""

    def __init__(self, temp: Path) -> None:
        self.temp = temp
        self.token = secrets.token_urlsafe(24)
        (self.gcs_port,) = free_ports(1)
        self.head: RayNode | None = None
        self.workers: list[RayNode] = []
        self._count = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for Ray's processes and for drivers that connect to this cluster."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONPATH=str(ROOT),
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=self.token,
            RAY_USAGE_STATS_ENABLED="0",
            RAY_AIR_NEW_OUTPUT="0",
        )
        return env

    def _start(self, name: str, args: list[str]) -> RayNode:
        node_manager, obj, metrics, agent, agent_grpc, env_agent = free_ports(6)
        cmd = [
            str(VENV_BIN / "ray"), "start", "--node-ip-address=127.0.0.1",
            f"--node-manager-port={node_manager}", f"--object-manager-port={obj}",
            f"--metrics-export-port={metrics}", f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={env_agent}",
            "--num-gpus=0", "--object-store-memory=100000000", "--disable-usage-stats", *args,
        ]  # fmt: skip
        log = self.temp / f"{name}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
                start_new_session=True,
            )  # fmt: skip
        node = RayNode(name, proc.pid, log)
        try:
            code = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0 or node.raylet() is None:
            kill_group(node.pgid, grace=2)
            pytest.fail(f"ray start ({name}) failed ({code}):\n{tail(log)}")
        return node

    def start_head(self) -> None:
        (dashboard,) = free_ports(1)
        self.head = self._start(
            "head",
            [
                "--head", f"--port={self.gcs_port}", "--num-cpus=0",
                "--include-dashboard=false", "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard}", f"--temp-dir={self.temp}",
            ],
        )  # fmt: skip

    def add_worker(self, num_cpus: int = 1, extra: Sequence[str] = ()) -> RayNode:
        self._count += 1
        node = self._start(
            f"worker{self._count}",
            [f"--address={self.address}", f"--num-cpus={num_cpus}", *extra],
        )
        self.workers.append(node)
        return node

    def remove(self, node: RayNode) -> None:
        """Stop a worker node (a test's own, on the shared cluster) and forget it."""
        self.kill(node)
        self.workers = [w for w in self.workers if w is not node]

    def live_workers(self) -> list[RayNode]:
        table = processes()
        return [w for w in self.workers if w.raylet(table) is not None]

    def ensure_workers(self, n: int) -> list[RayNode]:
        """Start workers until ``n`` are alive (after a test killed one)."""
        self.workers = self.live_workers()
        while len(self.workers) < n:
            self.add_worker()
        return list(self.workers)

    def kill(self, node: RayNode) -> list[int]:
        """SIGKILL a node like a machine that dies: its raylet, agents and every worker
        process (trials included). Returns the killed trial process ids."""
        table = processes()
        raylet = node.raylet(table)
        below = descendants(raylet, table) if raylet is not None else []
        trials = [pid for pid in below if "ImplicitFunc" in table[pid].cmdline]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pgid, signal.SIGKILL)
        kill_now(below)
        return trials

    def shutdown(self) -> None:
        nodes = [*self.workers, *([self.head] if self.head else [])]
        for node in nodes:
            raylet = node.raylet()
            below = descendants(raylet) if raylet is not None else []
            kill_group(node.pgid, grace=5)
            kill_now(below)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A Ray head (0 CPUs) and two 1-CPU worker nodes on 127.0.0.1, one for the session (the
    tests using it run on one worker: ``SHARED_FIXTURES`` in tests/conftest.py); tests that
    kill a worker get a fresh one by :meth:`RayCluster.ensure_workers`."""
    if not Path("/proc/self/stat").is_file():
        pytest.skip("the fault tests find Ray's processes in /proc, which this system lacks")
    # Short path: Ray's unix sockets live under it (107-character limit).
    temp = Path(tempfile.mkdtemp(prefix="da-ray-", dir="/tmp"))
    cluster = RayCluster(temp)
    try:
        cluster.start_head()
        cluster.ensure_workers(2)
        yield cluster
    finally:
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
