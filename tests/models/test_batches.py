"""Minibatches: seeded per epoch (so resuming reproduces the order), buckets, fixed evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data import Batches, Split


def split(n: int = 50, lengths: bool = False) -> Split:
    x = torch.arange(n).unsqueeze(1)
    return Split(x, torch.arange(n) % 3, torch.arange(n) % 11 if lengths else None)


def epoch_order(batches: Batches) -> list[int]:
    return [int(v) for x, _ in batches for v in x[:, 0]]


def test_training_order_is_a_seeded_permutation_that_changes_each_epoch():
    b = Batches(split(), 8, shuffle=True, seed=4)
    first, second = epoch_order(b), epoch_order(b)
    assert sorted(first) == list(range(50)) and first != second
    assert b.epoch == 2
    again = Batches(split(), 8, shuffle=True, seed=4)
    assert epoch_order(again) == first
    resumed = Batches(split(), 8, shuffle=True, seed=4)
    resumed.set_epoch(1)
    assert epoch_order(resumed) == second
    assert epoch_order(Batches(split(), 8, shuffle=True, seed=5)) != first


def test_evaluation_order_is_fixed_and_complete():
    b = Batches(split(), 16, shuffle=False)
    assert epoch_order(b) == list(range(50)) == epoch_order(b)
    assert len(b) == 4 and b.epoch == 0


def test_text_buckets_group_similar_lengths():
    b = Batches(split(400, lengths=True), 20, shuffle=True, seed=0)
    lengths = np.arange(400) % 11
    spans = [np.ptp(lengths[idx]) for idx in b.batch_indices(0)]
    assert sorted(np.concatenate(b.batch_indices(0)).tolist()) == list(range(400))
    assert np.mean(spans) <= 1


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size: expected a positive integer"):
        Batches(split(), 0, shuffle=True)
