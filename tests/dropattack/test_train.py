"""The training loop: protocol (best-on-validation weights for test), callbacks, resume, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dropattack import (
    Callback,
    DropAttack,
    EpochMetrics,
    NonFiniteLossError,
    evaluate,
    fit,
    methods,
)
from dropattack.train import macro_f1


def _blobs(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    y = torch.randint(0, 3, (n,), generator=g)
    x = centers[y] + 0.9 * torch.randn(n, 2, generator=g)
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, n, 32)]


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 3))


class Recorder(Callback):
    def __init__(self):
        self.events, self.states = [], []

    def on_fit_start(self, model, optimizer):
        self.events.append("start")

    def on_epoch_end(self, metrics, model, state):
        self.events.append(metrics.epoch)
        self.states.append(copy.deepcopy(state))

    def on_fit_end(self, result):
        self.events.append("end")


def test_fit_learns_and_tests_the_best_validation_weights():
    model = _model()
    rec = Recorder()
    result = fit(
        model,
        DropAttack(model, attack=["input", "0.weight"], eps=0.1, p=0.7),
        torch.optim.Adam(model.parameters(), lr=0.05),
        _blobs(320, 1),
        _blobs(128, 2),
        _blobs(128, 3),
        epochs=4,
        callbacks=[rec],
    )
    assert rec.events == ["start", 1, 2, 3, 4, "end"]
    assert len(result.history) == 4
    assert result.val_acc == max(m.val_acc for m in result.history)
    assert result.history[result.best_epoch - 1].val_acc == result.val_acc
    assert result.test_acc > 0.8
    # The model holds the best-on-validation weights, which produced the test score.
    for k, v in model.state_dict().items():
        assert torch.equal(v, result.best_state[k])
    again = evaluate(model, _blobs(128, 3))
    assert again["acc"] == result.test_acc
    m = result.metrics()
    assert {"val_acc", "val_f1", "test_acc", "test_f1", "epochs", "seconds"} <= set(m)
    assert all(0.0 <= result.history[0].as_dict()[k] <= 1.0 for k in ("train_acc", "val_acc"))


def test_resume_from_epoch_state_equals_uninterrupted_run():
    def run(epochs, **resume):
        model = _model()
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        da = DropAttack(model, attack=["input", "2.weight"], eps=0.2, p=0.5, seed=0)
        if resume:
            state = resume.pop("state")
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            da.load_state_dict(state["method"])
            resume = {
                "start_epoch": state["epoch"],
                "history": [EpochMetrics(**h) for h in state["history"]],
                "best_state": state["best_state"],
            }
        rec = Recorder()
        res = fit(
            model, da, opt, _blobs(256, 1), _blobs(96, 2), _blobs(96, 3),
            epochs=epochs, callbacks=[rec], **resume,
        )  # fmt: skip
        return res, rec

    full, rec = run(3)
    resumed, _ = run(3, state=rec.states[0])
    assert [m.val_acc for m in resumed.history] == [m.val_acc for m in full.history]
    assert [m.train_loss for m in resumed.history] == [m.train_loss for m in full.history]
    assert resumed.test_acc == full.test_acc


def test_non_finite_loss_stops_with_clear_error():
    model = _model()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at epoch 1, step 1"):
        fit(
            model,
            methods.get("standard", model),
            torch.optim.SGD(model.parameters(), lr=0.1),
            _blobs(64, 1),
            _blobs(64, 2),
            epochs=1,
        )


def test_fit_argument_errors():
    model = _model()
    args = (model, methods.get("standard", model), torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1"):
        fit(*args, _blobs(32, 1), _blobs(32, 2), epochs=0)
    with pytest.raises(ValueError, match="the training data is empty"):
        fit(*args, [], _blobs(32, 2), epochs=1)


def test_macro_f1_against_hand_count():
    pred = torch.tensor([0, 0, 1, 1, 2, 0])
    true = torch.tensor([0, 1, 1, 1, 2, 2])
    # class 0: tp 1, fp 2, fn 0 -> 1/2; class 1: tp 2, fp 0, fn 1 -> 4/5; class 2: tp 1, fn 1 -> 2/3
    assert macro_f1(pred, true, 3) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    sk_metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    pred, true = torch.randint(0, 4, (500,), generator=g), torch.randint(0, 4, (500,), generator=g)
    expected = sk_metrics.f1_score(true.numpy(), pred.numpy(), average="macro")
    assert macro_f1(pred, true, 4) == pytest.approx(expected)
