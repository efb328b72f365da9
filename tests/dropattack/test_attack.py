"""DropAttack engine: exactness against independent computations, cost, masks, restore."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dropattack import DropAttack, methods


class MLP(nn.Module):
    def __init__(self, bn: bool = False) -> None:
        super().__init__()
        self.l1 = nn.Linear(6, 10)
        self.bn = nn.BatchNorm1d(10) if bn else nn.Identity()
        self.l2 = nn.Linear(10, 8)
        self.l3 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l3(torch.tanh(self.l2(torch.tanh(self.bn(self.l1(x))))))


class TextLSTM(nn.Module):
    def __init__(self, vocab: int = 50, dim: int = 8) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.rnn = nn.LSTM(dim, dim, batch_first=True)
        self.fc = nn.Linear(dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(x))
        return self.fc(out[:, -1])


def _data(n: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def _mlp(bn: bool = False) -> MLP:
    torch.manual_seed(0)
    return MLP(bn).double()


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _loss(model, params, x, y):
    return F.cross_entropy(functional_call(model, params, (x,)), y)


def _reference(model, x, y, input_eps, weight_eps, weight_names, k):
    """Algorithms 1/2 with p = 1, written independently with torch.autograd.grad.

    Groups per Eq. 5: the input term and the weight term; within each group the ascent
    direction is g + (1/K) * (adversarial gradients of the group's earlier steps).
    """
    params = {n: p.detach() for n, p in model.named_parameters()}
    names = list(params)

    def grads(pr, xx):
        pr = {n: t.clone().requires_grad_(True) for n, t in pr.items()}
        xx = xx.clone().requires_grad_(True)
        gs = torch.autograd.grad(_loss(model, pr, xx, y), [*pr.values(), xx])
        return dict(zip(names, gs[:-1], strict=True)), gs[-1]

    g, gx = grads(params, x)
    update = {n: g[n].clone() for n in names}
    if input_eps:
        acc = gx.clone()
        for _ in range(k):
            a, ax = grads(params, x + input_eps * acc / acc.norm())
            for n in names:
                update[n] += a[n] / k
            acc = acc + ax / k
    if weight_names:
        acc = {n: g[n].clone() for n in weight_names}
        for _ in range(k):
            pert = dict(params)
            for n in weight_names:
                pert[n] = params[n] + weight_eps * acc[n] / acc[n].norm()
            b, _ = grads(pert, x)
            for n in names:
                update[n] += b[n] / k
            for n in weight_names:
                acc[n] = acc[n] + b[n] / k
    return update


@pytest.mark.parametrize("k", [1, 2, 3])
def test_update_gradient_matches_algorithms_1_and_2(k):
    model = _mlp()
    x, y = _data()
    da = DropAttack(model, attack=["input", "l1.weight", "l2.*"], eps=0.4, p=1.0, k=k)
    model.zero_grad()
    da.backward(x, y, F.cross_entropy)
    ref = _reference(model, x, y, 0.4, 0.4, ["l1.weight", "l2.weight", "l2.bias"], k)
    for name, got in _grads(model).items():
        torch.testing.assert_close(got, ref[name], atol=1e-6, rtol=0)


def test_eps_and_p_per_target_dicts():
    model = _mlp()
    x, y = _data()
    da = DropAttack(
        model, attack=["input", "l1.weight"], eps={"input": 0.2, "l1.weight": 0.7}, p=1.0
    )
    model.zero_grad()
    da.backward(x, y, F.cross_entropy)
    ref = _reference(model, x, y, 0.2, 0.7, ["l1.weight"], 1)
    for name, got in _grads(model).items():
        torch.testing.assert_close(got, ref[name], atol=1e-10, rtol=0)


def _param_grads(model, params, x, y):
    pr = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    gs = torch.autograd.grad(_loss(model, pr, x, y), list(pr.values()))
    return dict(zip(pr, gs, strict=True))


def _capture_outputs(model: nn.Module) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    model.register_forward_hook(lambda m, a, out: outputs.append(out.detach()))
    return outputs


def test_embedding_rows_and_lstm_match_dense_reference():
    """Row-restricted embedding attack equals perturbing the whole weight (others have g = 0)."""
    torch.manual_seed(1)
    model = TextLSTM().double()
    x = torch.randint(1, 20, (4, 7))  # rows >= 20 are never looked up
    y = torch.tensor([0, 1, 1, 0])
    targets = ["embedding.weight", "rnn.weight_ih_l0"]
    for k in (1, 2):
        da = DropAttack(model, attack=targets, eps=0.5, p=1.0, k=k)
        model.zero_grad()
        da.backward(x, y, F.cross_entropy)
        got = _grads(model)
        # Independent: the embedding is the input term, rnn.weight_ih_l0 the weight term.
        params = {n: p.detach() for n, p in model.named_parameters()}
        names = list(params)
        g = _param_grads(model, params, x, y)
        update = {n: g[n].clone() for n in names}
        for target in targets:
            acc = g[target].clone()
            for _ in range(k):
                pert = dict(params)
                pert[target] = params[target] + 0.5 * acc / acc.norm()
                b = _param_grads(model, pert, x, y)
                for n in names:
                    update[n] += b[n] / k
                acc = acc + b[target] / k
        for name in names:
            torch.testing.assert_close(got[name], update[name], atol=1e-10, rtol=0)


def test_p_zero_is_a_standard_step_bit_for_bit():
    model, ref = _mlp(), _mlp()
    x, y = _data()
    da = DropAttack(model, attack=["input", "l1.weight"], eps=5.0, p=0.0)
    std = methods.get("standard", ref)
    assert da.passes == 1
    la = da.backward(x, y, F.cross_entropy)
    lb = std.backward(x, y, F.cross_entropy)
    assert torch.equal(la, lb)
    for (n, a), (_, b) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), n


def _count_passes(model: nn.Module, last: nn.Parameter):
    counts = {"forward": 0, "backward": 0}
    model.register_forward_hook(lambda *_: counts.__setitem__("forward", counts["forward"] + 1))
    last.register_hook(lambda g: counts.__setitem__("backward", counts["backward"] + 1))
    return counts


@pytest.mark.parametrize(("groups", "g"), [("paper", 2), ("per_target", 3), ("joint", 1)])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_pass_count_is_one_plus_k_times_groups(groups, g, k):
    model = _mlp()
    x, y = _data()
    counts = _count_passes(model, model.l3.weight)
    da = DropAttack(model, attack=["input", "l1.weight", "l2.weight"], p=0.5, k=k, groups=groups)
    da.backward(x, y, F.cross_entropy)
    assert da.passes == 1 + k * g
    assert counts == {"forward": 1 + k * g, "backward": 1 + k * g}


def _capture_perturbed(model: nn.Module, layer: nn.Linear):
    """Record ``layer.weight`` at each forward pass (the adversarial passes see it perturbed)."""
    seen = []
    layer.register_forward_pre_hook(lambda m, a: seen.append(m.weight.detach().clone()))
    return seen


def test_mask_rate_same_mask_over_k_steps_and_seeded():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 3)).double()
    x = torch.randn(32, 200, dtype=torch.float64)
    y = torch.randint(0, 3, (32,))
    p = 0.3
    seen = _capture_perturbed(model, model[0])
    da = DropAttack(model, attack=["0.weight"], eps=1.0, p=p, k=2, seed=7)
    da.backward(x, y, F.cross_entropy)
    clean, step1, step2 = seen
    m1, m2 = step1 != clean, step2 != clean
    n = m1.numel()
    rate = m1.double().mean().item()
    assert abs(rate - p) < 5 * (p * (1 - p) / n) ** 0.5, rate
    assert torch.equal(m1, m2), "the mask must be reused for all K ascent steps"
    assert not torch.equal(step1, step2), "the perturbation itself moves between steps"

    def masks(seed):
        clone = copy.deepcopy(model)
        s = _capture_perturbed(clone, clone[0])
        DropAttack(clone, attack=["0.weight"], eps=1.0, p=p, seed=seed).backward(
            x, y, F.cross_entropy
        )
        return s[1] != s[0]

    assert torch.equal(masks(3), masks(3))
    assert not torch.equal(masks(3), masks(4))


def test_masks_drawn_fresh_each_step():
    model = _mlp()
    x, y = _data()
    seen = _capture_perturbed(model, model.l1)
    da = DropAttack(model, attack=["l1.weight"], p=0.5, seed=0)
    da.backward(x, y, F.cross_entropy)
    da.backward(x, y, F.cross_entropy)
    assert not torch.equal(seen[1] != seen[0], seen[3] != seen[2])


def test_parameters_restored_and_bn_statistics_frozen():
    model = _mlp(bn=True)
    x, y = _data()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    reference = copy.deepcopy(model)
    reference(x)  # the clean pass is the only one allowed to move running statistics
    da = DropAttack(model, attack=["input", "l1.weight", "bn.weight"], eps=3.0, p=0.6, k=2)
    da.backward(x, y, F.cross_entropy)
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n]), n
    for (n, b), (_, r) in zip(model.named_buffers(), reference.named_buffers(), strict=True):
        assert torch.equal(b, r), n

    updating = copy.deepcopy(reference)
    updating.load_state_dict(copy.deepcopy(model).state_dict())
    DropAttack(updating, attack=["l1.weight"], eps=3.0, p=0.6, bn="update").backward(
        x, y, F.cross_entropy
    )
    assert updating.bn.num_batches_tracked.item() == model.bn.num_batches_tracked.item() + 2


def test_embedding_untouched_rows_and_values_restored():
    torch.manual_seed(2)
    model = TextLSTM(vocab=1000, dim=16)
    x = torch.randint(1, 30, (8, 12))
    y = torch.randint(0, 2, (8,))
    before = model.embedding.weight.detach().clone()
    seen = []
    model.rnn.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    da = DropAttack(model, attack=["embedding.weight"], eps=2.0, p=0.7)
    da.backward(x, y, F.cross_entropy)
    assert torch.equal(model.embedding.weight.detach(), before)
    assert not torch.equal(seen[0], seen[1]), "the adversarial pass saw perturbed embeddings"


def test_first_order_growth_eq13():
    """L(theta + M r) - L(theta) = eps * ||M g||^2 / ||g|| + O(eps^2).

    At p = 1 this is Eq. 13's eps * ||g||_2. With a mask, Eq. 13's eps * ||M g||_2 is an upper
    bound (Cauchy-Schwarz): the exact first-order term of r = M * eps * g / ||g|| is the one here.
    """
    eps = 1e-5
    for p in (1.0, 0.5):
        model = _mlp()
        x, y = _data()
        outputs = _capture_outputs(model)
        seen = _capture_perturbed(model, model.l2)
        da = DropAttack(model, attack=["l2.weight"], eps=eps, p=p, seed=1)
        model.zero_grad()
        da.backward(x, y, F.cross_entropy)
        clean_loss = F.cross_entropy(outputs[0], y).item()
        adv_loss = F.cross_entropy(outputs[1], y).item()
        r = seen[1] - seen[0]
        mask = r != 0
        # The clean gradient of l2.weight: the update holds g + g_adv, so recompute g directly.
        params = {n: q.detach().clone().requires_grad_(True) for n, q in model.named_parameters()}
        (g,) = torch.autograd.grad(_loss(model, params, x, y), [params["l2.weight"]])
        predicted = eps * (g * mask).norm().item() ** 2 / g.norm().item()
        if p == 1.0:
            assert mask.all()
            assert predicted == pytest.approx(eps * g.norm().item(), rel=1e-12)
        assert adv_loss - clean_loss == pytest.approx(predicted, rel=1e-3)


def test_zero_gradient_target_is_skipped_and_counted():
    model = _mlp()
    model.unused = nn.Parameter(torch.ones(3, dtype=torch.float64))
    x, y = _data()
    da = DropAttack(model, attack=["unused", "l1.weight"], p=1.0, k=2, groups="per_target")
    da.backward(x, y, F.cross_entropy)
    assert da.skipped == 2
    assert torch.equal(model.unused.detach(), torch.ones(3, dtype=torch.float64))
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.bfloat16, 0.1), (torch.float16, 5e-3)])
def test_autocast_sees_perturbed_weights_and_matches_fp32(dtype, tol):
    """Autocast caches low-precision weight copies; the adversarial pass must not reuse them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    ref = copy.deepcopy(model)
    attack = dict(attack=["0.weight"], eps=0.5, p=1.0, k=2)
    DropAttack(ref, **attack).backward(x, y, F.cross_entropy)
    before = copy.deepcopy(model.state_dict())
    outputs = _capture_outputs(model)
    with torch.autocast("cpu", dtype=dtype):
        DropAttack(model, **attack).backward(x, y, F.cross_entropy)
    assert not torch.equal(outputs[0], outputs[1]), "adversarial pass ran on clean weights"
    assert not torch.equal(outputs[1], outputs[2]), "second ascent step ran on stale weights"
    for (n, a), (_, b) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        assert a.grad.dtype == torch.float32
        rel = (a.grad - b.grad).norm() / b.grad.norm()
        assert rel < tol, (n, rel.item())
        assert torch.equal(a.detach(), before[n])


def test_fp16_with_grad_scaler_unscales_to_fp32_result():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    ref = copy.deepcopy(model)
    attack = dict(attack=["input", "0.weight"], eps=0.5, p=0.8, seed=3)
    DropAttack(ref, **attack).backward(x, y, F.cross_entropy)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with torch.autocast("cpu", dtype=torch.float16):
        DropAttack(model, **attack).backward(x, y, F.cross_entropy, scaler=scaler)
    scaler.unscale_(opt)
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        assert (a.grad - b.grad).norm() / b.grad.norm() < 5e-3


def test_works_inside_an_ordinary_training_loop():
    torch.manual_seed(0)
    model = TextLSTM(vocab=100, dim=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    da = DropAttack(model, attack=["embedding.weight", "rnn.weight_ih_l0"], eps=1.0, p=0.7)
    x = torch.randint(1, 100, (32, 10))
    y = (x[:, 0] > 50).long()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        losses.append(da.backward(x, y, F.cross_entropy).item())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps": -1.0}, r"eps: -1.0 .*outside the allowed range \[0.0, inf\]"),
        ({"p": 1.5}, r"p: 1.5 .*outside the allowed range \[0.0, 1.0\]"),
        ({"p": -0.1}, r"p: -0.1 .*\[0.0, 1.0\]"),
        ({"k": 0}, r"k: expected an integer >= 1"),
        ({"k": 1.5}, r"k: expected an integer >= 1"),
        ({"seed": -1}, r"seed: expected an integer >= 0"),
        ({"groups": "all"}, r"groups: expected one of"),
        ({"bn": "off"}, r"bn: expected 'freeze' or 'update'"),
        ({"attack": ["nope"]}, r"attack: 'nope' matches no parameter .*l1.weight, l1.bias"),
        ({"attack": []}, r"attack: expected at least one target"),
        ({"eps": {"l1.weight": 1.0}}, r"eps: no value for target 'input'"),
        ({"p": {"input": 0.5, "l9": 0.5}}, r"p: unknown key\(s\) \['l9'\]"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    args = {"attack": ["input", "l1.weight"], **kwargs}
    with pytest.raises(ValueError, match=match):
        DropAttack(_mlp(), **args)


def test_frozen_target_and_integer_input_rejected():
    model = _mlp()
    model.l1.weight.requires_grad_(False)
    with pytest.raises(ValueError, match=r"'l1.weight' does not require grad"):
        DropAttack(model, attack=["l1.weight"])
    text = TextLSTM()
    da = DropAttack(text, attack=["input"])
    with pytest.raises(ValueError, match=r"'input' needs a floating-point input tensor"):
        da.backward(torch.randint(0, 50, (2, 5)), torch.tensor([0, 1]), F.cross_entropy)


def test_state_dict_round_trip_reproduces_masks():
    x, y = _data()
    a, b = _mlp(), _mlp()
    seen_a, seen_b = _capture_perturbed(a, a.l1), _capture_perturbed(b, b.l1)
    da = DropAttack(a, attack=["l1.weight"], p=0.5, seed=0)
    da.backward(x, y, F.cross_entropy)
    resumed = DropAttack(b, attack=["l1.weight"], p=0.5, seed=0)
    resumed.load_state_dict(da.state_dict())
    da.backward(x, y, F.cross_entropy)
    resumed.backward(x, y, F.cross_entropy)
    assert torch.equal(seen_a[3] != seen_a[2], seen_b[1] != seen_b[0])
    assert not torch.equal(seen_a[1] != seen_a[0], seen_a[3] != seen_a[2])
