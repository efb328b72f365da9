"""Flags and argument types shared by subcommands: parse and check a value, or explain why not."""

from __future__ import annotations

import argparse

__all__ = ["add_driver_flags", "gpu_share", "positive_int"]


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


def add_driver_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that runs trials through the sweep driver."""
    parser.add_argument(
        "--address",
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
