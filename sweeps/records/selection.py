"""The one rule that names a sweep's best configuration, shared by the live view and the report.

A configuration (cell) is ranked by the mean over its seeds of the sweep's selection metric
(the spec's ``search.metric``, a validation metric), in the spec's ``mode``; ties go to the
cell with more seeds, then to the smaller cell key, so the answer does not depend on the order
in which trials finished. The mean is ``math.fsum``-exact, so it is the same number whatever
the order of the values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["DEFAULT_METRIC", "DEFAULT_MODE", "exact_mean", "rank_key", "select"]

#: What sweeps written before the parent run recorded ``metric``/``mode`` selected on.
DEFAULT_METRIC, DEFAULT_MODE = "val_acc", "max"


def exact_mean(values: Sequence[float]) -> float:
    """The correctly rounded mean (independent of the values' order)."""
    return math.fsum(values) / len(values)


def rank_key(cell: str, values: Sequence[float], mode: str = DEFAULT_MODE) -> tuple:
    """Sort key of one cell: the smallest key is the best configuration."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode: expected max or min, got {mode!r}")
    if not values:
        return (1, 0.0, 0, cell)
    sign = -1.0 if mode == "max" else 1.0
    return (0, sign * exact_mean(values), -len(values), cell)


def select(cells: Iterable[tuple[str, Sequence[float]]], mode: str = DEFAULT_MODE) -> str | None:
    """The best cell key of ``(cell, selection-metric values)`` pairs; None if none has values."""
    ranked = sorted((rank_key(cell, values, mode) for cell, values in cells), key=lambda k: k)
    return ranked[0][3] if ranked and ranked[0][0] == 0 else None
