"""Standard training: one forward and backward pass (cost: 1 pass)."""

from __future__ import annotations

import torch

from dropattack.methods.base import LossFn, Method
from dropattack.methods.registry import register


@register
class Standard(Method):
    """Plain empirical risk minimisation, the paper's baseline."""

    name = "standard"

    def backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> torch.Tensor:
        return self._clean_backward(x, y, loss_fn, scaler)
