"""Adversarial Weight Perturbation (Wu, Xia, Wang 2020), applied to clean inputs."""

from __future__ import annotations

import torch
from torch import nn

from dropattack.methods.base import LossFn, Method, frozen_bn
from dropattack.methods.perturb import (
    check_bn,
    check_number,
    clean_grads,
    l2_unit,
    shift,
    weight_params,
)
from dropattack.methods.registry import register


@register
class AWP(Method):
    """Layer-wise relative weight perturbation: ``v = gamma * ||w|| / ||d|| * d`` per tensor.

    ``d`` is the ascent direction of the clean loss (its gradient: the authors' one SGD step of
    a proxy model, whose learning rate cancels). Only the *weights* are perturbed: trainable
    parameters named ``*weight*`` with two or more dimensions, as in the authors' code; biases
    and normalisation scales are not. The update gradient is ``grad L(w + v)`` for every
    parameter; the weights are restored from saved copies before the optimizer step (the
    authors subtract ``v`` after it, the same step up to rounding). A zero or non-finite
    ``||d||`` leaves that tensor unperturbed. The inputs are clean (AWP without the PGD
    examples of adversarial training, like the other regularisers compared here).

    Cost: 2 forward/backward passes a step.

    Args:
        model: an ``nn.Module`` with at least one weight tensor.
        gamma: relative size ``gamma >= 0`` of the perturbation (default 5e-3, the paper's
            setting for AT-AWP).
        bn: ``"freeze"`` (default) lets only the clean pass update BatchNorm statistics;
            ``"update"`` lets both passes update them.
    """

    name = "awp"
    passes = 2

    def __init__(self, model: nn.Module, gamma: float = 5e-3, bn: str = "freeze") -> None:
        super().__init__(model)
        self.gamma = check_number("gamma", gamma, 0.0)
        self.bn = check_bn(bn)
        self.weights = weight_params(model)
        if not self.weights:
            raise ValueError(
                f"model: {type(model).__name__} has no weight tensor for AWP to perturb "
                "(trainable, named '*weight*', 2+ dimensions)"
            )

    def backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> torch.Tensor:
        params = [p for _, p in self.weights]
        loss, grads = clean_grads(self.model, params, x, y, loss_fn, scaler)
        with torch.no_grad():
            r = [
                None if g is None else l2_unit(g) * (torch.linalg.vector_norm(w) * self.gamma)
                for w, g in zip(params, grads, strict=True)
            ]
        saved = [p.detach().clone() for p in params]
        try:
            shift(params, saved, r)
            with frozen_bn(self.model, self.bn == "freeze"):
                self._backward(loss_fn(self.model(x), y), scaler)
        finally:
            shift(params, saved, [None] * len(params))
        return loss
