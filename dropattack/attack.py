"""DropAttack (Ni, Li, Kao 2021): masked adversarial perturbation of inputs and weights.

One step of :class:`DropAttack` with ``k = K`` and ``G`` non-empty groups costs exactly
``1 + K * G`` forward and backward passes:

1. a clean pass gives ``g`` (every parameter's ``.grad``) and, for an ``"input"`` target,
   ``g_x``;
2. for each group, a Bernoulli(p) mask ``M`` is drawn once per tensor and reused for all
   ``K`` ascent steps (Algorithm 2). Step ``t`` perturbs the group's tensors by
   ``M * eps * d / ||d||_2`` (one L2 norm per tensor), where ``d`` is the gradient accumulated
   so far within the group: ``g`` plus ``1/K`` times the adversarial gradients of the
   group's earlier steps. The pass backpropagates ``L / K`` into ``.grad``.

So the update gradient left in ``.grad`` is ``g + (1/K) * sum(adversarial gradients of every
group and step)``: Algorithm 1 at ``K = 1`` (``g + g_adv``) and Algorithm 2 at every K.

Perturbed parameters are restored from saved copies, so every parameter holds its value from
before the step bit for bit; with ``bn="freeze"`` (the default) BatchNorm running statistics
are restored too, so only the clean pass updates them.

That is ``step="paper"``: Algorithms 1 and 2 as printed, each ascent step starting from the
clean weights. ``step="notebook"`` is the step of the authors' public notebooks, operation
for operation (see :meth:`DropAttack._notebook_backward`): the ascent accumulates (step ``t``
trains on ``theta + r_0 + ... + r_t``), parameters are perturbed in place through ``.data``
and restored by rebinding ``.data`` to a saved copy, and the update gradient is that of one
backward over the graphs of all ``1 + K * G`` passes, retained until then. Parameters whose
values a backward reads (an LSTM's input weights, say) are then read as the group's last
perturbation left them, in every retained graph that saved them. That step costs the same
``1 + K * G`` forward passes but ``2 * (1 + K * G)`` backward passes, and holds the
activations of all ``1 + K * G`` passes in memory until the final backward.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from dropattack.methods.base import LossFn, Method, frozen_bn
from dropattack.methods.perturb import own_grads
from dropattack.methods.registry import register
from dropattack.targets import Target, check_float_input, per_target, resolve

__all__ = ["DropAttack", "GROUP_MODES", "STEP_MODES"]

GROUP_MODES = ("paper", "per_target", "joint")
STEP_MODES = ("paper", "notebook")


@dataclass(eq=False)
class _State:
    """One target's working tensors for the current step (restricted to rows for embeddings)."""

    target: Target
    eps: float
    g0: torch.Tensor  # this batch's clean gradient: the first ascent direction
    drop: torch.Tensor | None  # True where the mask is 0; None when p == 1
    rows: torch.Tensor | None = None  # embedding rows the batch looked up
    orig: torch.Tensor | None = None  # saved parameter values, restored after every pass
    start: torch.Tensor | None = None  # .grad at the start of the group (K > 1)
    acc: torch.Tensor | None = None  # accumulated input gradient (input target, K > 1)

    def has_grad(self) -> bool:
        return self.target.param is not None and self.target.param.grad is not None

    def grad_copy(self) -> torch.Tensor:
        g = self.grad()
        return g.clone() if self.rows is None and g is self.target.param.grad else g

    def grad(self) -> torch.Tensor:
        """The parameter's current ``.grad`` (its looked-up rows, for embeddings)."""
        g = self.target.param.grad
        if g is None:  # not on the loss's path: its gradient is zero
            return torch.zeros_like(self.g0)
        return g if self.rows is None else g.index_select(0, self.rows)


@register
class DropAttack(Method):
    """Masked adversarial perturbation of the input and of chosen weights (Algorithms 1 and 2).

    Cost: ``1 + k * G`` forward/backward passes a step, ``G`` the number of non-empty groups.

    Args:
        model: any ``nn.Module`` called as ``model(x)``.
        attack: targets: ``"input"`` (the float input x), exact parameter names, or globs over
            ``model.named_parameters()``. For text models the paper's input attack is the
            embedding weight.
        eps: perturbation radius ``eps >= 0``: a number or a dict keyed by attack entry or
            parameter name (the paper's eps_x, eps_theta).
        p: attack probability in ``[0, 1]``, a number or such a dict. ``p = 1`` is unmasked; a
            target with ``p = 0`` or ``eps = 0`` is never perturbed, and a step where every
            target is so is exactly a standard step.
        k: ascent steps K >= 1 (DropAttack-K, Algorithm 2).
        seed: seeds the ``torch.Generator`` that draws the masks on each device.
        groups: ``"paper"`` (Eq. 5: the input term, i.e. x and embedding weights, and the
            weight term, all hidden targets together), ``"per_target"`` (one group per
            tensor, as the authors' notebooks do) or ``"joint"`` (everything in one pass).
        bn: ``"freeze"`` restores BatchNorm running statistics after the adversarial passes;
            ``"update"`` lets every pass update them (the authors' code).
        embedding_rows: restrict embedding-weight perturbations to the rows the batch looks
            up (others have zero gradient). Turn off if the weight is also used outside its
            ``nn.Embedding`` (tied output layers).
        step: ``"paper"`` (Algorithms 1 and 2 as printed: every ascent step starts from the
            clean weights; ``1 + k * G`` passes) or ``"notebook"`` (the authors' notebooks'
            step: cumulative ascent, in-place perturbation, one final backward over the
            retained graphs of every pass; ``1 + k * G`` forward and ``2 * (1 + k * G)``
            backward passes, the activations of all passes held until the final backward).
    """

    name = "dropattack"

    def __init__(
        self,
        model: nn.Module,
        attack: str | Sequence[str] = ("input",),
        eps: float | Mapping[str, float] = 5.0,
        p: float | Mapping[str, float] = 0.7,
        k: int = 1,
        seed: int = 0,
        groups: str = "paper",
        bn: str = "freeze",
        embedding_rows: bool = True,
        step: str = "paper",
    ) -> None:
        super().__init__(model)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected an integer >= 1, got {k!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
        if groups not in GROUP_MODES:
            raise ValueError(f"groups: expected one of {GROUP_MODES}, got {groups!r}")
        if bn not in ("freeze", "update"):
            raise ValueError(f"bn: expected 'freeze' or 'update', got {bn!r}")
        if step not in STEP_MODES:
            raise ValueError(f"step: expected one of {STEP_MODES}, got {step!r}")
        self.targets = resolve(model, attack)
        self.eps = per_target(eps, self.targets, "eps", 0.0, math.inf)
        self.p = per_target(p, self.targets, "p", 0.0, 1.0)
        self.k = k
        self.seed = seed
        self.bn = bn
        self.embedding_rows = embedding_rows
        self.step = step
        active = [t for t in self.targets if self.eps[t.name] > 0 and self.p[t.name] > 0]
        self.groups: list[list[Target]] = _make_groups(active, groups)
        self._generators: dict[str, torch.Generator] = {}
        self._skipped: dict[str, torch.Tensor] = {}

    @property
    def passes(self) -> int:
        """Forward and backward passes a step costs: ``1 + k * G``.

        With ``step="notebook"`` these are the forward passes; the step then runs twice as
        many backward passes.
        """
        return 1 + self.k * len(self.groups)

    @property
    def skipped(self) -> int:
        """Target-steps skipped so far because the gradient norm was zero or non-finite."""
        return int(sum(int(v.item()) for v in self._skipped.values()))

    def backward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> torch.Tensor:
        """Accumulate the DropAttack update gradient into ``.grad``; return the clean loss."""
        if not self.groups:
            return self._clean_backward(x, y, loss_fn, scaler)
        if self.step == "notebook":
            return self._notebook_backward(x, y, loss_fn, scaler)
        active, x_clean, looked_up, hooks = self._clean_pass_inputs(x)
        try:
            loss = loss_fn(self.model(x_clean), y)
        finally:
            for h in hooks:
                h.remove()
        with torch.no_grad():
            states = [[self._state(t, x_clean, looked_up) for t in g] for g in self.groups]
            # A caller accumulating micro-batches has gradients in .grad already: the ascent
            # direction is this batch's clean gradient, so take the prior part out again.
            prior = [[st.grad_copy() if st.has_grad() else None for st in g] for g in states]
        self._backward(loss, scaler)
        with torch.no_grad():
            for group, before in zip(states, prior, strict=True):
                for st, b in zip(group, before, strict=True):
                    if st.target.is_input:
                        st.g0 = x_clean.grad if x_clean.grad is not None else st.g0
                    else:
                        st.g0 = st.grad_copy() if b is None else st.grad() - b
                    st.drop = self._drop_mask(st.target, st.g0)
        loss = loss.detach()
        with frozen_bn(self.model, self.bn == "freeze"):
            for group in states:
                self._attack(group, x, y, loss_fn, scaler)
        return loss

    def _state(
        self, t: Target, x: torch.Tensor, looked_up: dict[nn.Embedding, list[torch.Tensor]]
    ) -> _State:
        """Saved values and looked-up rows of ``t``; ``g0`` and the mask follow the backward."""
        if t.is_input:
            return _State(t, self.eps[t.name], torch.zeros_like(x), None)
        param = t.param
        rows = None
        if t.embedding is not None and self.embedding_rows:
            ids = looked_up.get(t.embedding, [])
            rows = (
                torch.unique(torch.cat([i.reshape(-1) for i in ids]))
                if ids
                else torch.zeros(0, dtype=torch.long, device=param.device)
            )
        orig = param.detach().clone() if rows is None else param.detach().index_select(0, rows)
        return _State(t, self.eps[t.name], torch.zeros_like(orig), None, rows=rows, orig=orig)

    def _drop_mask(self, t: Target, like: torch.Tensor) -> torch.Tensor | None:
        p = self.p[t.name]
        if p >= 1.0:
            return None
        gen = self._generator(like.device)
        return torch.rand(like.shape, generator=gen, device=like.device) >= p

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            self._generators[key] = gen
        return gen

    def _perturbation(self, st: _State, d: torch.Tensor) -> torch.Tensor:
        """``M * eps * d / ||d||_2``; zero (and counted) when the norm is zero or non-finite."""
        norm = torch.linalg.vector_norm(
            d if d.dtype in (torch.float32, torch.float64) else d.float()
        )
        ok = torch.isfinite(norm) & (norm > 0)
        r = torch.where(ok, d * (st.eps / norm).to(d.dtype), 0.0)
        if st.drop is not None:
            r.masked_fill_(st.drop, 0.0)
        key = str(d.device)
        self._skipped[key] = self._skipped.get(key, 0) + (~ok).to(torch.int64)
        return r

    def _attack(
        self,
        group: list[_State],
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        scaler: torch.amp.GradScaler | None,
    ) -> None:
        k = self.k
        with torch.no_grad():
            for st in group:
                if st.target.is_input:
                    st.acc = st.g0 if k == 1 else st.g0.clone()
                elif k > 1:
                    st.start = st.grad().clone()
        for t in range(k):
            x_in = x
            with torch.no_grad():
                for st in group:
                    if st.target.is_input:
                        x_in = (x + self._perturbation(st, st.acc)).requires_grad_(t < k - 1)
                        continue
                    d = st.g0 if t == 0 else st.g0 + (st.grad() - st.start)
                    r = self._perturbation(st, d)
                    param = st.target.param
                    if st.rows is None:
                        param.add_(r)
                    else:
                        param.index_copy_(0, st.rows, st.orig + r)
                # autocast caches low-precision copies of parameters; in-place edits do not
                # invalidate them, so without this the pass would see the clean weights.
                torch.clear_autocast_cache()
            try:
                loss = loss_fn(self.model(x_in), y) / k
                self._backward(loss, scaler)
                del loss
            finally:
                with torch.no_grad():
                    for st in group:
                        if st.target.is_input:
                            continue
                        if st.rows is None:
                            st.target.param.copy_(st.orig)
                        else:
                            st.target.param.index_copy_(0, st.rows, st.orig)
                    torch.clear_autocast_cache()
            if t < k - 1:
                with torch.no_grad():
                    for st in group:
                        if st.target.is_input and x_in.grad is not None:
                            st.acc.add_(x_in.grad)

    def _clean_pass_inputs(self, x: torch.Tensor) -> tuple[list[Any], torch.Tensor, dict, list]:
        """The attacked tensors, the clean pass's input (a leaf when the input is attacked),
        and forward hooks recording the embedding rows looked up (removed by the caller)."""
        active = [t for g in self.groups for t in g]
        x_clean = x
        if any(t.is_input for t in active):
            check_float_input(x)
            x_clean = x.detach().requires_grad_(True)
        looked_up: dict[nn.Embedding, list[torch.Tensor]] = {}
        hooks = [
            t.embedding.register_forward_pre_hook(partial(_record_ids, looked_up))
            for t in active
            if t.embedding is not None and self.embedding_rows
        ]
        return active, x_clean, looked_up, hooks

    def _notebook_backward(
        self, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, scaler: torch.amp.GradScaler | None
    ) -> torch.Tensor:
        """The authors' step: ``loss.backward()`` once over every pass's retained graph.

        In their order: the clean pass and its backward (graph kept); the clean gradients of
        all parameters saved; then for each group, its ``K`` passes, each perturbing the
        group's tensors in place by ``M * eps * g / ||g||`` with ``g`` the current ``.grad``
        (so the perturbations add up), each backward keeping its graph, and after the last
        one the tensors rebound to their saved values and ``.grad`` set back to the clean
        gradients. Last, ``.grad`` cleared and one backward of the sum of every pass's loss.
        """
        params = [p for p in self.model.parameters() if p.requires_grad]
        active, x_clean, looked_up, hooks = self._clean_pass_inputs(x)
        with own_grads(params):
            try:
                loss = loss_fn(self.model(x_clean), y)
            finally:
                for h in hooks:
                    h.remove()
            _retained_backward(loss, scaler)
            with torch.no_grad():
                clean = [None if p.grad is None else p.grad.clone() for p in params]
                states = [[self._state(t, x_clean, looked_up) for t in g] for g in self.groups]
                for st in (st for g in states for st in g):
                    st.g0 = x_clean.grad if st.target.is_input else st.grad_copy()
                    st.drop = self._drop_mask(st.target, st.g0)
            total = loss
            with frozen_bn(self.model, self.bn == "freeze"):
                for i, group in enumerate(states):
                    if i > 0:
                        for p, g in zip(params, clean, strict=True):
                            p.grad = None if g is None else g.clone()
                    total = total + self._notebook_group(group, x_clean, y, loss_fn, scaler)
            for p in params:
                p.grad = None
            self._backward(total, scaler)
        return loss.detach()

    def _notebook_group(
        self,
        group: list[_State],
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        scaler: torch.amp.GradScaler | None,
    ) -> torch.Tensor:
        """One group's ``K`` cumulative passes; the sum of their losses, graphs kept."""
        k = self.k
        saved: dict[int, torch.Tensor] = {}
        x_in = x
        total: torch.Tensor | None = None
        try:
            for t in range(k):
                with torch.no_grad():
                    for i, st in enumerate(group):
                        if st.target.is_input:
                            d = st.g0 if t == 0 else st.acc
                            x_in = (x_in.detach() + self._perturbation(st, d)).requires_grad_()
                            continue
                        data = st.target.param.data
                        if t == 0:
                            saved[i] = data.clone()
                        r = self._perturbation(st, st.grad())
                        if st.rows is None:
                            data.add_(r)
                        else:
                            data.index_add_(0, st.rows, r)
                    torch.clear_autocast_cache()
                loss = loss_fn(self.model(x_in), y) / k
                _retained_backward(loss, scaler)
                total = loss if total is None else total + loss
                with torch.no_grad():
                    for st in group:
                        if st.target.is_input and x_in.grad is not None:
                            st.acc = (st.g0 if t == 0 else st.acc) + x_in.grad
        finally:
            for i, st in enumerate(group):
                if i in saved:
                    st.target.param.data = saved[i]
            torch.clear_autocast_cache()
        return total

    def state_dict(self) -> dict[str, Any]:
        return {
            "generators": {k: g.get_state() for k, g in self._generators.items()},
            "skipped": self.skipped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, gstate in state.get("generators", {}).items():
            gen = self._generator(torch.device(key))
            gen.set_state(gstate)
        self._skipped = {"cpu": torch.tensor(int(state.get("skipped", 0)))}

    def __repr__(self) -> str:
        names = [t.name for t in self.targets]
        return (
            f"DropAttack(attack={names}, eps={self.eps}, p={self.p}, k={self.k}, "
            f"groups={[[t.name for t in g] for g in self.groups]}, bn={self.bn!r}, "
            f"step={self.step!r})"
        )


def _retained_backward(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> None:
    (scaler.scale(loss) if scaler is not None else loss).backward(retain_graph=True)


def _record_ids(store: dict[nn.Embedding, list[torch.Tensor]], module: nn.Embedding, args):
    store.setdefault(module, []).append(args[0].detach())


def _make_groups(active: list[Target], mode: str) -> list[list[Target]]:
    if mode == "joint":
        return [active] if active else []
    if mode == "per_target":
        return [[t] for t in active]
    groups = [[t for t in active if t.group == "input"], [t for t in active if t.group == "weight"]]
    return [g for g in groups if g]
