"""PGD adversarial training (Madry et al. 2018; the paper cites Athalye et al. 2018), Eq. 3."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from dropattack.methods.base import LossFn, frozen_bn
from dropattack.methods.perturb import InputAttack, check_int, check_number, l2_unit, project_l2
from dropattack.methods.registry import register


@register
class PGD(InputAttack):
    """Projected gradient ascent on the targets, K steps inside the eps ball.

    ``r_0 = 0``; step ``t`` sets ``r_t = P(r_{t-1} + alpha * g_{t-1} / ||g_{t-1}||_2)``, where
    ``g_{t-1}`` is the target's gradient at ``r_{t-1}`` (the clean gradient for ``t = 1``) and
    ``P`` projects onto the L2 ball of radius ``eps``, one norm per target tensor. Update
    gradient: ``grad L(x) + grad L(x + r_K)``; the passes at ``r_1 .. r_{K-1}`` only steer the
    ascent (the widely used text-classification implementation; Madry et al. train on the
    adversarial term alone).

    Cost: ``1 + k`` forward/backward passes a step.

    Args:
        model: any ``nn.Module`` called as ``model(x)``.
        attack: targets (default ``("input",)``); for text models the embedding weight name.
        eps: radius of the L2 ball, ``eps >= 0`` (default 1.0; ``inf`` for no projection); a
            number or a dict keyed by target.
        k: ascent steps ``k >= 1`` (default 3, the paper's Table 2 setting).
        alpha: ascent step size ``alpha > 0`` (default 0.3).
        bn: ``"freeze"`` (default) keeps BatchNorm statistics from the adversarial passes;
            ``"update"`` lets every pass update them.
    """

    name = "pgd"
    unbounded_eps = True

    def __init__(
        self,
        model: nn.Module,
        attack: str | Sequence[str] = ("input",),
        eps: float | Mapping[str, float] = 1.0,
        k: int = 3,
        alpha: float = 0.3,
        bn: str = "freeze",
    ) -> None:
        super().__init__(model, attack, eps, bn)
        self.k = check_int("k", k, 1)
        self.alpha = check_number("alpha", alpha, 0.0, open_low=True)

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
        x0, loss, grads = self._clean(x, y, loss_fn, scaler)
        r = [torch.zeros_like(g) for g in grads]
        saved = self._save()
        try:
            with frozen_bn(self.model, self.bn == "freeze"):
                for t in range(self.k):
                    with torch.no_grad():
                        r = [
                            project_l2(ri + self.alpha * l2_unit(g), self.eps[tg.name])
                            for tg, ri, g in zip(self.targets, r, grads, strict=True)
                        ]
                    x_in = self._apply(x0, r, saved)
                    if t < self.k - 1:
                        x_in.requires_grad_(self._input)
                        adv = loss_fn(self.model(x_in), y)
                        grads = self._target_grads(adv, x_in, scaler)
                    else:
                        self._backward(loss_fn(self.model(x_in), y), scaler)
        finally:
            self._restore(saved)
        return loss
