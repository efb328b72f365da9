"""FreeLB (Zhu et al. 2020): K ascent steps whose parameter gradients are all kept, averaged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from dropattack.methods.base import LossFn, frozen_bn
from dropattack.methods.perturb import (
    InputAttack,
    check_int,
    check_number,
    l2_unit,
    own_grads,
    project_l2,
)
from dropattack.methods.registry import register


@register
class FreeLB(InputAttack):
    """Free Large-Batch adversarial training on an input or embedding perturbation ``delta``.

    ``delta_0 = 0``; pass ``t = 1..K`` runs at ``delta_{t-1}`` and adds ``(1/K) grad L`` to
    every parameter's ``.grad``; then ``delta_t = P(delta_{t-1} + alpha * g / ||g||_2)`` with
    ``g`` the target's gradient of that pass and ``P`` the projection onto the L2 ball of
    radius ``eps`` (one norm per target tensor). The update gradient is the mean over the K
    passes, the first of which is the clean pass (FreeLB with zero initialisation,
    ``adv-init-mag 0`` in the authors' code).

    Cost: ``k`` forward/backward passes a step.

    Args:
        model: any ``nn.Module`` called as ``model(x)``.
        attack: targets (default ``("input",)``); for text models the embedding weight name.
        eps: radius of the L2 ball, ``eps >= 0`` (default 1.0; ``inf`` for no projection, the
            authors' ``max-norm 0``); a number or a dict keyed by target.
        k: passes ``k >= 1`` (default 3, the paper's Table 2 setting); ``k = 1`` is standard
            training.
        alpha: ascent step size ``alpha > 0`` (default 0.3).
        bn: ``"freeze"`` (default) lets only the first (clean) pass update BatchNorm
            statistics; ``"update"`` lets every pass update them.
    """

    name = "freelb"
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
        return self.k

    def backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> torch.Tensor:
        x0 = self._leaf(x)
        delta = [torch.zeros_like(x0 if tg.is_input else tg.param) for tg in self.targets]
        saved = self._save()
        clean = None
        try:
            for t in range(self.k):
                with frozen_bn(self.model, self.bn == "freeze" and t > 0):
                    x_in = x0 if t == 0 else self._apply(x0, delta, saved)
                    x_in.requires_grad_(self._input)
                    with own_grads(self._params):
                        loss = loss_fn(self.model(x_in), y)
                        self._backward(loss / self.k, scaler)
                        if t < self.k - 1:
                            with torch.no_grad():
                                delta = [
                                    project_l2(
                                        d + self.alpha * l2_unit(self._grad(tg, x_in)),
                                        self.eps[tg.name],
                                    )
                                    for tg, d in zip(self.targets, delta, strict=True)
                                ]
                if clean is None:
                    clean = loss.detach()
        finally:
            self._restore(saved)
        return clean
