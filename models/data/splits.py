"""Seeded train/validation/test splits and nested training subsets.

A pool of ``n`` examples is permuted with a seeded generator and cut into parts. When ``n``
equals the sum of the paper's sizes (Table 1) the parts have exactly those sizes; otherwise
they are proportional to them (the first part, training, takes the rounding remainder). Training
subsets for Table 3 are prefixes of the training part's seeded order, so for one seed the subset
of 100 lies inside the subset of 500, which lies inside 1,000, and so on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.data.errors import DataError

__all__ = ["nested_subset", "split_pool"]


def split_pool(n: int, sizes: Sequence[int], seed: int, what: str) -> tuple[list[np.ndarray], str]:
    """Cut a seeded permutation of ``range(n)`` into ``len(sizes)`` parts.

    Returns:
        The index arrays, and ``"paper"`` (exact sizes) or ``"proportional"``.

    Raises:
        DataError: a part would be empty.
    """
    if n == sum(sizes):
        counts, mode = list(sizes), "paper"
    else:
        total = sum(sizes)
        rest = [n * s // total for s in sizes[1:]]
        counts, mode = [n - sum(rest), *rest], "proportional"
    if min(counts) < 1:
        raise DataError(
            f"{what}: {n} examples are too few to split in proportion {list(sizes)}; "
            f"expected at least {len(sizes)} per part"
        )
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0, *counts])
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)], mode


def nested_subset(train: np.ndarray, train_size: int | None, what: str) -> np.ndarray:
    """The first ``train_size`` indices of the (already seeded) training order.

    Raises:
        DataError: ``train_size`` is not a positive integer or exceeds the training set.
    """
    if train_size is None:
        return train
    if isinstance(train_size, bool) or not isinstance(train_size, int) or train_size < 1:
        raise DataError(f"train_size: expected a positive integer, got {train_size!r}")
    if train_size > len(train):
        raise DataError(
            f"train_size: {train_size} exceeds the {len(train)} training examples of {what}"
        )
    return train[:train_size]
