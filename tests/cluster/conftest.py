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
import glob
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.debian import ensure
from tests.netutil import free_ports, wait_http
from tests.procutil import Proc, descendants, kill_group, kill_now, processes

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else f"({path} is empty)"


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    bin: Path
    root: Path
    port: int
    user: str = "mlflow"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    database: str = "mlflow"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database (psycopg2 driver)."""
        return (
            f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/"
            f"{self.database}"
        )

    @property
    def dsn(self) -> str:
        """libpq connection string of the test database (for psycopg2)."""
        return (
            f"host=127.0.0.1 port={self.port} dbname={self.database} user={self.user} "
            f"password={self.password}"
        )

    @property
    def data(self) -> Path:
        return self.root / "data"


def _as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _postgres_bin() -> tuple[Path | None, str]:
    """PostgreSQL's bin folder (installing Debian's package if we may), or why not."""
    why = ensure("postgresql")
    if why:
        return None, why
    found = sorted(glob.glob(f"{PG_BIN_GLOB}/initdb"))
    if not found:
        return None, f"apt-get installed postgresql but no {PG_BIN_GLOB}/initdb"
    return Path(found[-1]).parent, ""


def _run(cmd: list[str], what: str, timeout: float = 120) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server of our own on 127.0.0.1 with database ``mlflow``."""
    pg_bin, reason = _postgres_bin()
    if pg_bin is None:
        pytest.skip(f"no PostgreSQL for the fault tests: {reason}")
    # Under /tmp, readable by the postgres user (pytest's temp folders are root-only).
    root = Path(tempfile.mkdtemp(prefix="da-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    (port,) = free_ports(1)
    pg = Postgres(pg_bin, root, port)
    pwfile = root / "pw"
    pwfile.write_text(pg.password)
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    as_pg = _as_postgres()
    started = False
    try:
        _run(
            [
                *as_pg, str(pg_bin / "initdb"), "-D", str(pg.data), "-U", "postgres",
                "-E", "UTF8", "--no-sync", "--auth-local=trust",
                "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
            ],
            "initdb",
        )  # fmt: skip
        options = (
            f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"
        )
        _run(
            [
                *as_pg, str(pg_bin / "pg_ctl"), "-D", str(pg.data), "-l", str(root / "log"),
                "-w", "-t", "60", "-o", options, "start",
            ],
            "pg_ctl start",
        )  # fmt: skip
        started = True
        _run(
            [
                *as_pg, str(pg_bin / "psql"), "-h", str(root), "-p", str(port), "-U", "postgres",
                "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                "-c", f"CREATE ROLE {pg.user} LOGIN PASSWORD '{pg.password}'",
                "-c", f"CREATE DATABASE {pg.database} OWNER {pg.user}",
            ],
            "creating the mlflow role and database",
        )  # fmt: skip
        yield pg
    finally:
        if started:
            subprocess.run(
                [*as_pg, str(pg_bin / "pg_ctl"), "-D", str(pg.data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- MLflow


class MlflowService:
    """``mlflow server`` on a fixed port of 127.0.0.1 that can be stopped and started again."""

    def __init__(self, backend: str, root: Path) -> None:
        self.backend = backend
        self.root = root
        (self.port,) = free_ports(1)
        self.log = root / "mlflow.log"
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        cmd = [
            str(VENV_BIN / "mlflow"), "server",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", self.backend,
            "--serve-artifacts", "--artifacts-destination", str(self.root / "artifacts"),
        ]  # fmt: skip
        # Background job runners are not needed and would compete for the 2 cores.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        if not wait_http(f"{self.uri}/health", timeout, self.proc):
            self.stop()
            pytest.fail(f"mlflow server did not come up on {self.uri}:\n{tail(self.log)}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, as a service manager does) and wait until it is gone."""
        if self.proc is None:
            return
        kill_group(self.proc.pid)
        self.proc.wait(timeout=30)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="session")
def mlflow_pg(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowService]:
    """``mlflow server`` backed by :func:`postgres`, serving artifacts from a temp folder.

    A test may stop and restart it; it is running again when the test ends.
    """
    service = MlflowService(postgres.url, tmp_path_factory.mktemp("mlflow-pg"))
    service.start()
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
