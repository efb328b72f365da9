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
    b = Batches(split(400, lengths=True), 20, shuffle=True, seed=0, bucket=True)
    lengths = np.arange(400) % 11
    spans = [np.ptp(lengths[idx]) for idx in b.batch_indices(0)]
    assert sorted(np.concatenate(b.batch_indices(0)).tolist()) == list(range(400))
    assert np.mean(spans) <= 1


def test_buckets_are_off_by_default_and_seeded_deterministic_when_on():
    text = split(400, lengths=True)
    plain = Batches(text, 20, shuffle=True, seed=3)
    no_lengths = Batches(split(400), 20, shuffle=True, seed=3)
    assert [i.tolist() for i in plain.batch_indices(0)] == [
        i.tolist() for i in no_lengths.batch_indices(0)
    ]  # text shuffles exactly like any other split unless asked
    lengths = np.arange(400) % 11
    assert np.mean([np.ptp(lengths[i]) for i in plain.batch_indices(0)]) > 5
    on = [Batches(text, 20, shuffle=True, seed=3, bucket=True) for _ in range(2)]
    assert epoch_order(on[0]) == epoch_order(on[1])
    assert epoch_order(on[0]) != epoch_order(Batches(text, 20, shuffle=True, seed=4, bucket=True))
    assert on[0].batch_indices(1)[0].tolist() != on[0].batch_indices(0)[0].tolist()


def test_bucket_needs_token_lengths():
    with pytest.raises(ValueError, match="bucket: needs token lengths"):
        Batches(split(), 8, shuffle=True, bucket=True)


def test_a_spec_bucket_field_reaches_the_training_batches_only():
    from models.data import TaskData
    from sweeps.execution.trainable import _config
    from sweeps.specs.space import expand_grid
    from sweeps.specs.spec import parse_spec

    spec = {"name": "b", "defaults": {"task": "imdb-lstm", "method": "standard"}}
    assert _config(expand_grid(parse_spec(spec))[0]).bucket is False
    plain_cell = expand_grid(parse_spec(spec))[0]["cell"]
    spec["defaults"]["bucket"] = True
    trial = expand_grid(parse_spec(spec))[0]
    assert _config(trial).bucket is True
    assert trial["cell"] == plain_cell + ";bucket=true"  # never pooled with unbucketed runs
    text = split(60, lengths=True)
    data = TaskData(text, text, text, num_classes=3, split="files", source="test")
    assert data.batches("train", 8, bucket=True).bucket is True
    assert data.batches("val", 8, bucket=True).bucket is False  # evaluation keeps its order


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size: expected a positive integer"):
        Batches(split(), 0, shuffle=True)


def test_train_bucket_flag_reaches_the_trial_config():
    import argparse

    from sweeps.commands.train import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["imdb-lstm"])).bucket is False
    assert config_from_args(parser.parse_args(["imdb-lstm", "--bucket"])).bucket is True
