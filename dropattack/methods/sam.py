"""Sharpness-Aware Minimisation (Foret et al. 2021), with the adaptive variant (ASAM)."""

from __future__ import annotations

import torch
from torch import nn

from dropattack.methods.base import LossFn, Method, frozen_bn
from dropattack.methods.perturb import (
    check_bn,
    check_number,
    clean_grads,
    global_norm,
    shift,
    trainable,
)
from dropattack.methods.registry import register


@register
class SAM(Method):
    """Gradient at the worst nearby weights: ``grad L(w + e)``, ``e = rho * g / ||g||_2``.

    ``g`` is the clean gradient and ``||g||`` one norm over every trainable parameter. With
    ``adaptive=True`` (ASAM, Kwon et al. 2021) ``e = rho * w^2 * g / ||w * g||_2``
    (elementwise products), the perturbation of the popular SAM implementation. The update
    gradient is ``grad L(w + e)`` alone; the weights are restored from saved copies. A zero
    or non-finite norm gives ``e = 0``. With ``bn="freeze"`` only the clean pass updates
    BatchNorm statistics (SAM code that reruns the forward pass counts each batch twice).

    Cost: 2 forward/backward passes a step.

    Args:
        model: any ``nn.Module`` called as ``model(x)``.
        rho: neighbourhood radius ``rho >= 0`` (default 0.05; ASAM usually takes a larger
            one, e.g. 2.0).
        adaptive: ASAM's scale-invariant neighbourhood (default ``False``).
        bn: ``"freeze"`` (default) or ``"update"`` (both passes update BatchNorm statistics).
    """

    name = "sam"
    passes = 2

    def __init__(
        self, model: nn.Module, rho: float = 0.05, adaptive: bool = False, bn: str = "freeze"
    ) -> None:
        super().__init__(model)
        self.rho = check_number("rho", rho, 0.0)
        if not isinstance(adaptive, bool):
            raise ValueError(f"adaptive: expected True or False, got {adaptive!r}")
        self.adaptive = adaptive
        self.bn = check_bn(bn)
        if not trainable(model):
            raise ValueError(f"model: {type(model).__name__} has no trainable parameter for SAM")

    def backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> torch.Tensor:
        params = trainable(self.model)
        loss, grads = clean_grads(self.model, params, x, y, loss_fn, scaler)
        used = [(p, g) for p, g in zip(params, grads, strict=True) if g is not None]
        params = [p for p, _ in used]
        with torch.no_grad():
            r = self._perturbation(used) if used else []
        saved = [p.detach().clone() for p in params]
        try:
            shift(params, saved, r)
            with frozen_bn(self.model, self.bn == "freeze"):
                self._backward(loss_fn(self.model(x), y), scaler)
        finally:
            shift(params, saved, [None] * len(params))
        return loss

    def _perturbation(self, used: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        terms = [p.abs() * g if self.adaptive else g for p, g in used]
        norm = global_norm(terms)
        ok = torch.isfinite(norm) & (norm > 0)
        scale = torch.where(ok, self.rho / norm, 0.0)
        out = []
        for (p, g), term in zip(used, terms, strict=True):
            e = (p.abs() * term if self.adaptive else g) * scale.to(g.device, g.dtype)
            out.append(torch.where(ok.to(g.device), e, 0.0))
        return out
