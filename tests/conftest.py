"""Shared fixtures: a real ``mlflow server`` process, a real local Ray, a switchable TCP relay,
headless Chromium; and how the suite is split across parallel workers.

Everything runs on 127.0.0.1 with free ports and temporary folders, and is torn down after
the session.

``make test`` runs the suite on several pytest-xdist workers. A test that shares a fixture
of its module with its neighbours, or a cluster of the session (:data:`SHARED_CLUSTERS`), runs
on the same worker as they do, so each is built once (:func:`worker_group`). Tests
start longest first (:data:`LONGEST_FIRST`), so that the long ones overlap and none is left
alone at the end. A test that needs a real service (Ray, an MLflow server, PostgreSQL,
Chromium, Slurm, a cluster) is marked ``slow``; ``make test-fast`` runs the others.
"""

from __future__ import annotations

import ast
import functools
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
from typing import Any

import pytest

from tests.browser import BrowserUnavailable, find_chromium
from tests.netutil import free_port, wait_http

# pytest puts tests/ on sys.path for this file, where tests/models and tests/dropattack would
# shadow the packages of the same name as namespace packages: the checkout goes first.
ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

VENV_BIN = Path(sys.executable).parent

#: MLflow 3's server starts a pool of job runners (GenAI evaluation jobs) that no test uses:
#: nine processes and seconds of CPU at each server start. Every server the tests start
#: inherits this.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
#: Ray would try to send usage statistics out of this machine from every Ray the tests start.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

#: Test modules that share one cluster of the session: they run on one worker, one after the
#: other, so it is built once (``ray_cluster``, ``postgres`` and ``mlflow_pg``).
SHARED_CLUSTERS = {
    "tests/cluster/test_faults.py": "ray-cluster",
    "tests/cluster/test_plan_cluster.py": "ray-cluster",
    "tests/cluster/test_scale.py": "ray-cluster",
}
#: Fixtures that start a real service: the tests using them are ``slow``.
SERVICE_FIXTURES = frozenset(
    {"ray_local", "ray_cluster", "mlflow_server", "mlflow_pg", "postgres", "chromium", "relay"}
)
#: Folders and files whose tests are all ``slow`` (clusters, Slurm, the GPU script's toy run).
SLOW_PATHS = ("tests/cluster/", "tests/test_gpu_run.py")
#: What to start first, longest first (measured on 2 cores; only the order counts, and a
#: test not listed starts after these). A stale entry costs time, never a result.
LONGEST_FIRST = (
    "tests/cluster/test_recipe.py",
    "tests/cluster/test_slurm_requeue.py",
    "tests/cluster/test_slurm.py",
    "tests/cluster/test_faults.py",
    "tests/cluster/test_plan_cluster.py",
    "tests/test_gpu_run.py",
    "tests/cluster/test_submit.py",
    "tests/cluster/test_docker_scripts.py",
    "tests/sweeps/test_own_task.py",
    "tests/sweeps/test_driver.py::test_interrupted_sweep_resumes_with_every_cell_exactly_once",
    "tests/sweeps/test_cli_sweep.py",
    "tests/sweeps/test_report_confirm.py",
    "tests/sweeps/test_mlflow_ui.py",
    "tests/sweeps/test_report_extension.py",
    "tests/sweeps/test_report_sweep.py",
    "tests/sweeps/test_plan.py",
    "tests/sweeps/test_driver.py",
    "tests/sweeps/test_report_effects.py",
    "tests/cluster/test_compose.py",
)
_LASTING_SCOPES = frozenset({"module", "package", "session"})


@functools.cache
def _has_lasting_fixture(module: str) -> bool:
    """Whether the test module defines a fixture that outlives one test (read from its source,
    as the scheduler sees only node ids)."""
    path = ROOT / module
    if not path.is_file():
        return False
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("fixture"):
            for kw in node.keywords:
                if kw.arg == "scope" and getattr(kw.value, "value", None) in _LASTING_SCOPES:
                    return True
    return False


def worker_group(nodeid: str) -> str:
    """The unit one worker runs: a shared cluster's modules, a module whose fixtures outlive a
    test, else the test alone."""
    module = nodeid.split("::")[0]
    if module in SHARED_CLUSTERS:
        return SHARED_CLUSTERS[module]
    return module if _has_lasting_fixture(module) else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Workers get whole groups (:func:`worker_group`) in collection order (longest first).

    pytest-xdist's own ``--dist loadgroup`` reads ``xdist_group`` marks through a node-id
    suffix that pytest 9.2 no longer keeps (pytest-xdist issue 1386), so the groups are made
    here, from the node ids the scheduler is given.
    """
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    config.option.loadscopereorder = False  # keep LONGEST_FIRST, not the largest group first
    return GroupScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW_PATHS) or SERVICE_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)

    def rank(item: pytest.Item) -> int:
        for i, prefix in enumerate(LONGEST_FIRST):
            if item.nodeid.startswith(prefix):
                return i
        return len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: a module's tests keep their order


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
    ray.init(
        address="local",  # its own, not another Ray running on this machine
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
    )
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
