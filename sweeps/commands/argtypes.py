"""Argument types shared by subcommands: parse and check one flag value, or explain why not."""

from __future__ import annotations

import argparse

__all__ = ["gpu_share", "positive_int"]


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
