"""Flags and argument types shared by subcommands: parse and check a value, or explain why not.

Each ``type=`` helper takes the flag's text and returns the parsed value or raises
``argparse.ArgumentTypeError`` with what was expected; argparse then prints one line naming
the flag and exits with status 2, before the command imports anything heavy (torch, Ray,
MLflow) or computes anything. The path checks look at the file system only: the nearest
existing folder of an output path must take a new entry (tried with a temporary folder,
removed at once, since root passes every ``os.access`` test, even on ``/sys``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from sweeps.cluster.redact import uri_credentials
from sweeps.specs.names import name_problem

__all__ = [
    "TRACKING_SCHEMES",
    "add_data_dir",
    "add_driver_flags",
    "add_store_flags",
    "data_root",
    "existing_dir",
    "existing_file",
    "experiment_name",
    "gpu_share",
    "gpu_share_or_auto",
    "job_api_address",
    "nonnegative_float",
    "output_dir",
    "positive_float",
    "positive_int",
    "ray_address",
    "resolve_tracking_uri",
    "seconds",
    "tracking_uri",
    "uri_without_credentials",
]

#: Tracking URI schemes MLflow serves from a server or a database (SQLAlchemy dialects).
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql")


def positive_int(text: str) -> int:
    """An integer >= 1 (``--max-concurrent``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (``--lr``)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def gpu_share(text: str) -> float:
    """GPUs per trial: a fraction in [0, 1] (trials share a GPU) or a whole number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0 or (value > 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(
            f"expected a fraction in [0, 1] or a whole number of GPUs, got {text}"
        )
    return value


def experiment_name(text: str) -> str:
    """An MLflow experiment and sweep name (``--experiment``), held to the spec-name rule.

    The name becomes a folder under the runs folder (``runs/ray/<name>``), which the driver
    may move aside: ``../x`` or ``/abs`` would reach outside it.
    """
    problem = name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def uri_without_credentials(text: str) -> str:
    """A URI with no ``user:password@`` part: such a URI lands in run tags, job metadata and
    reports, so credentials go in the environment instead."""
    if uri_credentials(text) is not None:
        raise argparse.ArgumentTypeError(
            "credentials in the URI (user:password@) would be stored in run tags, job "
            "metadata and reports; drop them and export MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or RAY_AUTH_TOKEN for Ray) instead"
        )
    return text


# --------------------------------------------------------------------------- paths


def _nearest_existing(path: Path) -> Path:
    for folder in [path, *path.parents]:
        if os.path.lexists(folder):
            return folder
    return Path(".")


def output_dir(text: str) -> str:
    """A folder to write into: an existing folder, or one that can be created (with its
    missing parents). Rejects a file, a path under a file, and read-only places."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty path")
    path = Path(text).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a folder, but {text} is a file")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise argparse.ArgumentTypeError(
            f"expected a folder, but {base} is a file, so {text} cannot be created"
        )
    try:
        Path(tempfile.mkdtemp(prefix=".dropattack-", dir=base)).rmdir()
    except OSError as e:
        what = "write in" if base == path else f"create {text} under"
        reason = e.strerror or e.__class__.__name__
        raise argparse.ArgumentTypeError(f"cannot {what} {base} ({reason.lower()})") from None
    return text


def mirror_url(text: str) -> str:
    """A mirror's base URL for ``dropattack data fetch``: http://, https:// or file://."""
    if urlparse(text).scheme not in ("http", "https", "file"):  # fetch's MIRROR_SCHEMES
        raise argparse.ArgumentTypeError(
            f"expected an http://, https:// or file:// URL, got {text!r}"
        )
    return text


def existing_file(text: str) -> str:
    """A file that exists and can be read."""
    path = Path(text).expanduser()
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not found"
        raise argparse.ArgumentTypeError(f"expected a readable file, but {text} is {what}")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"expected a readable file, cannot read {text}")
    return text


def existing_dir(text: str) -> str:
    """A folder that exists."""
    path = Path(text).expanduser()
    if not path.is_dir():
        what = "a file" if path.exists() else "not found"
        raise argparse.ArgumentTypeError(f"expected an existing folder, but {text} is {what}")
    return text


def data_root(text: str) -> str:
    """A data root: an existing folder, ``hf`` or ``hf:DATASET_ID`` (Hugging Face datasets)."""
    if text == "hf" or text.startswith("hf:"):
        return text
    try:
        return existing_dir(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e} (or give hf, hf:DATASET_ID)") from None


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """``--data-dir DIR``: the data root every task reads (see :mod:`sweeps.specs.data`)."""
    from sweeps.specs.data import DATA_DIR_HELP

    parser.add_argument("--data-dir", type=data_root, metavar="DIR", help=DATA_DIR_HELP)


# --------------------------------------------------------------------------- addresses


def tracking_uri(text: str) -> str:
    """An MLflow tracking URI: ``http(s)://HOST[:PORT]``, ``sqlite:///PATH`` or another
    database URL. A plain path (MLflow's deprecated file store) is refused with the
    ``sqlite:///`` form to use instead; a ``sqlite`` file must lie in a folder that exists
    or can be created."""
    text = uri_without_credentials(text.strip())
    parsed = urlparse(text)
    scheme = parsed.scheme.split("+", 1)[0].lower()
    if not parsed.scheme or len(parsed.scheme) == 1 or scheme == "file":
        path = text.removeprefix("file://") or "."
        raise argparse.ArgumentTypeError(
            f"expected a tracking URI such as http://HOST:5000 or sqlite:///PATH/mlflow.db, got "
            f"the plain path {text!r} (MLflow's file store is deprecated); for a local store "
            f"use sqlite:///{Path(path, 'mlflow.db').absolute()}"
        )
    if scheme not in TRACKING_SCHEMES:
        raise argparse.ArgumentTypeError(
            f"expected a tracking URI with one of the schemes {', '.join(TRACKING_SCHEMES)}, "
            f"got {text!r}"
        )
    if scheme in ("http", "https"):
        try:
            parsed.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
        if not parsed.hostname:
            raise argparse.ArgumentTypeError(f"expected http://HOST[:PORT], got {text!r}")
    if scheme == "sqlite":
        if not text.startswith("sqlite:///") or text == "sqlite:///":
            raise argparse.ArgumentTypeError(
                f"expected sqlite:///PATH (three slashes, then the file), got {text!r}"
            )
        folder = Path(text.removeprefix("sqlite:///")).parent
        try:
            output_dir(str(folder))
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{text}: the store's folder: {e}") from None
    return text


def job_api_address(text: str) -> str:
    """A Ray job API address, ``http(s)://HOST[:PORT]`` (``HOST:PORT`` means http)."""
    from sweeps.cluster.ray_jobs import normalize_address

    uri_without_credentials(text)
    try:
        return normalize_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--address: ")) from None


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (``--wait`` seconds)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def ray_address(text: str) -> str:
    """Where a sweep's Ray runs: ``auto``, ``local``, ``ray://HOST:PORT`` or ``HOST:PORT``."""
    if text in ("auto", "local"):
        return text
    uri_without_credentials(text)
    parsed = urlparse(text if "://" in text else f"tcp://{text}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme not in ("ray", "tcp") or not parsed.hostname or not port:
        raise argparse.ArgumentTypeError(
            f"expected auto, ray://HOST:PORT or HOST:PORT, got {text!r}"
        )
    return text


def add_store_flags(parser: argparse.ArgumentParser, *, experiment: bool = True) -> None:
    """EXPERIMENT (unless ``experiment`` is false), ``--mlflow-uri`` and ``--runs-dir``: where
    a command reads a finished sweep's runs."""
    if experiment:
        parser.add_argument(
            "experiment",
            type=experiment_name,
            help="MLflow experiment of the sweep (its spec name)",
        )
    parser.add_argument(
        "--mlflow-uri",
        type=tracking_uri,
        default=None,
        help="tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///RUNS_DIR/mlflow.db, "
        "where `dropattack sweep` writes by default)",
    )
    parser.add_argument(
        "--runs-dir", default="runs", help="local folder of the sweep's store (default: runs)"
    )


def add_driver_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that runs trials through the sweep driver."""
    parser.add_argument(
        "--address",
        type=ray_address,
        default=None,
        help="Ray cluster: auto, ray://HOST:10001 or HOST:PORT (default: a local Ray)",
    )
    parser.add_argument(
        "--max-concurrent", type=positive_int, default=None, help="at most N trials at once"
    )
    parser.add_argument(
        "--runs-dir",
        type=output_dir,
        default="runs",
        help="local folder for stores and results (default: runs)",
    )
    parser.add_argument(
        "--no-live", action="store_true", help="one line per finished trial, no live panel"
    )


def gpu_share_or_auto(text: str) -> float | str:
    """GPUs per trial as :func:`gpu_share`, or ``auto`` (measured by the plan)."""
    return "auto" if text == "auto" else gpu_share(text)


def seconds(text: str) -> float:
    """A number of seconds >= 0 (``--budget``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {text}")
    return value


def resolve_tracking_uri(
    flag: str | None, runs_dir: str | os.PathLike | None = None, *, existing: bool = False
) -> str:
    """The tracking URI a command uses: ``--mlflow-uri`` (checked by :func:`tracking_uri`),
    else ``MLFLOW_TRACKING_URI`` (checked the same way), else the sqlite store
    ``RUNS_DIR/mlflow.db`` that ``dropattack sweep`` writes by default. An http(s) server
    must answer ``/health`` (MLflow's own client would retry for minutes); with ``existing``
    a sqlite store must already exist (opening a missing one would create an empty one),
    without it the store's folder is created.

    Raises:
        ValueError: one line naming the flag or the variable, and what was expected.
    """
    from sweeps.records.store import UnreachableError, probe, sqlite_uri

    env = os.environ.get("MLFLOW_TRACKING_URI")
    source = "--mlflow-uri" if flag else "MLFLOW_TRACKING_URI" if env else "--runs-dir"
    if flag or env:
        uri = flag or env or ""
    elif runs_dir is not None:
        uri = sqlite_uri(Path(runs_dir) / "mlflow.db")
    else:
        raise ValueError("--mlflow-uri: expected a tracking URI")
    try:
        tracking_uri(uri)
        if not (existing and uri.startswith("sqlite:")):
            probe(uri)  # a server answers; a new sqlite store's folder is made
    except (argparse.ArgumentTypeError, UnreachableError) as e:
        raise ValueError(f"{source}: {e}") from None
    path = Path(uri.removeprefix("sqlite:///"))
    if existing and uri.startswith("sqlite:///") and not path.is_file():
        where = f"--runs-dir {runs_dir}" if source == "--runs-dir" else f"{source} {uri}"
        raise ValueError(
            f"{where}: no MLflow store at {path}; run a sweep first (`dropattack sweep SPEC`), "
            "or pass the tracking URI the sweep used with --mlflow-uri"
        )
    return uri
