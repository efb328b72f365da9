"""Flags and argument types shared by subcommands: parse and check a value, or explain why not."""

from __future__ import annotations

import argparse

from sweeps.names import name_problem
from sweeps.redact import uri_credentials

__all__ = [
    "add_driver_flags",
    "experiment_name",
    "gpu_share",
    "gpu_share_or_auto",
    "positive_int",
    "seconds",
    "uri_without_credentials",
]


def positive_int(text: str) -> int:
    """An integer >= 1 (``--max-concurrent``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
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


def add_driver_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that runs trials through the sweep driver."""
    parser.add_argument(
        "--address",
        type=uri_without_credentials,
        default=None,
        help="Ray cluster: auto, ray://HOST:10001 or HOST:PORT (default: a local Ray)",
    )
    parser.add_argument(
        "--max-concurrent", type=positive_int, default=None, help="at most N trials at once"
    )
    parser.add_argument(
        "--runs-dir", default="runs", help="local folder for stores and results (default: runs)"
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
