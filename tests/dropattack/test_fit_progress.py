"""fit's per-batch hooks: on_epoch_start with the batch count, on_batch_end after each step."""

from __future__ import annotations

import torch
from torch import nn

from dropattack import Callback, DropAttack, fit


def _blobs(n: int, seed: int, batch: int = 32):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) + y[:, None].float()
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


class Steps(Callback):
    def __init__(self):
        self.events: list[tuple] = []

    def on_epoch_start(self, epoch, batches):
        self.events.append(("epoch", epoch, batches))

    def on_batch_end(self, epoch, step, examples):
        self.events.append(("batch", epoch, step, examples))

    def on_epoch_end(self, metrics, model, state):
        self.events.append(("end", metrics.epoch))


def _fit(train, callbacks, epochs=2):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))
    return fit(
        model,
        DropAttack(model, attack=["input"], eps=0.1, p=0.5),
        torch.optim.Adam(model.parameters(), lr=0.01),
        train,
        _blobs(64, 2),
        epochs=epochs,
        callbacks=callbacks,
    )


def test_every_step_is_reported_with_its_batch_size_and_the_epoch_count_first():
    steps = Steps()
    _fit(_blobs(150, 1), [steps])  # 4 batches of 32 and one of 22
    expected = [
        ev
        for e in (1, 2)
        for ev in (
            [("epoch", e, 5)]
            + [("batch", e, s, 32) for s in range(1, 5)]
            + [("batch", e, 5, 22), ("end", e)]
        )
    ]
    assert steps.events == expected


def test_data_without_a_length_reports_none_batches():
    steps = Steps()
    data = _blobs(64, 1)
    _fit((b for b in data), [steps], epochs=1)  # a generator: one pass, no len()
    assert steps.events[0] == ("epoch", 1, None)
    assert [e[2] for e in steps.events if e[0] == "batch"] == [1, 2]


def test_the_hooks_do_not_change_training():
    plain = _fit(_blobs(150, 1), [])
    hooked = _fit(_blobs(150, 1), [Steps()])
    assert [m.train_loss for m in plain.history] == [m.train_loss for m in hooked.history]
