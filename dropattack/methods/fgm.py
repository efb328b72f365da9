"""FGM adversarial training (Miyato, Dai, Goodfellow 2017), the paper's Eq. 2."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from dropattack.methods.base import LossFn
from dropattack.methods.perturb import InputAttack, l2_unit
from dropattack.methods.registry import register


def l2_step(g: torch.Tensor, eps: float) -> torch.Tensor:
    """``eps * g / ||g||_2`` (zeros for a zero or non-finite gradient)."""
    return l2_unit(g) * eps


@register
class FGM(InputAttack):
    """Fast Gradient Method: train on ``x`` and on ``x + eps * g / ||g||_2``, ``g = grad_x L``.

    One L2 norm per target tensor (the whole batch for ``x``, the whole matrix for an
    embedding weight). Update gradient: ``grad L(x) + grad L(x + r)``.

    Cost: 2 forward/backward passes a step.

    Args:
        model: any ``nn.Module`` called as ``model(x)``.
        attack: targets (default ``("input",)``); for text models the embedding weight name.
        eps: L2 radius ``eps >= 0`` (default 1.0); a number or a dict keyed by target.
        bn: ``"freeze"`` (default) keeps BatchNorm statistics from the adversarial pass;
            ``"update"`` lets both passes update them.
    """

    name = "fgm"
    passes = 2

    def __init__(
        self,
        model: nn.Module,
        attack: str | Sequence[str] = ("input",),
        eps: float | Mapping[str, float] = 1.0,
        bn: str = "freeze",
    ) -> None:
        super().__init__(model, attack, eps, bn)

    def backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> torch.Tensor:
        return self._one_step(x, y, loss_fn, scaler, l2_step)
