"""FGSM adversarial training (Goodfellow, Shlens, Szegedy 2015), the paper's Eq. 1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from dropattack.methods.base import LossFn
from dropattack.methods.perturb import InputAttack
from dropattack.methods.registry import register


def sign_step(g: torch.Tensor, eps: float) -> torch.Tensor:
    """``eps * sign(g)``, with zeros where ``g`` is not finite."""
    return torch.where(torch.isfinite(g), torch.sign(g) * eps, 0.0)


@register
class FGSM(InputAttack):
    """Fast Gradient Sign Method: train on ``x`` and on ``x + eps * sign(grad_x L)``.

    Update gradient: ``grad L(x) + grad L(x + r)`` (the clean and adversarial terms summed, as in
    the paper's Algorithm 1 and the usual text-classification code; Goodfellow et al.'s
    weighted mean with alpha = 0.5 is half of it). ``r`` is an L-infinity step of size ``eps``.

    Cost: 2 forward/backward passes a step.

    Args:
        model: any ``nn.Module`` called as ``model(x)``.
        attack: targets (default ``("input",)``); for text models the embedding weight name.
        eps: step size ``eps >= 0`` per element (default ``8/255``, the images-in-[0, 1]
            setting of Wong et al. 2020); a number or a dict keyed by target.
        bn: ``"freeze"`` (default) keeps BatchNorm statistics from the adversarial pass;
            ``"update"`` lets both passes update them.
    """

    name = "fgsm"
    passes = 2

    def __init__(
        self,
        model: nn.Module,
        attack: str | Sequence[str] = ("input",),
        eps: float | Mapping[str, float] = 8 / 255,
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
        return self._one_step(x, y, loss_fn, scaler, sign_step)
