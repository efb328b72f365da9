"""In-memory minibatches: seeded shuffling per epoch, optional length buckets for text.

The whole split lives in tensors (token ids, or images as uint8), so a batch is one indexed
gather; no DataLoader workers are needed, which suits parallel trials on few cores. The order
of epoch ``e`` depends only on ``(seed, e)``, so a run resumed at epoch ``e`` sees the batches
an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Batches", "Split"]

BUCKET_BATCHES = 50  # a bucket holds this many batches' worth of examples before sorting


@dataclass
class Split:
    """One split: inputs ``x``, labels ``y`` and, for text, token counts ``lengths``."""

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray | torch.Tensor) -> Split:
        idx = torch.as_tensor(index, dtype=torch.long)
        lengths = None if self.lengths is None else self.lengths[idx]
        return Split(self.x[idx], self.y[idx], lengths)


class Batches:
    """Iterate a :class:`Split` as ``(x, y)`` minibatches.

    Args:
        split: the data.
        batch_size: examples per batch (the last batch may be smaller).
        shuffle: a new seeded order each epoch (training); otherwise a fixed order.
        seed: seeds the order together with the epoch number.
        transform: applied to each batch's ``x`` (e.g. uint8 images to normalised floats).
        bucket: length-aware batches (text, shuffled): each bucket of
            ``BUCKET_BATCHES * batch_size`` shuffled examples is sorted by length before it is
            cut into batches, and the batches are shuffled (torchtext's ``BucketIterator``, the
            authors' loader), so a batch holds rows of similar length and the text models,
            which trim a batch to its longest row, do little padding work. Off by default:
            it changes which examples share a batch. Needs ``split.lengths``.

    A fixed order (evaluation) of text sorts by length: the models' outputs do not depend on
    a row's batch mates, so this only saves padding work.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        bucket: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        if bucket and split.lengths is None:
            raise ValueError("bucket: needs token lengths (a text split); this split has none")
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.transform = transform
        self.bucket = bucket
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """The next iteration yields epoch ``epoch``'s order (to resume a run)."""
        self.epoch = epoch

    def batch_indices(self, epoch: int) -> list[np.ndarray]:
        """The index arrays of epoch ``epoch``'s batches."""
        n, bs = len(self.split), self.batch_size
        lengths = None if self.split.lengths is None else self.split.lengths.numpy()
        if not self.shuffle:
            order = np.arange(n) if lengths is None else np.argsort(-lengths, kind="stable")
            return [order[i : i + bs] for i in range(0, n, bs)]
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n)
        if not self.bucket:
            return [order[i : i + bs] for i in range(0, n, bs)]
        batches = []
        step = bs * BUCKET_BATCHES
        for start in range(0, n, step):
            bucket = order[start : start + step]
            bucket = bucket[np.argsort(-lengths[bucket], kind="stable")]
            batches.extend(bucket[i : i + bs] for i in range(0, len(bucket), bs))
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        if self.shuffle:
            self.epoch += 1
        for idx in self.batch_indices(epoch):
            index = torch.from_numpy(idx)
            x = self.split.x[index]
            yield (self.transform(x) if self.transform else x), self.split.y[index]
