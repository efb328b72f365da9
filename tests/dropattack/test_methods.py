"""Comparison methods: one step of each against an independent computation, restore, BN, errors.

Expected gradients are computed here from the method's formula with ``torch.func.functional_call``
and ``torch.autograd.grad`` on float64 models, never through the methods' own code.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dropattack import methods

ALL = [
    "standard", "l1", "l2", "dropout", "fgsm", "fgm", "pgd", "freeat", "freelb", "dropattack",
    "awp", "amp", "sam",
]  # fmt: skip
TOL = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The models are tiny: one thread is faster than sharing a busy machine's cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class MLP(nn.Module):
    def __init__(self, bn: bool = False) -> None:
        super().__init__()
        self.l1 = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6) if bn else nn.Identity()
        self.drop = nn.Dropout(0.0)
        self.l2 = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(self.drop(torch.tanh(self.bn(self.l1(x)))))


class TextNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.drop = nn.Dropout(0.0)
        self.fc = nn.Linear(4, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.tanh(self.emb(ids)).mean(1)))


def _mlp(bn: bool = False, seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP(bn).double()


def _text() -> TextNet:
    torch.manual_seed(0)
    return TextNet().double()


def _data(seed: int = 0, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randint(
        0, 3, (n,), generator=g
    )


def _ids(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 10, (6, 5), generator=g), torch.randint(0, 3, (6,), generator=g)


def _setup(target: str):
    """(model, x, y) for attacking ``target``: the float input of an MLP or an embedding."""
    if target == "input":
        return (_mlp(), *_data())
    return (_text(), *_ids())


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _loss(model, params, x, y) -> torch.Tensor:
    return F.cross_entropy(functional_call(model, params, (x,)), y)


def _grad(model, params, x, y) -> dict[str, torch.Tensor]:
    """Gradient of the loss at ``(params, x)`` w.r.t. every parameter and, if float, ``x``."""
    ps = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    xs = x.detach().clone().requires_grad_(x.is_floating_point())
    inputs = list(ps.values()) + ([xs] if x.is_floating_point() else [])
    grads = torch.autograd.grad(_loss(model, ps, xs, y), inputs)
    out = dict(zip(ps, grads, strict=False))
    if x.is_floating_point():
        out["input"] = grads[-1]
    return out


def _at(params, x, target, r):
    """``(params, x)`` with ``r`` added to ``target`` (``"input"`` or a parameter name)."""
    if target == "input":
        return params, x + r
    return {**params, target: params[target] + r}, x


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm()


def _proj(r: torch.Tensor, eps: float) -> torch.Tensor:
    return r * (eps / r.norm()) if r.norm() > eps else r


def _step(method, model, x, y, loss_fn=F.cross_entropy, scaler=None):
    model.zero_grad(set_to_none=True)
    loss = method.backward(x, y, loss_fn, scaler=scaler)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters()}


def _build(name: str, model: nn.Module, **hp) -> methods.Method:
    if name == "freeat":
        hp.setdefault("optimizer", torch.optim.SGD(model.parameters(), lr=0.1))
    return methods.get(name, model, **hp)


def _assert_grads(actual: dict, expected: dict) -> None:
    assert actual.keys() <= expected.keys()
    for n in actual:
        torch.testing.assert_close(actual[n], expected[n], **TOL, msg=lambda m, n=n: f"{n}: {m}")


# --- registry ---------------------------------------------------------------------------------


def test_names_lists_all_thirteen_methods_in_order():
    assert methods.names() == ALL


def test_unknown_method_error_lists_the_names():
    with pytest.raises(ValueError, match="nope") as e:
        methods.get("nope", _mlp())
    assert all(n in str(e.value) for n in ALL)


def test_unknown_hyperparameter_names_the_method():
    with pytest.raises(ValueError, match="method 'fgm'.*bogus"):
        methods.get("fgm", _mlp(), bogus=1)


# --- regularisers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "lam", "penalty_grad"),
    [("l1", 0.03, lambda w, lam: lam * torch.sign(w)), ("l2", 0.03, lambda w, lam: lam * w)],
)
def test_penalty_adds_its_gradient_to_weights_only(name, lam, penalty_grad):
    model, (x, y) = _mlp(), _data()
    th = _params(model)
    loss, got = _step(methods.get(name, model, lam=lam), model, x, y)
    g = _grad(model, th, x, y)
    weights = {"l1.weight", "l2.weight"}  # matrices; the biases are not penalised
    expected = {n: g[n] + (penalty_grad(th[n], lam) if n in weights else 0) for n in th}
    _assert_grads(got, expected)
    torch.testing.assert_close(loss, _loss(model, th, x, y), **TOL)  # the data loss alone


def test_penalty_value_is_stated_form():
    model = _mlp()
    w = [model.l1.weight, model.l2.weight]
    l1 = methods.get("l1", model, lam=0.5).extra_loss()
    l2 = methods.get("l2", model, lam=0.5).extra_loss()
    torch.testing.assert_close(l1, 0.5 * sum(t.abs().sum() for t in w), **TOL)
    torch.testing.assert_close(l2, 0.5 * 0.5 * sum((t * t).sum() for t in w), **TOL)


def test_dropout_sets_the_rate_and_trains_with_it():
    model, (x, y) = _mlp(), _data()
    th = _params(model)
    method = methods.get("dropout", model, rate=0.4)
    assert model.drop.p == 0.4
    torch.manual_seed(7)
    _, got = _step(method, model, x, y)
    torch.manual_seed(7)  # the same dropout mask for the reference
    expected = _grad(model, th, x, y)
    _assert_grads(got, expected)
    clean = _grad(_mlp(), th, x, y)
    assert not torch.allclose(got["l2.weight"], clean["l2.weight"])  # dropout was active


def test_dropout_needs_a_dropout_module():
    with pytest.raises(ValueError, match="model: .*no dropout module"):
        methods.get("dropout", nn.Linear(3, 2))


# --- input attacks ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["input", "emb.weight"])
def test_fgsm_step(target):
    model, x, y = _setup(target)
    th, eps = _params(model), 0.1
    loss, got = _step(methods.get("fgsm", model, attack=target, eps=eps), model, x, y)
    g = _grad(model, th, x, y)
    r = eps * torch.sign(g[target])
    g_adv = _grad(model, *_at(th, x, target, r), y)
    _assert_grads(got, {n: g[n] + g_adv[n] for n in th})
    torch.testing.assert_close(loss, _loss(model, th, x, y), **TOL)


@pytest.mark.parametrize("target", ["input", "emb.weight"])
def test_fgm_step(target):
    model, x, y = _setup(target)
    th, eps = _params(model), 0.7
    loss, got = _step(methods.get("fgm", model, attack=[target], eps=eps), model, x, y)
    g = _grad(model, th, x, y)
    g_adv = _grad(model, *_at(th, x, target, eps * _unit(g[target])), y)
    _assert_grads(got, {n: g[n] + g_adv[n] for n in th})
    torch.testing.assert_close(loss, _loss(model, th, x, y), **TOL)


@pytest.mark.parametrize("target", ["input", "emb.weight"])
def test_pgd_steps_and_projects(target):
    model, x, y = _setup(target)
    th, k, alpha, eps = _params(model), 3, 0.5, 0.8
    _, got = _step(methods.get("pgd", model, attack=target, eps=eps, k=k, alpha=alpha), model, x, y)
    g0 = _grad(model, th, x, y)
    g, r = g0, torch.zeros(())
    for _ in range(k):
        r = _proj(r + alpha * _unit(g[target]), eps)
        g = _grad(model, *_at(th, x, target, r), y)
    assert r.norm() == pytest.approx(eps)  # the projection was active
    _assert_grads(got, {n: g0[n] + g[n] for n in th})


@pytest.mark.parametrize("target", ["input", "emb.weight"])
def test_freelb_accumulates_k_passes(target):
    model, x, y = _setup(target)
    th, k, alpha, eps = _params(model), 3, 0.5, 0.7
    m = methods.get("freelb", model, attack=target, eps=eps, k=k, alpha=alpha)
    loss, got = _step(m, model, x, y)
    acc = {n: torch.zeros_like(p) for n, p in th.items()}
    delta = torch.zeros(())
    for _ in range(k):
        g = _grad(model, *_at(th, x, target, delta), y)
        acc = {n: acc[n] + g[n] / k for n in th}
        delta = _proj(delta + alpha * _unit(g[target]), eps)
    assert delta.norm() == pytest.approx(eps)
    _assert_grads(got, acc)
    torch.testing.assert_close(loss, _loss(model, th, x, y), **TOL)


def _freeat_reference(model, th, x, y, target, eps, m, lr, delta):
    for i in range(m):
        pt, xt = _at(th, x, target, delta)
        g = _grad(model, pt, xt, y)
        if i == 0:
            first = _loss(model, pt, xt, y)
        delta = (delta + eps * torch.sign(g[target])).clamp(-eps, eps)
        if i < m - 1:
            th = {n: th[n] - lr * g[n] for n in th}
    return th, g, first, delta


@pytest.mark.parametrize("target", ["input", "emb.weight"])
def test_freeat_replays_with_optimizer_steps_and_carries_delta(target):
    model, x, y = _setup(target)
    th, eps, m, lr = _params(model), 0.05, 3, 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    method = methods.get("freeat", model, attack=target, eps=eps, m=m, optimizer=opt)
    loss, got = _step(method, model, x, y)
    shape = x.shape if target == "input" else th[target].shape
    th_exp, g, first, delta = _freeat_reference(
        model, th, x, y, target, eps, m, lr, torch.zeros(shape, dtype=torch.float64)
    )
    _assert_grads(_params(model), th_exp)  # m - 1 optimizer steps taken
    _assert_grads(got, g)  # the last replay's gradient, for the caller's step
    torch.testing.assert_close(loss, first, **TOL)
    assert delta.abs().max() == pytest.approx(eps)  # clipping reached the bound
    # The next minibatch starts from the carried delta, also after a checkpoint round trip.
    x2, y2 = _data(seed=1) if target == "input" else _ids(seed=1)
    twin = copy.deepcopy(model)
    resumed = methods.get(
        "freeat",
        twin,
        attack=target,
        eps=eps,
        m=m,
        optimizer=torch.optim.SGD(twin.parameters(), lr),
    )
    resumed.load_state_dict(method.state_dict())
    _, g2, first2, _ = _freeat_reference(model, _params(model), x2, y2, target, eps, m, lr, delta)
    for meth in (method, resumed):
        loss2, got2 = _step(meth, meth.model, x2, y2)
        torch.testing.assert_close(loss2, first2, **TOL)
        _assert_grads(got2, g2)


def test_freeat_needs_the_training_optimizer():
    model = _mlp()
    with pytest.raises(ValueError, match="optimizer: .*torch.optim.Optimizer"):
        methods.get("freeat", model)
    other = torch.optim.SGD(_mlp().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer: holds none"):
        methods.get("freeat", model, optimizer=other)


def test_input_target_needs_a_float_input():
    model, x, y = _setup("emb.weight")
    with pytest.raises(ValueError, match="attack: 'input' needs a floating-point"):
        methods.get("fgm", model).backward(x, y, F.cross_entropy)


# --- weight perturbations ---------------------------------------------------------------------


def test_awp_relative_perturbation_of_weight_tensors():
    model, (x, y) = _mlp(), _data()
    th, gamma = _params(model), 0.05
    loss, got = _step(methods.get("awp", model, gamma=gamma), model, x, y)
    g = _grad(model, th, x, y)
    weights = {"l1.weight", "l2.weight"}  # 2-D weights only: biases stay
    v = {n: gamma * th[n].norm() * _unit(g[n]) if n in weights else 0 for n in th}
    _assert_grads(got, _grad(model, {n: th[n] + v[n] for n in th}, x, y))
    torch.testing.assert_close(loss, _loss(model, th, x, y), **TOL)


def test_amp_inner_ascent_in_per_tensor_balls():
    model, (x, y) = _mlp(), _data()
    th, eps, k, alpha = _params(model), 0.15, 2, 0.3
    loss, got = _step(methods.get("amp", model, eps=eps, k=k, alpha=alpha), model, x, y)
    g = _grad(model, th, x, y)
    delta = {n: torch.zeros_like(p) for n, p in th.items()}
    for _ in range(k):
        delta = {n: _proj(delta[n] + alpha * g[n], eps) for n in th}
        g = _grad(model, {n: th[n] + delta[n] for n in th}, x, y)
    norms = [d.norm().item() for d in delta.values()]
    assert any(nm == pytest.approx(eps) for nm in norms)  # some tensors were projected
    assert any(nm < eps * 0.99 for nm in norms)  # and some were not
    _assert_grads(got, g)
    torch.testing.assert_close(loss, _loss(model, th, x, y), **TOL)


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_global_norm_perturbation(adaptive):
    model, (x, y) = _mlp(), _data()
    th, rho = _params(model), 0.3
    loss, got = _step(methods.get("sam", model, rho=rho, adaptive=adaptive), model, x, y)
    g = _grad(model, th, x, y)
    if adaptive:
        norm = math.sqrt(sum(((th[n].abs() * g[n]) ** 2).sum() for n in th))
        e = {n: rho * th[n] ** 2 * g[n] / norm for n in th}
    else:
        norm = math.sqrt(sum((g[n] ** 2).sum() for n in th))
        e = {n: rho * g[n] / norm for n in th}
    _assert_grads(got, _grad(model, {n: th[n] + e[n] for n in th}, x, y))
    torch.testing.assert_close(loss, _loss(model, th, x, y), **TOL)


# --- properties every method shares ----------------------------------------------------------

# Methods that perturb parameters during the step, with hyperparameters that make them do so.
PERTURBING = {
    "fgsm": {"attack": ["input", "l1.weight"]},
    "fgm": {"attack": ["input", "l1.weight"]},
    "pgd": {"attack": ["input", "l1.weight"]},
    "freelb": {"attack": ["input", "l1.weight"]},
    "dropattack": {"attack": ["input", "l1.weight"], "p": 1.0},
    "awp": {},
    "amp": {"k": 2},
    "sam": {"adaptive": True, "rho": 0.5},
}


@pytest.mark.parametrize("name", list(PERTURBING))
def test_parameters_are_perturbed_then_restored_bit_for_bit(name):
    model, (x, y) = _mlp(), _data()
    before = _params(model)
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda mod, args: seen.append(mod.l1.weight.detach().clone()))
    method = methods.get(name, model, **PERTURBING[name])
    _step(method, model, x, y)
    assert len(seen) >= 2 and not torch.equal(seen[-1], before["l1.weight"])  # was perturbed
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n


# FreeAT steps the optimizer and zeroes .grad by definition.
@pytest.mark.parametrize("name", [n for n in ALL if n != "freeat"])
def test_gradients_add_to_those_already_in_grad(name):
    """A caller accumulating over micro-batches gets ``before + this step`` in ``.grad``."""
    hp = PERTURBING.get(name, {})
    model, (x, y) = _mlp(), _data()
    twin = copy.deepcopy(model)
    torch.manual_seed(1)
    _, fresh = _step(_build(name, model, **hp), model, x, y)
    g = torch.Generator().manual_seed(3)
    prior = {
        n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in twin.named_parameters()
    }
    for n, p in twin.named_parameters():
        p.grad = prior[n].clone()
    torch.manual_seed(1)
    _build(name, twin, **hp).backward(x, y, F.cross_entropy)
    _assert_grads({n: p.grad for n, p in twin.named_parameters()},
                  {n: prior[n] + fresh[n] for n in prior})  # fmt: skip


@pytest.mark.parametrize("name", ALL)
def test_cost_in_forward_passes_matches_passes(name):
    model, (x, y) = _mlp(), _data()
    method = _build(name, model, **PERTURBING.get(name, {}))
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    _step(method, model, x, y)
    assert len(calls) == getattr(method, "passes", 1)


@pytest.mark.parametrize("name", ALL)
def test_batchnorm_statistics_only_from_the_clean_pass(name):
    model, (x, y) = _mlp(bn=True), _data()
    reference = copy.deepcopy(model).train()
    with torch.no_grad():
        reference(x)
    _step(_build(name, model), model, x, y)
    for a, b in zip(model.bn.buffers(), reference.bn.buffers(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["fgsm", "fgm", "pgd", "freeat", "freelb", "awp", "amp", "sam"])
def test_batchnorm_update_mode_counts_every_pass(name):
    model, (x, y) = _mlp(bn=True), _data()
    method = _build(name, model, bn="update")
    _step(method, model, x, y)
    assert model.bn.num_batches_tracked.item() == method.passes > 1


@pytest.mark.parametrize("name", ALL)
def test_grad_scaler_gives_the_scaled_same_step(name):
    hp = PERTURBING.get(name, {})
    model, (x, y) = _mlp(), _data()
    twin = copy.deepcopy(model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    torch.manual_seed(1)
    _, plain = _step(_build(name, model, **hp), model, x, y)
    torch.manual_seed(1)
    _, got = _step(_build(name, twin, **hp), twin, x, y, scaler=scaler)
    _assert_grads({n: g / 2.0**10 for n, g in got.items()}, plain)
    _assert_grads(_params(twin), _params(model))


@pytest.mark.parametrize("name", ["fgsm", "fgm", "pgd", "freelb", "awp", "amp", "sam"])
def test_zero_gradient_leaves_everything_finite(name):
    model, (x, y) = _mlp(), _data()
    before = _params(model)
    _, got = _step(_build(name, model), model, x, y, loss_fn=lambda out, _y: (out * 0.0).sum())
    assert all(torch.equal(g, torch.zeros_like(g)) for g in got.values())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize(
    ("name", "hp", "arg"),
    [
        ("fgsm", {"eps": -0.1}, "eps"),
        ("fgsm", {"eps": math.inf}, "eps"),
        ("fgm", {"eps": -1.0}, "eps"),
        ("fgm", {"bn": "twice"}, "bn"),
        ("fgm", {"attack": "nope"}, "attack"),
        ("pgd", {"k": 0}, "k"),
        ("pgd", {"k": 2.0}, "k"),
        ("pgd", {"alpha": 0.0}, "alpha"),
        ("pgd", {"eps": -1}, "eps"),
        ("freeat", {"m": 0}, "m"),
        ("freeat", {"eps": -1}, "eps"),
        ("freelb", {"k": 0}, "k"),
        ("freelb", {"alpha": -0.1}, "alpha"),
        ("l1", {"lam": -1e-3}, "lam"),
        ("l2", {"lam": math.nan}, "lam"),
        ("dropout", {"rate": 1.0}, "rate"),
        ("dropout", {"rate": -0.1}, "rate"),
        ("awp", {"gamma": -1.0}, "gamma"),
        ("awp", {"bn": "x"}, "bn"),
        ("amp", {"eps": -1.0}, "eps"),
        ("amp", {"k": 0}, "k"),
        ("amp", {"alpha": 0}, "alpha"),
        ("sam", {"rho": -0.05}, "rho"),
        ("sam", {"adaptive": "yes"}, "adaptive"),
    ],
)
def test_bad_hyperparameters_name_the_argument_and_range(name, hp, arg):
    with pytest.raises(ValueError, match=rf"^{arg}: .*(expected|allowed range)"):
        _build(name, _mlp(), **hp)


@pytest.mark.parametrize("name", ["l1", "l2", "awp"])
def test_weight_methods_need_a_weight_tensor(name):
    with pytest.raises(ValueError, match="model: BatchNorm1d has no weight tensor"):
        methods.get(name, nn.BatchNorm1d(3))


@pytest.mark.parametrize(
    ("name", "hp"),
    [
        ("fgm", {"attack": ["l1.weight"], "eps": 0.5}),
        ("pgd", {"attack": ["l1.weight"], "eps": 0.5, "k": 2, "alpha": 0.3}),
        ("freelb", {"attack": ["l1.weight"], "eps": 0.5, "k": 2, "alpha": 0.3}),
        ("awp", {"gamma": 0.05}),
        ("amp", {"eps": 0.5, "k": 2, "alpha": 1.0}),
        ("sam", {"rho": 0.5}),
        ("dropattack", {"attack": ["l1.weight"], "eps": 0.5, "p": 1.0, "k": 2}),
    ],
)
def test_autocast_passes_see_the_perturbed_weights(name, hp):
    """Autocast caches low-precision weight copies; in-place perturbations must invalidate them."""
    torch.manual_seed(0)
    model = MLP().float()
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    outputs: list[torch.Tensor] = []
    model.register_forward_hook(lambda m, a, out: outputs.append(out.detach()))
    method = methods.get(name, model, **hp)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _step(method, model, x, y)
    assert len(outputs) >= 2
    for later in outputs[1:]:
        assert not torch.equal(later, outputs[0]), "a pass under autocast ran on stale weights"
