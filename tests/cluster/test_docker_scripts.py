"""The compose stack's entry points, run here: docker/mlflow_server.py (with a real
``mlflow server --app-name basic-auth``) and docker/minio-init.sh (with a recording ``mc``)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

from tests.netutil import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
VENV_BIN = Path(sys.executable).parent


def load_mlflow_server():
    spec = importlib.util.spec_from_file_location("mlflow_server", DOCKER / "mlflow_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BASE_ENV = {
    "POSTGRES_USER": "ml flow",
    "POSTGRES_PASSWORD": "p@ss%w:rd/1-long-enough",
    "POSTGRES_DB": "mlflow",
    "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "a-long-admin-password",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-key-" + "k" * 32,
}


def test_backend_uri_encodes_credentials() -> None:
    ms = load_mlflow_server()
    uri = ms.backend_uri(BASE_ENV)
    assert uri == (
        "postgresql+psycopg2://ml%20flow:p%40ss%25w%3Ard%2F1-long-enough@postgres:5432/mlflow"
    )
    from sqlalchemy.engine import make_url

    url = make_url(uri)  # what MLflow's SQLAlchemy store parses
    assert (url.username, url.password, url.host, url.database) == (
        "ml flow",
        "p@ss%w:rd/1-long-enough",
        "postgres",
        "mlflow",
    )
    assert ms.backend_uri({**BASE_ENV, "MLFLOW_BACKEND_STORE_URI": "sqlite:///x.db"}) == (
        "sqlite:///x.db"
    )


def test_auth_ini_is_private_and_read_back_by_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    ms = load_mlflow_server()
    env = ms.prepare(dict(BASE_ENV))
    path = Path(env["MLFLOW_AUTH_CONFIG_PATH"])
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert env["MLFLOW_BACKEND_STORE_URI"] == ms.backend_uri(BASE_ENV)
        from mlflow.server.auth.config import read_auth_config

        monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(path))
        for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
            monkeypatch.delenv(name, raising=False)  # read them from the file
        config = read_auth_config()
        assert config.database_uri == env["MLFLOW_BACKEND_STORE_URI"]  # '%' survives
        assert config.admin_username == "admin"
        assert config.admin_password == "a-long-admin-password"
        assert config.default_permission == "READ"
    finally:
        path.unlink()
        path.parent.rmdir()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MLFLOW_AUTH_ADMIN_PASSWORD": ""}, "MLFLOW_AUTH_ADMIN_PASSWORD is not set"),
        ({"POSTGRES_PASSWORD": ""}, "POSTGRES_PASSWORD is not set"),
        ({"POSTGRES_PASSWORD": "changeme-postgres-password"}, "POSTGRES_PASSWORD still has"),
        ({"AWS_SECRET_ACCESS_KEY": "changeme-x"}, "MLFLOW_S3_SECRET_KEY still has"),
        ({"MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 31}, "SECRET_KEY has 31 characters, at least 32"),
        ({"MLFLOW_AUTH_ADMIN_PASSWORD": "short-pw"}, "MLFLOW_ADMIN_PASSWORD has 8 characters"),
        ({"MLFLOW_SWEEP_USERNAME": "sweeps"}, "set both MLFLOW_SWEEP_USERNAME and"),
        (
            {"MLFLOW_SWEEP_USERNAME": "s", "MLFLOW_SWEEP_PASSWORD": "changeme-mlflow-sweep-pw"},
            "MLFLOW_SWEEP_PASSWORD still has",
        ),
    ],
)
def test_refuses_missing_and_placeholder_secrets(change: dict, message: str) -> None:
    env = {**BASE_ENV, **change}
    done = subprocess.run(
        [sys.executable, str(DOCKER / "mlflow_server.py"), "--port", "1"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("mlflow-server: ") and message in done.stderr


def get(url: str, auth: tuple[str, str] | None = None, host: str | None = None) -> int:
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + b64encode(":".join(auth).encode()).decode()
    if host:
        headers["Host"] = host
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_real_mlflow_server_behind_basic_auth(tmp_path: Path) -> None:
    """The entry point starts ``mlflow server --app-name basic-auth`` (sqlite here instead
    of Postgres): health is open, the API needs the admin's password, unknown Host headers
    are refused, and the compose stack's ``mlflow:5000`` is accepted."""
    pytest.importorskip("flask_wtf", reason="mlflow basic auth needs mlflow[auth] (Flask-WTF)")
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    allowed = compose["services"]["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"]
    allowed = allowed.split(":-", 1)[1].rstrip("}")
    port = free_port()
    password = "p%ss w:rd@1-long-enough"
    sweep_password = "sweep-password-long-enough"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        **BASE_ENV,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "MLFLOW_SERVER_ALLOWED_HOSTS": allowed,
        "MLFLOW_SWEEP_USERNAME": "sweeps",
        "MLFLOW_SWEEP_PASSWORD": sweep_password,
    }
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    cmd = [
        sys.executable,
        str(DOCKER / "mlflow_server.py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--serve-artifacts",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
        "--app-name",
        "basic-auth",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    api = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        deadline = time.monotonic() + 120
        while get_or_none(f"{base}/health") != 200:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not come up"
            time.sleep(0.5)
        assert get(api) == 401
        assert get(api, ("admin", "wrong-password")) == 401
        assert get(api, ("admin", password)) == 200
        assert get(api, ("admin", password), host="mlflow:5000") == 200
        assert get(api, ("admin", password), host="attacker.example") == 403
        _sweep_account_edits_its_runs_and_nothing_else(base, ("sweeps", sweep_password), tmp_path)
        assert get(api, ("sweeps", "wrong-password-long")) == 401
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        log.close()


def post(url: str, body: dict, auth: tuple[str, str]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + b64encode(":".join(auth).encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _sweep_account_edits_its_runs_and_nothing_else(
    base: str, auth: tuple[str, str], tmp_path: Path
) -> None:
    """What the Ray nodes do as the sweep account, in a child process with its credentials
    in the environment (as on a node): create the sweep's experiment, a run, its metrics and
    an artifact through the server. It is no admin: user management is refused."""
    script = (
        "import sys, mlflow; c = mlflow.MlflowClient(sys.argv[1]); "
        "e = c.create_experiment('sweep-by-nodes'); r = c.create_run(e).info.run_id; "
        "c.log_metric(r, 'val_acc', 0.5); c.log_param(r, 'eps', '1'); "
        "c.log_text(r, 'hello', 'note.txt'); c.set_terminated(r); "
        "print(c.get_run(r).data.metrics['val_acc'], c.list_artifacts(r)[0].path)"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_USERNAME": auth[0],
        "MLFLOW_TRACKING_PASSWORD": auth[1],
    }
    done = subprocess.run(
        [sys.executable, "-c", script, base], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].split() == ["0.5", "note.txt"]
    users = f"{base}/api/2.0/mlflow/users"
    assert post(f"{users}/create", {"username": "eve", "password": "x" * 20}, auth) == 403
    assert get(f"{users}/get?username=admin", auth) == 403
    assert post(f"{users}/update-admin", {"username": auth[0], "is_admin": True}, auth) == 403


def get_or_none(url: str) -> int | None:
    try:
        return get(url)
    except OSError:
        return None


# --------------------------------------------------------------------------- minio-init


MINIO_ENV = {
    "MINIO_ROOT_USER": "root",
    "MINIO_ROOT_PASSWORD": "root-password",
    "MLFLOW_BUCKET": "mlflow",
    "MLFLOW_S3_ACCESS_KEY": "mlflow-artifacts",
    "MLFLOW_S3_SECRET_KEY": "s3-secret",
}


def run_init(tmp_path: Path, attach: str = "ok", **env: str) -> subprocess.CompletedProcess:
    """Run minio-init.sh with a stand-in ``mc`` that records each call (and the policy)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    mc = bin_dir / "mc"
    mc.write_text(
        "#!/bin/sh\n"
        'echo "$*" >> "$MC_LOG"\n'
        'echo "${MC_HOST_local:-}" >> "$MC_LOG.host"\n'
        'if [ "$2 $3" = "user add" ]; then cat > "$MC_LOG.stdin"; fi\n'
        'if [ "$2 $3" = "policy create" ]; then cp "$6" "$MC_LOG.policy"; fi\n'
        'if [ "$2 $3" = "policy attach" ]; then\n'
        '  case "$MC_ATTACH" in\n'
        "    ok) exit 0 ;;\n"
        '    again) echo "mc: <ERROR> The specified policy change is already in effect." >&2;'
        " exit 1 ;;\n"
        '    *) echo "mc: <ERROR> Unable to connect" >&2; exit 1 ;;\n'
        "  esac\n"
        "fi\n"
    )
    mc.chmod(0o755)
    full = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "MC_LOG": str(tmp_path / "mc.log"),
        "MC_ATTACH": attach,
        **MINIO_ENV,
        **env,
    }
    return subprocess.run(
        ["sh", str(DOCKER / "minio-init.sh")], env=full, capture_output=True, text=True, timeout=30
    )


def test_minio_init_creates_bucket_and_scoped_user(tmp_path: Path) -> None:
    done = run_init(tmp_path)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "mc.log").read_text().splitlines()
    assert calls[0] == "mb --ignore-existing local/mlflow"
    assert calls[1].startswith("admin policy create local mlflow-artifacts ")
    assert calls[2] == "admin user add local mlflow-artifacts"
    assert calls[3] == "admin policy attach local mlflow-artifacts --user mlflow-artifacts"
    # secrets by environment and stdin, never as arguments (world-readable in /proc)
    for secret in (MINIO_ENV["MINIO_ROOT_PASSWORD"], MINIO_ENV["MLFLOW_S3_SECRET_KEY"]):
        assert all(secret not in call for call in calls), secret
    hosts = set((tmp_path / "mc.log.host").read_text().splitlines())
    assert hosts == {"http://root:root-password@minio:9000"}
    assert (tmp_path / "mc.log.stdin").read_text() == "s3-secret\n"
    policy = json.loads((tmp_path / "mc.log.policy").read_text())
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert resources == {"arn:aws:s3:::mlflow", "arn:aws:s3:::mlflow/*"}


def test_minio_init_runs_again_and_reports_real_errors(tmp_path: Path) -> None:
    again = run_init(tmp_path, attach="again")
    assert again.returncode == 0, again.stderr
    broken = run_init(tmp_path, attach="broken")
    assert broken.returncode == 1 and "Unable to connect" in broken.stderr
    missing = run_init(tmp_path, MLFLOW_S3_SECRET_KEY="")
    assert missing.returncode != 0 and "MLFLOW_S3_SECRET_KEY" in missing.stderr
    colon = run_init(tmp_path, MINIO_ROOT_PASSWORD="pass:word")
    assert colon.returncode == 2 and "MINIO_ROOT_PASSWORD may not contain ':'" in colon.stderr
