"""Ray Jobs: send a sweep to a Ray cluster as a job, then follow, read and stop it.

``dropattack submit`` and ``dropattack jobs`` are thin wrappers around this module. A sweep
job runs ``python -m sweeps.cli sweep SPEC --address auto ...`` on the cluster's head node,
so the driver sits next to the cluster and survives the laptop that submitted it going away.
Its runtime environment ships the project folder (``working_dir``, minus :data:`EXCLUDES`)
so the cluster runs exactly the code that was submitted; the image already holds the
dependencies, and ``pip`` adds any that it lacks.

Defaults match ``docker-compose.yml`` (the tests compare them): the job API on
``http://127.0.0.1:8265`` (the head's port, published on localhost only), the Ray client on
``ray://127.0.0.1:10001`` and MLflow at ``http://mlflow:5000`` as seen from inside the cluster.
A Ray started with token authentication (``RAY_AUTH_MODE=token``, as the compose stack is)
needs the token: it is read from ``RAY_AUTH_TOKEN`` or the file named by
``RAY_AUTH_TOKEN_PATH`` and sent as a bearer header, never printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sweeps.cluster.redact import redact_uri, uri_credentials
from sweeps.records.credentials import (
    FORWARDABLE,
    SEALED_ENV,
    TOKEN_ENV,
    TOKEN_PATH_ENV,
    CredentialError,
    ray_token,
    seal,
)

__all__ = [
    "ADDRESS_ENV",
    "CLUSTER_MLFLOW_URI",
    "DEFAULT_ADDRESS",
    "DEFAULT_CLIENT_ADDRESS",
    "DEFAULT_CLIENT_PORT",
    "DEFAULT_JOB_PORT",
    "EXCLUDES",
    "FORWARDED_ENV",
    "RUNS_DIR_ENV",
    "TERMINAL",
    "ClusterError",
    "JobState",
    "SweepArgs",
    "auth_headers",
    "check_auth_enforced",
    "check_reachable",
    "default_address",
    "follow_logs",
    "job_logs",
    "job_status",
    "list_jobs",
    "local_excludes",
    "nocase",
    "normalize_address",
    "project_root",
    "read_requirements",
    "runtime_env",
    "spec_argument",
    "stop_job",
    "submit",
    "submit_job",
    "task_modules",
    "sweep_entrypoint",
    "wait_for",
]

DEFAULT_JOB_PORT = 8265
DEFAULT_CLIENT_PORT = 10001
DEFAULT_ADDRESS = f"http://127.0.0.1:{DEFAULT_JOB_PORT}"
DEFAULT_CLIENT_ADDRESS = f"ray://127.0.0.1:{DEFAULT_CLIENT_PORT}"
# Ray's own job CLI reads the first, older tools the second (when it is an http address).
ADDRESS_ENV = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
CLUSTER_MLFLOW_URI = "http://mlflow:5000"
# Where the cluster keeps sweep state (Tune experiments, Optuna studies): a folder every node
# sees at the same path; the compose stack sets it to a volume shared by head and workers.
RUNS_DIR_ENV = "DROPATTACK_RUNS_DIR"
# Forwarded to the job only when asked (--forward-mlflow-credentials), and then sealed.
FORWARDED_ENV = FORWARDABLE
# Never shipped to the cluster: environments, local results, caches and secrets. Each is a
# name (a file or folder at any depth) or a glob of one, matched without regard to case.
EXCLUDES = (
    ".git",
    ".venv",
    "venv",
    "runs",
    "mlruns",
    "mlartifacts",
    "build",
    "dist",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".env",
    ".env.*",
    ".envrc",
    ".netrc",
    ".aws",
    ".ssh",
    ".pypirc",
    ".git-credentials",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    # keys, tool credentials and environment files
    ".env*",
    "*.env",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.ppk",
    ".gnupg",
    ".pgpass",
    ".ray",
    ".mlflow",
    ".kube",
    ".docker",
    "credentials*.json",
)
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
CONNECT_TIMEOUT_S = 5.0


class ClusterError(RuntimeError):
    """The cluster cannot be reached, refuses us, or does not know the job."""


@dataclass(frozen=True)
class JobState:
    """What the job API says about one job (never its runtime env, which may hold secrets)."""

    job_id: str
    status: str
    entrypoint: str
    message: str = ""
    start_time: float | None = None  # seconds since the epoch
    end_time: float | None = None
    metadata: Mapping[str, str] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "entrypoint": self.entrypoint,
            "message": self.message,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "metadata": dict(self.metadata or {}),
        }


@dataclass(frozen=True)
class SweepArgs:
    """``dropattack sweep`` flags passed through to the job (``None``: the sweep's default)."""

    experiment: str | None = None
    resume: bool = False
    max_concurrent: int | None = None
    gpus_per_trial: float | str | None = None  # a share, or "auto"
    runs_dir: str | None = None  # None: $DROPATTACK_RUNS_DIR on the cluster, else ./runs
    dry_run: bool = False
    data_dir: str | None = None  # the data root on the cluster (None: its $DROPATTACK_DATA)


# --------------------------------------------------------------------------- addresses


def default_address() -> str:
    """``$RAY_API_SERVER_ADDRESS``, an http ``$RAY_ADDRESS``, else :data:`DEFAULT_ADDRESS`."""
    for name in ADDRESS_ENV:
        value = os.environ.get(name, "").strip()
        if value and (name == ADDRESS_ENV[0] or value.startswith(("http://", "https://"))):
            return value
    return DEFAULT_ADDRESS


def normalize_address(address: str | None) -> str:
    """The job API address as ``http(s)://HOST[:PORT]``; ``HOST:PORT`` means http.

    Raises:
        ValueError: a ``ray://`` or other non-HTTP address, or one without a host.
    """
    raw = (address or default_address()).strip().rstrip("/")
    if uri_credentials(raw) is not None:
        raise ValueError(
            f"--address: credentials in the URI (user:password@) would be recorded; pass the "
            f"Ray token in {TOKEN_ENV} instead ({redact_uri(raw)})"
        )
    if raw.startswith("ray://"):
        raise ValueError(
            f"--address: {raw} is a Ray client address; jobs go to the job API, "
            f"http://HOST:{DEFAULT_JOB_PORT} (ray://HOST:{DEFAULT_CLIENT_PORT} is for "
            "`dropattack sweep --address`)"
        )
    url = raw if "://" in raw else f"http://{raw}"
    parsed = urlparse(url)
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"--address: bad port in {raw!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"--address: expected the Ray job API as http://HOST:{DEFAULT_JOB_PORT}, got {raw!r}"
        )
    return url


def auth_headers() -> dict[str, str]:
    """A bearer header from ``$RAY_AUTH_TOKEN`` or the file ``$RAY_AUTH_TOKEN_PATH``, else {}.

    Raises:
        ValueError: ``RAY_AUTH_TOKEN_PATH`` names a file that cannot be read or is empty.
    """
    token = ray_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """GET ``/api/version`` within ``timeout`` seconds; returns the cluster's Ray version.

    Ray's own client waits without a limit on a host that does not answer; this fails fast
    with one line that names the address.

    Raises:
        ClusterError: nothing answers, the answer is not Ray's job API, or the token is
            missing or wrong.
    """
    request = urllib.request.Request(f"{address}/api/version", headers=auth_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        if e.code == 401:
            raise ClusterError(
                f"the Ray job API at {address} requires a token: set {TOKEN_ENV} "
                "(the cluster's value, RAY_AUTH_TOKEN in its .env)"
            ) from None
        if e.code == 403:
            raise ClusterError(
                f"the Ray job API at {address} rejected the token in {TOKEN_ENV} "
                f"(or ${TOKEN_PATH_ENV})"
            ) from None
        raise ClusterError(
            f"{address} is not a Ray job API: GET /api/version answered HTTP {e.code}"
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        reason = getattr(reason, "strerror", None) or str(reason)
        raise ClusterError(
            f"cannot reach the Ray job API at {address}: {reason} (is the head running, "
            "or the SSH tunnel open?)"
        ) from None
    try:
        return str(json.loads(body)["ray_version"])
    except (ValueError, KeyError, TypeError):
        raise ClusterError(
            f"{address} is not a Ray job API: GET /api/version returned no ray_version"
        ) from None


def check_auth_enforced(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Ask ``/api/version`` without a token: a job API that answers runs anyone's code.

    Ray enforces ``RAY_AUTH_MODE=token`` only from 2.52; an older head, or one started
    without the mode, answers everyone. Jobs are not sent to such a cluster.

    Raises:
        ClusterError: the job API answered a request that carried no token.
    """
    try:
        with urllib.request.urlopen(f"{address}/api/version", timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            return
        status = e.code
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ClusterError(f"cannot reach the Ray job API at {address}: {reason}") from None
    raise ClusterError(
        f"the Ray job API at {address} answered a request without a token (HTTP {status}): "
        "authentication is off, so anyone who reaches it can run code on the cluster. Start "
        "the head with Ray >= 2.52 and RAY_AUTH_MODE=token RAY_AUTH_TOKEN=... (docs/cluster.md)"
    )


def _client(address: str | None) -> tuple[str, Any]:
    """The normalized address and a job client for it, after a fast reachability check."""
    from ray.job_submission import JobSubmissionClient

    url = normalize_address(address)
    check_reachable(url)
    try:
        return url, JobSubmissionClient(url, headers=auth_headers())
    except (ConnectionError, RuntimeError) as e:
        raise ClusterError(f"Ray job API at {url}: {_first_line(e)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _call(url: str, job_id: str, fn: Callable[[], Any]) -> Any:
    """Run one SDK call; a missing job or a failed request becomes one ClusterError line."""
    try:
        return fn()
    except RuntimeError as e:
        text = str(e)
        if "404" in text or "does not exist" in text:
            raise ClusterError(f"no job {job_id!r} on {url}") from None
        raise ClusterError(f"job {job_id} on {url}: {_first_line(e)}") from None
    except ConnectionError as e:
        raise ClusterError(f"lost the Ray job API at {url}: {_first_line(e)}") from None


# --------------------------------------------------------------------------- runtime env


def project_root() -> Path:
    """The folder holding ``pyproject.toml`` and the ``sweeps`` package (shipped to jobs).

    Raises:
        ValueError: the package is installed without its project folder.
    """
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise ValueError(f"{root} is not a project folder (no pyproject.toml); pass --working-dir")
    return root


def _excluded(relative: Path) -> str | None:
    for part in relative.parts:
        for pattern in EXCLUDES:
            if fnmatch(part.lower(), pattern.lower()):
                return pattern
    return None


def nocase(pattern: str) -> str:
    """A gitignore pattern (Ray's ``excludes``) that matches ``pattern`` in any case."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in pattern)


def _pattern(relative: Path) -> str:
    """A gitignore pattern (Ray's ``excludes``) for exactly this path under the root."""
    text = relative.as_posix()
    for ch in "\\*?[]":
        text = text.replace(ch, "\\" + ch)
    return "/" + (text[:-1] + "\\ " if text.endswith(" ") else text)


def local_excludes(folder: Path) -> list[tuple[str, Path]]:
    """Symbolic links under ``folder`` (outside :data:`EXCLUDES`) that lead out of it, or to
    something :data:`EXCLUDES` keeps back, as ``(pattern, link)``: Ray's packager follows
    links, which would ship their targets."""
    root = folder.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if _excluded(here.relative_to(root) / d) is None]
        for name in sorted(dirnames + filenames):
            path = here / name
            if not path.is_symlink() or _excluded(path.relative_to(root)) is not None:
                continue
            try:
                target = path.resolve(strict=False)
                inside = target == root or target.is_relative_to(root)
                if inside and _excluded(target.relative_to(root)) is not None:
                    inside = False  # a link to a file that is not shipped
            except (OSError, RuntimeError):  # a loop of links
                inside = False
            if not inside:
                found.append((_pattern(path.relative_to(root)), path))
    return found


def runtime_env(
    working_dir: str | Path,
    pip: Sequence[str] = (),
    env_vars: Mapping[str, str] | None = None,
    *,
    forward_credentials: bool = False,
    py_modules: Sequence[str] = (),
) -> dict[str, Any]:
    """The job's runtime env: ``working_dir`` minus :data:`EXCLUDES` and the links that lead
    out of it, optional pip packages, ``py_modules`` (the user's task packages that live
    outside ``working_dir``: :func:`task_modules`) and ``env_vars``.

    With ``forward_credentials``, this process's :data:`FORWARDED_ENV` (those set) travel
    sealed under the Ray token (:mod:`sweeps.records.credentials`); they never appear in clear.

    Raises:
        ValueError: ``working_dir`` is not a folder, ``env_vars`` holds MLflow credentials,
            or forwarding is asked without a Ray token.
    """
    folder = Path(working_dir).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"--working-dir: {working_dir} is not a folder")
    excludes = [nocase(p) for p in EXCLUDES] + [pattern for pattern, _ in local_excludes(folder)]
    env: dict[str, Any] = {"working_dir": str(folder), "excludes": excludes}
    for package in pip:
        for word in package.split():
            if uri_credentials(word) is not None:
                raise ValueError(
                    f"--pip/--requirements: {redact_uri(word)} holds credentials, which the "
                    "job record would keep in clear; give the cluster's pip its login instead "
                    "(a netrc or pip.conf on the nodes)"
                )
    if pip:
        env["pip"] = list(pip)
    if py_modules:
        env["py_modules"] = list(py_modules)
    extra = dict(env_vars or {})
    clear = sorted(set(extra) & set(FORWARDED_ENV))
    if clear:
        raise ValueError(
            f"{', '.join(clear)} would be stored in clear in the job record and node logs; "
            "forward them with --forward-mlflow-credentials (sealed under the Ray token)"
        )
    if forward_credentials:
        login = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
        if not login:
            raise ValueError(
                "--forward-mlflow-credentials: set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD here first"
            )
        try:
            extra[SEALED_ENV] = seal(login, ray_token())
        except CredentialError as e:
            raise ValueError(f"--forward-mlflow-credentials: {e}") from None
    if extra:
        env["env_vars"] = extra
    return env


def read_requirements(path: str | Path) -> list[str]:
    """Package lines of a requirements file (comments and blank lines dropped).

    Raises:
        ValueError: the file cannot be read, or it uses options (``-r``, ``-e``, ``--...``)
            that a runtime env's ``pip`` list cannot take.
    """
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise ValueError(f"--requirements {path}: cannot read: {e.strerror}") from None
    packages = []
    for number, line in enumerate(lines, 1):
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("-"):
            raise ValueError(
                f"--requirements {path}:{number}: {text!r}: only package requirements are "
                "supported, not pip options"
            )
        packages.append(text)
    return packages


def spec_argument(spec: str, working_dir: str | Path) -> str:
    """How the job names ``spec``: a shipped name as is, a file as its path inside
    ``working_dir`` (the job runs there), so a local spec travels with the code.

    Raises:
        ValueError: the file is outside ``working_dir`` or in a part that is not shipped.
        FileNotFoundError: the file does not exist.
    """
    from sweeps.specs.spec import SPEC_DIR, spec_names

    path = Path(spec)
    looks_like_file = path.suffix in (".yaml", ".yml") or path.parent != Path(".")
    if not looks_like_file and not path.exists():
        if spec not in spec_names():
            raise ValueError(
                f"unknown spec {spec!r}; expected a path to a YAML file or one of: "
                f"{', '.join(spec_names())}"
            )
        return spec
    if not path.is_file():
        raise FileNotFoundError(f"{spec}: no such spec file")
    root = Path(working_dir).expanduser().resolve()
    resolved = path.resolve()
    if resolved.parent == SPEC_DIR.resolve() and resolved.stem in spec_names():
        return resolved.stem
    try:
        relative = resolved.relative_to(root)
    except ValueError:
        raise ValueError(
            f"{spec}: the job runs in a copy of {root} and cannot see this file; "
            "put the spec inside that folder or pass --working-dir"
        ) from None
    pattern = _excluded(relative)
    if pattern is not None:
        raise ValueError(
            f"{spec}: {relative} is not shipped to the cluster (excluded by {pattern!r}); "
            "move the spec elsewhere in the project"
        )
    return relative.as_posix()


def _check_tracking_uri(uri: str) -> None:
    if uri_credentials(uri) is not None:
        raise ValueError(
            "--mlflow-uri: credentials in the URI (user:password@) would be stored in the job "
            "record; the nodes log in with their own account (or --forward-mlflow-credentials)"
        )
    if urlparse(uri).scheme not in ("http", "https"):
        raise ValueError(
            f"--mlflow-uri: trials on a cluster log to a tracking server every node can "
            f"reach (http://HOST:PORT), got {uri!r}"
        )


def sweep_entrypoint(spec_arg: str, mlflow_uri: str, args: SweepArgs = SweepArgs()) -> str:
    """The shell command the job runs on the head node (Ray runs entrypoints with ``sh -c``).

    Raises:
        ValueError: ``mlflow_uri`` is not an http(s) tracking server.
    """
    _check_tracking_uri(mlflow_uri)
    words = ["python", "-m", "sweeps.cli", "sweep", spec_arg, "--address", "auto"]
    words += ["--mlflow-uri", mlflow_uri, "--no-live"]
    if args.experiment:
        words += ["--experiment", args.experiment]
    if args.resume:
        words.append("--resume")
    if args.max_concurrent is not None:
        words += ["--max-concurrent", str(args.max_concurrent)]
    if args.gpus_per_trial is not None:
        share = args.gpus_per_trial
        words += ["--gpus-per-trial", share if isinstance(share, str) else f"{share:g}"]
    if args.data_dir:
        words += ["--data-dir", args.data_dir]
    if args.dry_run:
        words.append("--dry-run")
    command = shlex.join(words)
    if args.runs_dir is not None:
        return f"{command} --runs-dir {shlex.quote(args.runs_dir)}"
    # Expanded by the head's shell: the cluster knows its shared folder, the laptop does not.
    return f'{command} --runs-dir "${{{RUNS_DIR_ENV}:-runs}}"'


# --------------------------------------------------------------------------- jobs


def submit_job(
    entrypoint: str,
    *,
    address: str | None = None,
    working_dir: str | Path | None = None,
    pip: Sequence[str] = (),
    env_vars: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
    submission_id: str | None = None,
    forward_credentials: bool = False,
    py_modules: Sequence[str] = (),
) -> str:
    """Submit ``entrypoint`` with the project folder (or ``working_dir``) as its runtime env,
    to a cluster that refuses requests without its token (:func:`check_auth_enforced`).

    Returns:
        The job's submission id.

    Raises:
        ClusterError: the job API is unreachable, refuses the token, answers without one,
            or rejects the job.
        ValueError: bad address or working folder.
    """
    env = runtime_env(
        working_dir or project_root(),
        pip,
        env_vars,
        forward_credentials=forward_credentials,
        py_modules=py_modules,
    )
    url, client = _client(address)
    check_auth_enforced(url)
    try:
        return client.submit_job(
            entrypoint=entrypoint,
            runtime_env=env,
            metadata=dict(metadata or {}),
            submission_id=submission_id,
        )
    except (RuntimeError, ValueError, ConnectionError) as e:
        raise ClusterError(f"Ray job API at {url} refused the job: {_first_line(e)}") from None


def submit(
    spec: str,
    *,
    address: str | None = None,
    mlflow_uri: str = CLUSTER_MLFLOW_URI,
    working_dir: str | Path | None = None,
    pip: Sequence[str] = (),
    sweep: SweepArgs = SweepArgs(),
    validate: bool = True,
    forward_credentials: bool = False,
) -> str:
    """Send the sweep ``spec`` (a shipped name or a YAML file in the project) as a Ray job.

    The spec is validated here first (``validate``), so a typo fails before anything is
    uploaded. ``forward_credentials``: send this machine's MLflow login, sealed (the nodes'
    own account otherwise). Returns the job's submission id.

    Raises:
        ValueError: bad spec, address, tracking URI or working folder.
        ClusterError: the job API is unreachable, refuses the token, or rejects the job.
    """
    folder = Path(working_dir).expanduser().resolve() if working_dir else project_root()
    spec_arg = spec_argument(spec, folder)
    entrypoint = sweep_entrypoint(spec_arg, mlflow_uri, sweep)
    modules: list[str] = []
    if validate:
        from sweeps.specs.load import load_spec

        loaded = load_spec(folder / spec_arg if spec_arg.endswith((".yaml", ".yml")) else spec_arg)
        modules = task_modules(loaded, folder)
    metadata = {"dropattack.spec": spec_arg, "dropattack.mlflow_uri": redact_uri(mlflow_uri)}
    return submit_job(
        entrypoint,
        address=address,
        working_dir=folder,
        pip=pip,
        metadata=metadata,
        forward_credentials=forward_credentials,
        py_modules=modules,
    )


def task_modules(spec: Any, working_dir: str | Path) -> list[str]:
    """The folders of the user's task packages (``task: "package.module:factory"``) that a
    job must ship besides ``working_dir``: those outside it and not installed.

    Raises:
        ValueError: a task is a single module file outside ``working_dir`` (Ray ships
            packages: move it into a package folder, or into the working folder).
    """
    from models import external

    root = Path(working_dir).expanduser().resolve()
    out: list[str] = []
    for name in spec.task_names():
        base = external.import_root(name)
        if base is None or base == root or root in base.parents:
            continue
        top = name.partition(":")[0].split(".")[0]
        package = base / top
        if not package.is_dir():
            raise ValueError(
                f"task {name}: module {top!r} is a single file outside --working-dir {root}; "
                "put it in the working folder, or in a package folder (with __init__.py)"
            )
        if str(package) not in out:
            out.append(str(package))
    return out


def _state(job_id: str, info: Any) -> JobState:
    return JobState(
        job_id=info.submission_id or job_id,
        status=str(getattr(info.status, "value", info.status)),
        entrypoint=info.entrypoint,
        message=info.message or "",
        start_time=info.start_time / 1000 if info.start_time else None,
        end_time=info.end_time / 1000 if info.end_time else None,
        metadata=dict(info.metadata or {}),
    )


def job_status(job_id: str, address: str | None = None) -> JobState:
    """The job's status, entrypoint, message and times.

    Raises:
        ClusterError: unreachable cluster or unknown job.
    """
    url, client = _client(address)
    return _state(job_id, _call(url, job_id, lambda: client.get_job_info(job_id)))


def list_jobs(address: str | None = None) -> list[JobState]:
    """Every job the cluster knows, oldest first."""
    url, client = _client(address)
    jobs = _call(url, "*", client.list_jobs)
    states = [_state(j.submission_id or j.job_id or "?", j) for j in jobs]
    return sorted(states, key=lambda s: s.start_time or 0.0)


def job_logs(job_id: str, address: str | None = None) -> str:
    """Everything the job printed so far (stdout and stderr of its entrypoint)."""
    url, client = _client(address)
    return _call(url, job_id, lambda: client.get_job_logs(job_id))


def follow_logs(job_id: str, write: Callable[[str], Any], address: str | None = None) -> JobState:
    """Stream the job's output to ``write`` until it ends; returns its final state."""
    url, client = _client(address)
    _call(url, job_id, lambda: client.get_job_info(job_id))

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    _call(url, job_id, lambda: asyncio.run(tail()))
    return wait_for(job_id, address=url, timeout=30.0)


def wait_for(
    job_id: str,
    *,
    address: str | None = None,
    timeout: float = 60.0,
    statuses: Iterable[str] = TERMINAL,
    poll: float = 0.5,
) -> JobState:
    """Poll until the job reaches one of ``statuses``.

    Raises:
        ClusterError: unknown job, or ``timeout`` seconds passed (the message has its status).
    """
    wanted = set(statuses)
    url, client = _client(address)
    deadline = time.monotonic() + timeout
    while True:
        state = _state(job_id, _call(url, job_id, lambda: client.get_job_info(job_id)))
        if state.status in wanted:
            return state
        if time.monotonic() >= deadline:
            raise ClusterError(
                f"job {job_id} is still {state.status} after {timeout:g}s "
                f"(waiting for {' or '.join(sorted(wanted))})"
            )
        time.sleep(poll)


def stop_job(job_id: str, address: str | None = None, timeout: float = 60.0) -> JobState:
    """Ask the job to stop (SIGTERM, then SIGKILL after Ray's grace period) and wait for
    it to end (``timeout`` 0: do not wait). Stopping an ended job leaves it as it was."""
    url, client = _client(address)
    _call(url, job_id, lambda: client.stop_job(job_id))
    if timeout <= 0:
        return _state(job_id, _call(url, job_id, lambda: client.get_job_info(job_id)))
    return wait_for(job_id, address=url, timeout=timeout)
