"""Datasets of the paper (and scikit-learn's digits), loaded into memory, split and batched.

>>> from models import data
>>> d = data.load("digits", data.DataOptions())
>>> d.sizes  # doctest: +SKIP
{'train': 1439, 'val': 179, 'test': 179}
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from models.data.batches import Batches, Split
from models.data.errors import DataError
from models.data.paths import DataRoot, resolve_root
from models.data.taskdata import DataOptions, TaskData
from models.data.text import TEXT_DATASETS, load_text, read_csv
from models.data.vectors import load_vectors
from models.data.vision import load_cifar10, load_digits, load_mnist, read_cifar_batch
from models.data.vocab import Vocabulary

__all__ = [
    "DATASETS",
    "Batches",
    "DataError",
    "DataOptions",
    "DataRoot",
    "Split",
    "TaskData",
    "Vocabulary",
    "load",
    "load_vectors",
    "read_cifar_batch",
    "read_csv",
    "resolve_root",
]

Loader = Callable[[DataOptions], TaskData]

DATASETS: dict[str, Loader] = {
    **{name: partial(load_text, name) for name in TEXT_DATASETS},
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "digits": load_digits,
}


def load(name: str, options: DataOptions | None = None) -> TaskData:
    """Load dataset ``name`` with ``options``.

    Raises:
        ValueError: unknown dataset name.
        DataError: missing or malformed data.
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(
            f"dataset: unknown {name!r}; expected one of {', '.join(DATASETS)}"
        ) from None
    return loader(options or DataOptions())
