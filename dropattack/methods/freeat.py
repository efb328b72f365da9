"""Free adversarial training (Shafahi et al. 2019): each minibatch replayed m times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from dropattack.methods.base import LossFn, frozen_bn
from dropattack.methods.fgsm import sign_step
from dropattack.methods.perturb import InputAttack, check_int, own_grads
from dropattack.methods.registry import register
from dropattack.targets import Target


@register
class FreeAT(InputAttack):
    """Adversarial training for free: ``m`` replays of a minibatch, an optimizer step each.

    The perturbation ``delta`` (one per target, L-infinity) starts at 0 and is carried over
    from minibatch to minibatch, as in Shafahi et al.'s Algorithm 1. Replay ``i = 1..m`` runs
    at ``x + delta``, then ``delta <- clip(delta + eps * sign(g_delta), -eps, eps)``. The
    parameters are stepped after replays ``1..m-1`` inside :meth:`backward` (with the
    optimizer given here, through ``scaler`` when one is passed); the gradient of replay ``m``
    is left in ``.grad`` for the caller's ``optimizer.step()``, so a minibatch costs ``m``
    optimizer steps in all. Parameters are therefore *not* restored (by definition); an
    attacked parameter never keeps ``delta`` (it is restored from a saved copy before each
    optimizer step). An input ``delta`` whose shape differs from the batch (e.g. a smaller
    last batch) restarts at 0.

    :meth:`backward` returns the loss of the first replay, the clean loss when ``delta`` is 0
    (the first minibatch, or ``eps = 0``). Gradient clipping by the caller applies only to
    the last of the ``m`` steps.

    Cost: ``m`` forward/backward passes and ``m`` optimizer steps a minibatch.

    Args:
        model: any ``nn.Module`` called as ``model(x)``.
        attack: targets (default ``("input",)``); for text models the embedding weight name.
        eps: L-infinity bound and step size ``eps >= 0`` (default ``8/255``, the paper's CIFAR
            setting for images in [0, 1]); a number or a dict keyed by target.
        m: replays ``m >= 1`` (default 3, the paper's Table 2 setting; Shafahi et al. divide
            the number of epochs by ``m`` to match the cost of standard training).
        optimizer: the training optimizer (required); it must hold the model's parameters.
        bn: ``"freeze"`` (default) lets only the first replay update BatchNorm statistics;
            ``"update"`` lets every replay update them.
    """

    name = "freeat"

    def __init__(
        self,
        model: nn.Module,
        attack: str | Sequence[str] = ("input",),
        eps: float | Mapping[str, float] = 8 / 255,
        m: int = 3,
        optimizer: torch.optim.Optimizer | None = None,
        bn: str = "freeze",
    ) -> None:
        super().__init__(model, attack, eps, bn)
        self.m = check_int("m", m, 1)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                "optimizer: FreeAT steps the training optimizer m - 1 times per minibatch; "
                f"expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if not any(id(p) in held for p in model.parameters()):
            raise ValueError("optimizer: holds none of the model's parameters")
        self.optimizer = optimizer
        self._delta: dict[str, torch.Tensor] = {}

    @property
    def passes(self) -> int:
        return self.m

    def backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> torch.Tensor:
        x0 = self._leaf(x)
        delta = [self._start(t, x0 if t.is_input else t.param) for t in self.targets]
        first = None
        for i in range(self.m):
            if i > 0:
                self._step(scaler)
            saved = self._save()
            try:
                with frozen_bn(self.model, self.bn == "freeze" and i > 0):
                    x_in = self._apply(x0, delta, saved).requires_grad_(self._input)
                    with own_grads(self._params):
                        loss = loss_fn(self.model(x_in), y)
                        self._backward(loss, scaler)
                        with torch.no_grad():
                            delta = [
                                self._ascend(t, d, x_in)
                                for t, d in zip(self.targets, delta, strict=True)
                            ]
            finally:
                self._restore(saved)
            if first is None:
                first = loss.detach()
        self._delta = {t.name: d for t, d in zip(self.targets, delta, strict=True)}
        return first

    def _ascend(self, t: Target, d: torch.Tensor, x_in: torch.Tensor) -> torch.Tensor:
        """``clip(d + eps * sign(g), -eps, eps)``, ``g`` the target's gradient of this replay."""
        eps = self.eps[t.name]
        return (d + sign_step(self._grad(t, x_in), eps)).clamp_(-eps, eps)

    def _start(self, t: Target, like: torch.Tensor) -> torch.Tensor:
        d = self._delta.get(t.name)
        if d is None or d.shape != like.shape:
            return torch.zeros_like(like)
        return d.to(like.device, like.dtype)

    def _step(self, scaler: torch.amp.GradScaler | None) -> None:
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.model.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        return {"delta": {k: v.detach().cpu().clone() for k, v in self._delta.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        known = {t.name for t in self.targets}
        delta = dict(state.get("delta", {}))
        unknown = sorted(set(delta) - known)
        if unknown:
            raise ValueError(f"state: FreeAT delta for unknown target(s) {unknown}")
        self._delta = {k: torch.as_tensor(v) for k, v in delta.items()}
