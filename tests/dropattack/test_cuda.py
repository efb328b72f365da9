"""DropAttack on a CUDA device: the same numbers as on CPU, cuDNN RNNs, seeded masks, autocast.

Skipped where torch sees no GPU (CI); run on a GPU machine with ``pytest tests/dropattack``.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models
from dropattack import DropAttack
from tests.dropattack.test_attack import TextLSTM, _data, _mlp, _reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().cpu() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("k", [1, 3])
def test_update_gradient_matches_the_reference_on_cuda(k):
    """Algorithms 1 and 2 (p = 1) on the GPU in float64 equal the CPU reference."""
    model = _mlp()
    x, y = _data()
    targets = ["l1.weight", "l2.weight", "l2.bias"]
    ref = _reference(model, x, y, 0.4, 0.4, targets, k)
    gpu = copy.deepcopy(model).to(CUDA)
    DropAttack(gpu, attack=["input", "l1.weight", "l2.*"], eps=0.4, p=1.0, k=k).backward(
        x.to(CUDA), y.to(CUDA), F.cross_entropy
    )
    for name, got in _grads(gpu).items():
        torch.testing.assert_close(got, ref[name], atol=1e-9, rtol=0)


def test_cudnn_lstm_is_perturbed_restored_and_stays_one_flat_buffer():
    """In-place edits of cuDNN's flattened LSTM weights: the adversarial passes see them, the
    weights come back bit for bit, and cuDNN never warns that they left its flat buffer."""
    torch.manual_seed(1)
    cpu = TextLSTM(vocab=60, dim=32)
    gpu = copy.deepcopy(cpu).to(CUDA)
    x = torch.randint(1, 40, (8, 12))
    y = torch.randint(0, 2, (8,))
    attack = dict(attack=["embedding.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0"], p=1.0)
    DropAttack(cpu, eps=0.5, k=2, **attack).backward(x, y, F.cross_entropy)
    before = {n: p.detach().clone() for n, p in gpu.named_parameters()}
    outputs: list[torch.Tensor] = []
    gpu.rnn.register_forward_hook(lambda m, a, out: outputs.append(out[0].detach().clone()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "RNN module weights are not part of single ... chunk"
        da = DropAttack(gpu, eps=0.5, k=2, **attack)
        da.backward(x.to(CUDA), y.to(CUDA), F.cross_entropy)
    assert len(outputs) == 1 + da.k * len(da.groups)
    assert all(not torch.equal(outputs[0], o) for o in outputs[1:]), "a pass saw clean weights"
    for n, p in gpu.named_parameters():
        assert torch.equal(p.detach(), before[n]), n
    for name, got in _grads(gpu).items():
        want = cpu.get_parameter(name).grad
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=name)


def test_masks_on_cuda_are_seeded_drawn_at_rate_p_and_survive_state_dict():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 300), nn.Tanh(), nn.Linear(300, 3)).to(CUDA)
    x = torch.randn(32, 300, device=CUDA)
    y = torch.randint(0, 3, (32,), device=CUDA)

    def masks(da: DropAttack, net: nn.Module) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        hook = net[0].register_forward_pre_hook(lambda m, a: seen.append(m.weight.detach().clone()))
        da.backward(x, y, F.cross_entropy)
        hook.remove()
        return (seen[1] != seen[0]).cpu()

    def fresh(seed: int) -> tuple[DropAttack, nn.Module]:
        net = copy.deepcopy(model)
        return DropAttack(net, attack=["0.weight"], eps=1.0, p=0.3, seed=seed), net

    first = masks(*fresh(5))
    assert torch.equal(first, masks(*fresh(5)))
    assert not torch.equal(first, masks(*fresh(6)))
    rate = first.double().mean().item()
    assert abs(rate - 0.3) < 5 * (0.3 * 0.7 / first.numel()) ** 0.5, rate
    da, net = fresh(5)
    masks(da, net)
    state = da.state_dict()
    expected = masks(da, net)
    again, net2 = fresh(99)
    again.load_state_dict(state)
    assert torch.equal(masks(again, net2), expected)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.bfloat16, 0.05), (torch.float16, 5e-3)])
def test_autocast_on_cuda_sees_perturbed_weights(dtype, tol):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 4)).to(CUDA)
    x, y = torch.randn(256, 64, device=CUDA), torch.randint(0, 4, (256,), device=CUDA)
    ref = copy.deepcopy(model)
    attack = dict(attack=["input", "0.weight"], eps=0.5, p=1.0, k=2)
    DropAttack(ref, **attack).backward(x, y, F.cross_entropy)
    with torch.autocast("cuda", dtype=dtype):
        DropAttack(model, **attack).backward(x, y, F.cross_entropy)
    for (n, a), (_, b) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        assert a.grad.dtype == torch.float32
        rel = ((a.grad - b.grad).norm() / b.grad.norm()).item()
        assert rel < tol, (n, rel)


def _batch(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    if name == "lenet5":
        return torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
    if name == "vgg16":
        return torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    x = torch.randint(1, 200, (8, 20), generator=g)
    x[:4, 15:] = 0  # padded rows
    return x, torch.randint(0, 2, (8,), generator=g)


@pytest.mark.parametrize(
    "name", ["lstm", "bilstm", "bigru", "textcnn", "textrcnn", "lenet5", "vgg16"]
)
def test_every_paper_alias_of_every_model_attacks_the_same_on_cuda_as_on_cpu(name):
    """One DropAttack step over all of a model's paper aliases (p = 1: no masks, so CPU and
    GPU draw nothing that differs): the GPU's gradients equal the CPU's."""
    torch.manual_seed(0)
    kwargs = {"vocab_size": 200} if name not in ("lenet5", "vgg16") else {}
    cpu = models.get(name, **kwargs)
    gpu = copy.deepcopy(cpu).to(CUDA)
    attack = sorted({p for names in cpu.aliases.values() for p in names})
    assert len(attack) > 2
    x, y = _batch(name)
    for net, dev in ((cpu, "cpu"), (gpu, "cuda")):
        net.train()
        DropAttack(net, attack=attack, eps=1.0, p=1.0, k=2).backward(
            x.to(dev), y.to(dev), F.cross_entropy
        )
    for n, p in cpu.named_parameters():
        got = gpu.get_parameter(n).grad.cpu()
        scale = p.grad.abs().max().clamp_min(1e-12)
        assert ((got - p.grad).abs().max() / scale).item() < 1e-3, n


def test_a_digits_trial_trains_on_cuda_and_returns_cpu_weights():
    """The sweep's trial function end to end on the GPU (data, model, DropAttack, test)."""
    from sweeps.trial import TrialConfig, run_trial

    config = TrialConfig(
        "digits-lenet5", attack=("Input", "Conv.1.w"), eps=1.0, p=0.7, epochs=2, device="cuda"
    )
    result = run_trial(config)
    assert result.attacked == ["input", "conv1.weight"]
    assert result.metrics["test_acc"] > 0.8
    assert all(t.device.type == "cpu" for t in result.best_state.values())
    again = run_trial(config)
    assert again.metrics["val_acc"] == pytest.approx(result.metrics["val_acc"], abs=0.02)
