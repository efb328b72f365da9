"""The calling shape every training method shares, and helpers they have in common."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["LossFn", "Method", "frozen_bn", "bn_buffers"]


class Method:
    """A training method: computes the update gradient of one minibatch into ``.grad``.

    Usage in any loop::

        optimizer.zero_grad()
        loss = method.backward(x, y, loss_fn)   # clean loss, detached
        optimizer.step()

    ``backward`` never steps the optimizer the caller passes to ``step`` (FreeAT, which
    replays the batch with optimizer steps by definition, takes its optimizer at construction),
    leaves every parameter at its value from before the call, and returns the clean loss.
    """

    name: ClassVar[str] = ""
    #: forward and backward passes one step costs
    passes: int = 1

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    def backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def extra_loss(self) -> torch.Tensor | None:
        """A regularisation term added to the training loss (L1/L2), or ``None``."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Random state and counters, for checkpoints; empty for stateless methods."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state

    @staticmethod
    def _backward(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> None:
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def _clean_backward(
        self, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, scaler: torch.amp.GradScaler | None
    ) -> torch.Tensor:
        loss = loss_fn(self.model(x), y)
        extra = self.extra_loss()
        self._backward(loss if extra is None else loss + extra, scaler)
        return loss.detach()


def bn_buffers(model: nn.Module) -> list[torch.Tensor]:
    """The running-statistics buffers of every BatchNorm layer of ``model``."""
    out = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            out.extend(
                b for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None
            )
    return out


@contextmanager
def frozen_bn(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Restore BatchNorm running statistics on exit, bit for bit.

    Extra forward passes of adversarial methods would otherwise count the same batch several
    times (a known bug of popular SAM code).
    """
    buffers = bn_buffers(model) if enabled else []
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, s in zip(buffers, saved, strict=True):
                b.copy_(s)
