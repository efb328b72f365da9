"""Shared fixtures: a real ``mlflow server`` process, a real local Ray, a switchable TCP relay,
headless Chromium.

Everything runs on 127.0.0.1 with free ports and temporary folders, and is torn down after
the session.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser import BrowserUnavailable, find_chromium
from tests.netutil import free_port, wait_http

# pytest puts tests/ on sys.path for this file, where tests/models and tests/dropattack would
# shadow the packages of the same name as namespace packages: the checkout goes first.
ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """Each test starts from the session's environment: an in-process command may set
    variables for its own run (``mlflow.set_tracking_uri`` sets ``MLFLOW_TRACKING_URI``), and a
    later test, in any order or worker, must not inherit them."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        if os.environ != saved:
            os.environ.clear()
            os.environ.update(saved)


@dataclass
class MlflowServer:
    uri: str
    root: Path
    process: subprocess.Popen


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` on 127.0.0.1 (sqlite backend, served artifacts in a temp folder)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    cmd = [
        str(VENV_BIN / "mlflow"), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
        "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        if not wait_http(f"{uri}/health", 120, proc):
            tail = (root / "server.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"mlflow server did not come up on {uri}:\n{tail}")
        yield MlflowServer(uri, root, proc)
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium, installed with apt-get when missing (see tests/browser.py)."""
    try:
        return find_chromium()
    except BrowserUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def ray_local() -> Iterator[str]:
    """A real local Ray with 2 CPUs for the session; yields its GCS address."""
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


class Relay:
    """A TCP relay to a real server that can be switched off (connections refused) and on."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        if self._listener is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.2)
        self._listener = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._listener is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self._listener = None

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            a.close()
            b.close()


@pytest.fixture
def relay(mlflow_server: MlflowServer) -> Iterator[Relay]:
    """A switchable relay in front of the session's mlflow server (starts up)."""
    r = Relay(int(mlflow_server.uri.rsplit(":", 1)[1]))
    r.up()
    try:
        yield r
    finally:
        r.down()
