"""Real services on 127.0.0.1 that tests and benchmarks start: PostgreSQL and ``mlflow server``.

- :func:`postgres_server`: Debian's PostgreSQL (installed by :mod:`tests.debian` when missing
  and allowed), a fresh cluster in a temp folder on a free port, a ``mlflow`` login role
  (password authentication over TCP) owning database ``mlflow``. PostgreSQL refuses to run as
  root, so as root it runs as the ``postgres`` user.
- :class:`MlflowService`: ``mlflow server`` on a fixed free port, serving artifacts; it can be
  stopped and started again on the same port (an outage).

Failures raise :class:`ServiceError` (:class:`ServiceUnavailable` when the software is not
installed and cannot be); pytest fixtures turn them into a failure or a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.debian import ensure
from tests.netutil import free_ports, wait_http
from tests.procutil import kill_group

VENV_BIN = Path(sys.executable).parent
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


class ServiceError(RuntimeError):
    """A service did not start (its log's tail is in the message)."""


class ServiceUnavailable(ServiceError):
    """The software is missing and cannot be installed here."""


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else f"({path} is empty)"


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
        """SQLAlchemy URL of the database (psycopg2 driver)."""
        return (
            f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/"
            f"{self.database}"
        )

    @property
    def dsn(self) -> str:
        """libpq connection string of the database (for psycopg2)."""
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


def _postgres_bin() -> Path:
    why = ensure("postgresql")
    if why:
        raise ServiceUnavailable(f"no PostgreSQL: {why}")
    found = sorted(glob.glob(f"{PG_BIN_GLOB}/initdb"))
    if not found:
        raise ServiceUnavailable(f"apt-get installed postgresql but no {PG_BIN_GLOB}/initdb")
    return Path(found[-1]).parent


def _run(cmd: list[str], what: str, timeout: float = 120) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise ServiceError(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@contextlib.contextmanager
def postgres_server(max_connections: int = 100) -> Iterator[Postgres]:
    """A PostgreSQL server of our own on 127.0.0.1 with database ``mlflow``, removed after."""
    pg_bin = _postgres_bin()
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
            f"-c full_page_writes=off -c max_connections={max_connections}"
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


class MlflowService:
    """``mlflow server`` on a fixed port of 127.0.0.1 that can be stopped and started again."""

    def __init__(self, backend: str, root: Path, workers: int = 1) -> None:
        self.backend = backend
        self.root = root
        self.workers = workers
        (self.port,) = free_ports(1)
        self.log = root / "mlflow.log"
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        cmd = [
            str(VENV_BIN / "mlflow"), "server",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
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
            raise ServiceError(f"mlflow server did not come up on {self.uri}:\n{tail(self.log)}")

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
