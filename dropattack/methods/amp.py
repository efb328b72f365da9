"""Adversarial Model Perturbation (Zheng et al. 2020): inner ascent on the weights."""

from __future__ import annotations

import torch
from torch import nn

from dropattack.methods.base import LossFn, Method, frozen_bn
from dropattack.methods.perturb import (
    check_bn,
    check_int,
    check_number,
    clean_grads,
    project_l2,
    scaled,
    shift,
    trainable,
)
from dropattack.methods.registry import register


@register
class AMP(Method):
    """Minimise the loss at the worst weights in a per-tensor ball: ``grad L(w + Delta_K)``.

    ``Delta_0 = 0``; inner step ``t = 1..K`` sets ``Delta_t = P(Delta_{t-1} + alpha * g_{t-1})``
    for every trainable parameter, ``g_{t-1}`` the (unscaled) gradient at ``w + Delta_{t-1}``
    and ``P`` the projection of each tensor onto its L2 ball of radius ``eps``, as in the
    authors' ``AMP`` optimizer. The update gradient is ``grad L(w + Delta_K)`` alone; the
    weights are restored from saved copies. A non-finite step leaves that tensor at 0.

    Cost: ``1 + k`` forward/backward passes a step.

    Args:
        model: any ``nn.Module`` called as ``model(x)``.
        eps: radius ``eps >= 0`` of each tensor's ball (default 0.5, the authors' setting).
        k: inner ascent steps ``k >= 1`` (default 1, the authors' ``inner_iter``).
        alpha: inner step size ``alpha > 0`` on the raw gradient (default 1.0, the authors'
            ``inner_lr``).
        bn: ``"freeze"`` (default) lets only the clean pass update BatchNorm statistics;
            ``"update"`` lets every pass update them.
    """

    name = "amp"

    def __init__(
        self,
        model: nn.Module,
        eps: float = 0.5,
        k: int = 1,
        alpha: float = 1.0,
        bn: str = "freeze",
    ) -> None:
        super().__init__(model)
        self.eps = check_number("eps", eps, 0.0)
        self.k = check_int("k", k, 1)
        self.alpha = check_number("alpha", alpha, 0.0, open_low=True)
        self.bn = check_bn(bn)
        if not trainable(model):
            raise ValueError(f"model: {type(model).__name__} has no trainable parameter for AMP")

    @property
    def passes(self) -> int:
        return 1 + self.k

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
        unscale = 1.0 / scaler.get_scale() if scaler is not None else 1.0
        delta: list[torch.Tensor | None] = [None] * len(params)
        saved = [p.detach().clone() for p in params]
        try:
            with frozen_bn(self.model, self.bn == "freeze"):
                for t in range(self.k):
                    with torch.no_grad():
                        for i, g in enumerate(grads):
                            if g is not None:
                                step = g * (self.alpha * unscale)
                                d = step if delta[i] is None else delta[i] + step
                                delta[i] = project_l2(d, self.eps)
                    shift(params, saved, delta)
                    adv = loss_fn(self.model(x), y)
                    if t < self.k - 1:
                        grads = torch.autograd.grad(scaled(adv, scaler), params, allow_unused=True)
                    else:
                        self._backward(adv, scaler)
        finally:
            shift(params, saved, [None] * len(params))
        return loss
