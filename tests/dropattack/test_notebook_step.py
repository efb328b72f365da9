"""``step="notebook"`` against a transcription of the authors' IMDB training step.

The transcription follows the authors' public notebook (DropAttack-LSTM-IMDB): their
``DropAttack`` class (perturb ``param.data`` in place by ``eps * grad / ||grad|| * mask``,
the mask drawn at the first of K steps, back up ``param.data`` there and restore after step K
by rebinding ``.data``; back up and restore ``.grad``) and their ``train_DA`` step (clean
backward with the graph retained, K attacked passes per target in their order, every backward
retaining its graph, the losses summed, ``zero_grad`` and one ``loss.backward()``).
``step="paper"`` is checked against a clean reading of the same loop: each pass's gradient at
the weights it ran with, every ascent step starting from the clean weights.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dropattack import DropAttack

EPS = 5.0
TARGETS = ["embed.weight", "rnn.weight_ih_l0"]  # their order: embedding, then LSTM input


class TinyTextRNN(nn.Module):
    def __init__(self, vocab: int = 30, dim: int = 6, hidden: int = 5) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True)
        self.proj = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.rnn(self.embed(x))
        return self.proj(h[-1])


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = TinyTextRNN().double()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randint(1, 20, (4, 7), generator=g)  # ids below 20: some rows never looked up
    y = torch.randint(0, 2, (4,), generator=g)
    return model, x, y


class AuthorsDropAttack:
    """Their attack/restore/backup_grad/restore_grad, with the mask handed in."""

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        self.model = model
        self.masks = masks
        self.param_backup: dict[str, torch.Tensor] = {}
        self.grad_backup: dict[str, torch.Tensor] = {}

    def attack(self, epsilon: float, param_name: str, is_first_attack: bool) -> None:
        for name, param in self.model.named_parameters():
            if param.requires_grad and name == param_name:
                if is_first_attack:
                    self.param_backup[name] = param.data.clone()
                norm = torch.norm(param.grad)
                if norm != 0 and not torch.isnan(norm):
                    r_at = epsilon * param.grad / norm
                    r_at *= self.masks[name]
                    param.data.add_(r_at)

    def restore(self, param_name: str) -> None:
        for name, param in self.model.named_parameters():
            if param.requires_grad and name == param_name:
                param.data = self.param_backup[name]

    def backup_grad(self) -> None:
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                self.grad_backup[name] = param.grad.clone()

    def restore_grad(self) -> None:
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                param.grad = self.grad_backup[name]


def _authors_step(model, x, y, k: int, masks) -> dict[str, torch.Tensor]:
    """Their ``train_DA`` step for one batch, K steps on each target in their order."""
    criterion = nn.CrossEntropyLoss()
    dropattack = AuthorsDropAttack(model, masks)
    loss = criterion(model(x), y)
    loss.backward(retain_graph=True)
    dropattack.backup_grad()
    for j, name in enumerate(TARGETS):
        if j > 0:
            dropattack.restore_grad()
        for t in range(k):
            dropattack.attack(EPS, name, is_first_attack=(t == 0))
            loss_adv = criterion(model(x), y) / k
            loss_adv.backward(retain_graph=True)
            loss = loss + loss_adv
        dropattack.restore(name)
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def _clean_reading(model, x, y, k: int, masks) -> dict[str, torch.Tensor]:
    """The same loop with each gradient taken at the weights its pass ran with."""
    clean = {n: p.detach() for n, p in model.named_parameters()}

    def grads_at(values, scale):
        leaves = {n: v.clone().requires_grad_() for n, v in values.items()}
        out = torch.func.functional_call(model, leaves, (x,))
        loss = F.cross_entropy(out, y) * scale
        return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))

    g0 = grads_at(clean, 1.0)
    update = dict(g0)
    for name in TARGETS:
        d = g0[name]
        for _ in range(k):
            r = EPS * d / torch.linalg.vector_norm(d) * masks[name]
            g = grads_at({**clean, name: clean[name] + r}, 1.0 / k)
            update = {n: update[n] + g[n] for n in update}
            d = d + g[name]
    return update


def _masks(model: nn.Module, x: torch.Tensor, p: float, seed: int) -> dict[str, torch.Tensor]:
    """The masks DropAttack draws (seeded generator, targets in order, looked-up rows only)."""
    params = dict(model.named_parameters())
    if p >= 1:
        return {n: torch.ones_like(params[n]) for n in TARGETS}
    gen = torch.Generator().manual_seed(seed)
    rows = torch.unique(x.reshape(-1))
    emb = torch.zeros_like(params["embed.weight"])
    emb[rows] = (torch.rand((len(rows), emb.shape[1]), generator=gen) < p).to(emb.dtype)
    w = params["rnn.weight_ih_l0"]
    wih = (torch.rand(w.shape, generator=gen) < p).to(w.dtype)
    return {"embed.weight": emb, "rnn.weight_ih_l0": wih}


def _engine(model, x, y, k: int, p: float, step: str) -> dict[str, torch.Tensor]:
    method = DropAttack(
        model, attack=TARGETS, eps=EPS, p=p, k=k, seed=3, groups="per_target", step=step
    )
    model.zero_grad(set_to_none=True)
    method.backward(x, y, F.cross_entropy)
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-6, atol=1e-6, msg=n)


@pytest.mark.parametrize("p", [1.0, 0.7])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_notebook_step_matches_the_authors_loop(k, p):
    model, x, y = _setup()
    theirs_model = copy.deepcopy(model)
    masks = _masks(model, x, p, seed=3)
    ours = _engine(model, x, y, k, p, "notebook")
    theirs = _authors_step(theirs_model, x, y, k, masks)
    _assert_close(ours, theirs)
    for (n, a), b in zip(model.named_parameters(), theirs_model.parameters(), strict=True):
        assert torch.equal(a, b), n  # both end at the weights they started from


@pytest.mark.parametrize("k", [1, 2, 3])
def test_paper_step_matches_a_clean_reading_of_their_loop(k):
    model, x, y = _setup()
    reading = _clean_reading(copy.deepcopy(model), x, y, k, _masks(model, x, 1.0, seed=3))
    _assert_close(_engine(model, x, y, k, 1.0, "paper"), reading)


@pytest.mark.parametrize("k", [1, 3])
def test_the_two_steps_differ_in_the_embedding_gradient(k):
    model, x, y = _setup()
    paper = _engine(copy.deepcopy(model), x, y, k, 1.0, "paper")
    notebook = _engine(model, x, y, k, 1.0, "notebook")
    diff = torch.linalg.vector_norm(paper["embed.weight"] - notebook["embed.weight"])
    assert diff > 1e-3 * torch.linalg.vector_norm(paper["embed.weight"])


def test_notebook_step_restores_parameters_and_accumulates_onto_prior_gradients():
    model, x, y = _setup()
    before = copy.deepcopy(model.state_dict())
    method = DropAttack(model, attack=TARGETS, eps=EPS, p=1.0, k=3, step="notebook")
    assert method.passes == 1 + 3 * 2
    model.zero_grad(set_to_none=True)
    method.backward(x, y, F.cross_entropy)
    once = {n: p.grad.clone() for n, p in model.named_parameters()}
    for n, v in model.state_dict().items():
        assert torch.equal(v, before[n]), n
    method.backward(x, y, F.cross_entropy)  # a second micro-batch adds onto the first
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, 2 * once[n], msg=n)


def test_unknown_step_is_rejected():
    model, _, _ = _setup()
    with pytest.raises(ValueError, match="step: expected one of"):
        DropAttack(model, attack=TARGETS, step="authors")


def test_notebook_step_on_the_input_accumulates_the_ascent():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (6,), generator=g)
    k, eps = 2, 0.5
    params = list(model.parameters())
    # by hand: x_t = x + r_0 + ... + r_t, each r along the input gradient accumulated so far
    xs = [x.clone().requires_grad_()]
    losses = [F.cross_entropy(model(xs[0]), y)]
    d = torch.autograd.grad(losses[0], xs[0], retain_graph=True)[0]
    for _ in range(k):
        nxt = (xs[-1].detach() + eps * d / torch.linalg.vector_norm(d)).requires_grad_()
        losses.append(F.cross_entropy(model(nxt), y) / k)
        d = d + torch.autograd.grad(losses[-1], nxt, retain_graph=True)[0]
        xs.append(nxt)
    expected = torch.autograd.grad(sum(losses), params)
    method = DropAttack(model, attack="input", eps=eps, p=1.0, k=k, step="notebook")
    model.zero_grad(set_to_none=True)
    method.backward(x, y, F.cross_entropy)
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, e, rtol=1e-9, atol=1e-12)
    paper = DropAttack(model, attack="input", eps=eps, p=1.0, k=k, step="paper")
    model.zero_grad(set_to_none=True)
    paper.backward(x, y, F.cross_entropy)
    assert not torch.allclose(params[0].grad, expected[0])  # paper's ascent does not accumulate
