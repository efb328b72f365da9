"""A training loop for any :class:`~dropattack.methods.base.Method`, with the paper's protocol.

``fit`` trains for a number of epochs, evaluates accuracy and macro-F1 on the validation set
after each, keeps the best-on-validation weights and evaluates them on the test set. Loggers
attach through :class:`Callback`, so this module needs torch only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence, Sized
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dropattack.methods.base import LossFn, Method

__all__ = ["Callback", "EpochMetrics", "FitResult", "NonFiniteLossError", "evaluate", "fit"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run cannot continue meaningfully."""


@dataclass
class EpochMetrics:
    """What one epoch measured. Accuracies and F1 are fractions in [0, 1]."""

    epoch: int
    train_loss: float
    train_acc: float
    val_acc: float
    val_f1: float
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class FitResult:
    """The run: per-epoch history, and validation/test scores of the best-on-validation epoch."""

    history: list[EpochMetrics]
    best_epoch: int
    val_acc: float
    val_f1: float
    test_acc: float | None
    test_f1: float | None
    seconds: float
    best_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Final metrics, named as ``dropattack train --json`` prints them."""
        out = {
            "val_acc": self.val_acc,
            "val_f1": self.val_f1,
            "best_epoch": float(self.best_epoch),
            "epochs": float(len(self.history)),
            "seconds": self.seconds,
            # the epochs' training and validation alone: what comparing methods' cost needs
            # (no set-up, checkpointing, logging or test evaluation)
            "train_seconds": sum(m.seconds for m in self.history),
        }
        if self.test_acc is not None:
            out["test_acc"] = self.test_acc
            out["test_f1"] = self.test_f1
        return out


class Callback:
    """Hooks a logger or checkpointer implements; every method is optional."""

    def on_fit_start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Called once before the first epoch."""

    def on_epoch_start(self, epoch: int, batches: int | None) -> None:
        """Called before each epoch's first batch: ``epoch`` counts from 1, ``batches`` is
        the number of training batches (``None`` when the data has no length)."""

    def on_batch_end(self, epoch: int, step: int, examples: int) -> None:
        """Called after each training step: ``step`` counts from 1 within the epoch and
        ``examples`` is the batch's size (a progress bar's input)."""

    def on_epoch_end(self, metrics: EpochMetrics, model: nn.Module, state: dict[str, Any]) -> None:
        """Called after each epoch's validation. ``state`` holds what a checkpoint needs."""

    def on_fit_end(self, result: FitResult) -> None:
        """Called once after the test evaluation."""


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Batches, device: torch.device | str | None = None
) -> dict[str, float]:
    """Accuracy, macro-F1 and mean cross-entropy of ``model`` on ``batches`` (eval mode)."""
    device = torch.device(device) if device is not None else _device_of(model)
    was_training = model.training
    model.eval()
    try:
        preds, labels, loss_sum, n = [], [], 0.0, 0
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum").item()
            preds.append(out.argmax(1).cpu())
            labels.append(y.cpu())
            n += y.numel()
            num_classes = out.shape[1]
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("evaluate: the data is empty")
    p, t = torch.cat(preds), torch.cat(labels)
    return {
        "acc": (p == t).float().mean().item(),
        "f1": macro_f1(p, t, num_classes),
        "loss": loss_sum / n,
    }


def macro_f1(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``pred`` or ``target``."""
    cm = torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    tp = cm.diag().double()
    support = cm.sum(1).double() + cm.sum(0).double()
    present = support > 0
    f1 = torch.where(present, 2 * tp / support.clamp(min=1), torch.zeros_like(tp))
    return (f1[present].mean().item()) if present.any() else 0.0


def fit(
    model: nn.Module,
    method: Method,
    optimizer: torch.optim.Optimizer,
    train: Batches,
    val: Batches,
    test: Batches | None = None,
    *,
    epochs: int,
    loss_fn: LossFn = F.cross_entropy,
    device: torch.device | str | None = None,
    callbacks: Sequence[Callback] = (),
    grad_clip: float | None = None,
    scaler: torch.amp.GradScaler | None = None,
    autocast_dtype: torch.dtype | None = None,
    start_epoch: int = 0,
    history: Sequence[EpochMetrics] = (),
    best_state: dict[str, torch.Tensor] | None = None,
) -> FitResult:
    """Train ``model`` with ``method`` and evaluate the best-on-validation weights on ``test``.

    ``start_epoch``, ``history`` and ``best_state`` resume a run from a checkpoint written by a
    callback (``state`` of :meth:`Callback.on_epoch_end`).

    Raises:
        ValueError: ``epochs < 1`` or ``start_epoch`` out of range.
        NonFiniteLossError: the training loss is NaN or infinite.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs!r}")
    if not 0 <= start_epoch <= epochs:
        raise ValueError(f"start_epoch: expected 0..{epochs}, got {start_epoch}")
    device = torch.device(device) if device is not None else _device_of(model)
    history = list(history)
    best = max(history, key=lambda m: m.val_acc, default=None)
    if best_state is None and best is not None:
        raise ValueError("best_state: required when resuming with a non-empty history")
    t0 = time.perf_counter() - sum(m.seconds for m in history)
    for cb in callbacks:
        cb.on_fit_start(model, optimizer)
    batches = len(train) if isinstance(train, Sized) else None
    for epoch in range(start_epoch, epochs):
        te = time.perf_counter()
        for cb in callbacks:
            cb.on_epoch_start(epoch + 1, batches)
        train_loss, train_acc = _train_epoch(
            model,
            method,
            optimizer,
            train,
            loss_fn,
            device,
            grad_clip,
            scaler,
            autocast_dtype,
            epoch,
            callbacks,
        )
        v = evaluate(model, val, device)
        m = EpochMetrics(
            epoch + 1, train_loss, train_acc, v["acc"], v["f1"], time.perf_counter() - te
        )
        history.append(m)
        if best is None or m.val_acc > best.val_acc:
            best = m
            best_state = {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()}
        state = {
            "epoch": epoch + 1,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "method": method.state_dict(),
            "history": [h.as_dict() for h in history],
            "best_state": best_state,
        }
        for cb in callbacks:
            cb.on_epoch_end(m, model, state)
    if best is None:
        raise ValueError("fit: nothing was trained (start_epoch == epochs and no history)")
    model.load_state_dict(best_state)
    test_acc = test_f1 = None
    if test is not None:
        t = evaluate(model, test, device)
        test_acc, test_f1 = t["acc"], t["f1"]
    result = FitResult(
        history, best.epoch, best.val_acc, best.val_f1, test_acc, test_f1,
        time.perf_counter() - t0, best_state,
    )  # fmt: skip
    for cb in callbacks:
        cb.on_fit_end(result)
    return result


def _train_epoch(
    model: nn.Module,
    method: Method,
    optimizer: torch.optim.Optimizer,
    train: Batches,
    loss_fn: LossFn,
    device: torch.device,
    grad_clip: float | None,
    scaler: torch.amp.GradScaler | None,
    autocast_dtype: torch.dtype | None,
    epoch: int,
    callbacks: Sequence[Callback] = (),
) -> tuple[float, float]:
    """One epoch; train accuracy is read off each step's first (clean) forward pass."""
    model.train()
    first: list[torch.Tensor] = []
    handle = model.register_forward_hook(
        lambda _m, _a, out: first.append(out.detach()) if not first else None
    )
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    try:
        for step, (x, y) in enumerate(train):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            first.clear()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(
                device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
            ):
                loss = method.backward(x, y, loss_fn, scaler=scaler)
            if not math.isfinite(loss.item()):
                raise NonFiniteLossError(
                    f"training loss is {loss.item()} at epoch {epoch + 1}, step {step + 1} "
                    f"(method {method.name!r}); lower the learning rate or eps"
                )
            if grad_clip is not None:
                if scaler is not None:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            loss_sum += loss.double() * y.numel()
            if first:
                correct += (first[0].argmax(1) == y).sum()
            n += y.numel()
            for cb in callbacks:
                cb.on_batch_end(epoch + 1, step + 1, y.numel())
    finally:
        handle.remove()
    if n == 0:
        raise ValueError("fit: the training data is empty")
    return loss_sum.item() / n, correct.item() / n


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
