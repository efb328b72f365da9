"""Pieces the comparison methods share: argument checks, L2 steps, gradient bookkeeping.

:class:`InputAttack` is the base of the input-perturbing methods (FGSM, FGM, PGD, FreeAT,
FreeLB): it resolves ``attack`` to targets (the float input ``x`` or parameters, e.g. an
embedding weight), runs the clean pass, perturbs and restores. Parameters are always restored
from saved copies, never by subtracting, so they end each step bit for bit as they began.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from dropattack.methods.base import LossFn, Method, frozen_bn
from dropattack.targets import Target, check_float_input, per_target, resolve

__all__ = [
    "BN_MODES",
    "InputAttack",
    "check_bn",
    "check_int",
    "check_number",
    "clean_grads",
    "global_norm",
    "l2_unit",
    "own_grads",
    "project_l2",
    "scaled",
    "shift",
    "trainable",
    "weight_params",
]

BN_MODES = ("freeze", "update")


def check_int(arg: str, value: object, low: int) -> int:
    """``value`` as an integer ``>= low``; ``ValueError`` naming ``arg`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{arg}: expected an integer >= {low}, got {value!r}")
    return int(value)


def check_number(
    arg: str,
    value: object,
    low: float,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]`` (ends open where asked); else ValueError."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    v = float(value) if ok else math.nan
    open_high = open_high or high == math.inf
    ok = ok and (v > low if open_low else v >= low) and (v < high if open_high else v <= high)
    if not ok:
        lo = f"({low}" if open_low else f"[{low}"
        hi = f"{high})" if open_high else f"{high}]"
        raise ValueError(f"{arg}: expected a number in {lo}, {hi}, got {value!r}")
    return v


def check_bn(bn: str) -> str:
    if bn not in BN_MODES:
        raise ValueError(f"bn: expected one of {BN_MODES}, got {bn!r}")
    return bn


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter of ``model`` that requires grad."""
    return [p for p in model.parameters() if p.requires_grad]


def weight_params(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The *weights*: trainable parameters named ``*weight*`` with two or more dimensions.

    Matrices, convolution kernels and embeddings; not biases nor normalisation scales (the
    rule of the AWP authors' code, also used for L1/L2 here).
    """
    return [
        (n, p)
        for n, p in model.named_parameters()
        if p.requires_grad and "weight" in n and p.dim() >= 2
    ]


def scaled(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    return scaler.scale(loss) if scaler is not None else loss


def _norm(d: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(d if d.dtype in (torch.float32, torch.float64) else d.float())


def l2_unit(d: torch.Tensor) -> torch.Tensor:
    """``d / ||d||_2`` over the whole tensor; zeros where the norm is zero or not finite."""
    norm = _norm(d)
    ok = torch.isfinite(norm) & (norm > 0)
    return torch.where(ok, d * (1.0 / norm).to(d.dtype), 0.0)


def project_l2(r: torch.Tensor, eps: float) -> torch.Tensor:
    """Project ``r`` onto the L2 ball of radius ``eps`` (one tensor); zeros if not finite.

    ``eps = inf`` leaves finite ``r`` unchanged.
    """
    norm = _norm(r)
    factor = torch.where(norm > eps, eps / norm, 1.0)
    return torch.where(torch.isfinite(norm), r * factor.to(r.dtype), 0.0)


def global_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all ``tensors`` taken as one vector (on the first one's device)."""
    device = tensors[0].device
    return torch.linalg.vector_norm(torch.stack([_norm(t).to(device) for t in tensors]))


def clean_grads(
    model: nn.Module,
    params: Sequence[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    scaler: torch.amp.GradScaler | None,
) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """The clean loss (detached) and its gradient w.r.t. ``params``; ``.grad`` is left alone.

    Gradients are scaled by ``scaler`` when one is given; ``None`` for unused parameters.
    """
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(scaled(loss, scaler), list(params), allow_unused=True)
    return loss.detach(), list(grads)


@torch.no_grad()
def shift(
    params: Sequence[torch.Tensor],
    saved: Sequence[torch.Tensor],
    r: Sequence[torch.Tensor | None],
) -> None:
    """Set each parameter to ``saved + r`` (to ``saved`` where ``r`` is ``None``)."""
    for p, s, ri in zip(params, saved, r, strict=True):
        p.copy_(s if ri is None else s + ri)
    weights_changed()


def weights_changed() -> None:
    """Drop autocast's low-precision copies of parameters after editing them in place.

    Autocast caches the casted weights for the whole context and an in-place edit does not
    invalidate the cache: without this, a pass under autocast would see the old weights.
    """
    torch.clear_autocast_cache()


@contextmanager
def own_grads(params: Sequence[torch.Tensor]) -> Iterator[None]:
    """Inside the block ``.grad`` of ``params`` holds only what the block accumulates.

    On exit the gradients from before are added back (``before + block``, the sum autograd
    would have formed), so callers accumulating over micro-batches keep working.
    """
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        yield
    finally:
        for p, before in zip(params, saved, strict=True):
            if before is None:
                continue
            p.grad = before if p.grad is None else before.add_(p.grad)


class InputAttack(Method):
    """Base of the methods that perturb ``attack`` targets along their gradients.

    Each target (``"input"`` or a parameter) gets its own perturbation, L2 steps taking one
    norm per tensor; all targets are perturbed together, in the same passes. ``x`` is
    perturbed as a new tensor, parameters in place and restored from saved copies.
    """

    #: Whether ``eps = inf`` (no bound) is meaningful for the method.
    unbounded_eps = False

    def __init__(
        self,
        model: nn.Module,
        attack: str | Sequence[str] = ("input",),
        eps: float | Mapping[str, float] = 1.0,
        bn: str = "freeze",
    ) -> None:
        super().__init__(model)
        self.targets: list[Target] = resolve(model, attack)
        self.eps = per_target(eps, self.targets, "eps", 0.0, math.inf)
        if not self.unbounded_eps:
            for name, v in self.eps.items():
                if math.isinf(v):
                    raise ValueError(f"eps: expected a finite number >= 0 for {name!r}, got {v}")
        self.bn = check_bn(bn)
        self._params = [t.param for t in self.targets if not t.is_input]
        self._input = any(t.is_input for t in self.targets)

    def _leaf(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as a leaf that records its gradient when the input is a target."""
        if not self._input:
            return x
        check_float_input(x)
        return x.detach().requires_grad_(True)

    def _clean(
        self, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, scaler: torch.amp.GradScaler | None
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """The clean pass into ``.grad``: ``(x leaf, clean loss, clean gradient per target)``."""
        x0 = self._leaf(x)
        with own_grads(self._params):
            loss = self._clean_backward(x0, y, loss_fn, scaler)
            grads = [self._grad(t, x0).clone() for t in self.targets]
        return x0, loss, grads

    @staticmethod
    def _grad(t: Target, x_in: torch.Tensor) -> torch.Tensor:
        g = x_in.grad if t.is_input else t.param.grad
        return g if g is not None else torch.zeros_like(x_in if t.is_input else t.param)

    def _target_grads(
        self, loss: torch.Tensor, x_in: torch.Tensor, scaler: torch.amp.GradScaler | None
    ) -> list[torch.Tensor]:
        """Gradients of ``loss`` w.r.t. the targets only; ``.grad`` is left alone."""
        inputs = [x_in if t.is_input else t.param for t in self.targets]
        grads = torch.autograd.grad(scaled(loss, scaler), inputs, allow_unused=True)
        return [
            g if g is not None else torch.zeros_like(i) for g, i in zip(grads, inputs, strict=True)
        ]

    @torch.no_grad()
    def _apply(
        self, x: torch.Tensor, r: list[torch.Tensor], saved: list[torch.Tensor]
    ) -> torch.Tensor:
        """Set every parameter target to ``saved + r``; return ``x + r`` (or ``x``)."""
        x_in = x.detach()
        it = iter(saved)
        for t, rt in zip(self.targets, r, strict=True):
            if t.is_input:
                x_in = x_in + rt
            else:
                t.param.copy_(next(it) + rt)
        weights_changed()
        return x_in

    def _one_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        scaler: torch.amp.GradScaler | None,
        step: Callable[[torch.Tensor, float], torch.Tensor],
    ) -> torch.Tensor:
        """Clean pass, then one pass at ``r = step(g, eps)`` per target; both into ``.grad``."""
        x0, loss, grads = self._clean(x, y, loss_fn, scaler)
        with torch.no_grad():
            r = [step(g, self.eps[t.name]) for t, g in zip(self.targets, grads, strict=True)]
        saved = self._save()
        try:
            with frozen_bn(self.model, self.bn == "freeze"):
                x_in = self._apply(x0, r, saved)
                self._backward(loss_fn(self.model(x_in), y), scaler)
        finally:
            self._restore(saved)
        return loss

    def _save(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self._params]

    @torch.no_grad()
    def _restore(self, saved: list[torch.Tensor]) -> None:
        for p, s in zip(self._params, saved, strict=True):
            p.copy_(s)
        weights_changed()
