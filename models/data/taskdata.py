"""What a dataset loader returns, and the options every loader takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from models.data.batches import Batches, Split

__all__ = ["DataOptions", "TaskData"]


@dataclass(frozen=True)
class DataOptions:
    """Options of a dataset load.

    Attributes:
        data_dir: the data root (see :mod:`models.data.paths`); ``None`` for the default.
        train_size: keep this many training examples (nested seeded subsets, Table 3).
        split_seed: seeds the split and the subsets; fixed across trial seeds, as the paper
            keeps one split and varies the training seed.
        max_len: text length in tokens (the paper's 256).
        max_vocab: most frequent words kept (the paper's 250,000).
        vectors: a GloVe-format text file for the embedding (text tasks).
        download: let torchvision download MNIST/CIFAR-10 into ``data_dir``.
    """

    data_dir: str | None = None
    train_size: int | None = None
    split_seed: int = 0
    max_len: int = 256
    max_vocab: int = 250_000
    vectors: str | None = None
    download: bool = False


@dataclass
class TaskData:
    """Train/validation/test splits in memory, plus what building the model needs.

    Attributes:
        sizes: examples per split (after ``train_size``), recorded in results.
        split: ``"files"`` (the source's own splits), ``"paper"`` (seeded, Table 1's sizes) or
            ``"proportional"`` (seeded, in Table 1's proportions), plus a fixed test set's
            origin where there is one.
        source: where the examples came from (files or dataset ids).
        model_kwargs: arguments the model needs from the data (``vocab_size``,
            ``padding_idx``, ``pretrained``).
        info: anything else worth recording (vocabulary cache, vector coverage, ...).
        transform: applied to each batch's inputs (uint8 images -> normalised floats).
    """

    train: Split
    val: Split
    test: Split
    num_classes: int
    split: str
    source: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def batches(
        self, part: str, batch_size: int, *, seed: int = 0, bucket: bool = False
    ) -> Batches:
        """Minibatches of ``part``: shuffled (seeded per epoch) for ``"train"``, fixed otherwise;
        ``bucket``: length-aware training batches (text; see :class:`Batches`)."""
        try:
            split = {"train": self.train, "val": self.val, "test": self.test}[part]
        except KeyError:
            raise ValueError(f"part: expected 'train', 'val' or 'test', got {part!r}") from None
        train = part == "train"
        return Batches(
            split,
            batch_size,
            shuffle=train,
            seed=seed,
            transform=self.transform,
            bucket=bucket and train,
        )
