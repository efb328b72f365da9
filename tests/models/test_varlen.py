"""Text models without PackedSequence: the same outputs and gradients as the packed reference,
per-row independence, and DropAttack's weight targets reaching the tensors they name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models
from dropattack import DropAttack
from models import varlen
from models.aliases import resolve

torch.set_num_threads(1)

RNN_MODELS = ["lstm", "bilstm", "bigru", "textrcnn"]
TEXT = [*RNN_MODELS, "textcnn"]
WIDTH = 13
PAD = 0


def small(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    size = {"filters": 4} if name == "textcnn" else {"hidden": 5}
    return models.get(name, vocab_size=40, embed_dim=6, padding_idx=PAD, **size).double()


def padded(lengths: list[int], width: int = WIDTH, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 40, (len(lengths), width), generator=g)
    for row, n in enumerate(lengths):
        x[row, n:] = PAD
    return x


# Lengths 1 and full (WIDTH) included, rows out of order, repeats.
LENGTHS = [1, WIDTH, 4, 7, WIDTH, 2, 9, 1, 12, 5]


def out_and_grads(model: nn.Module, x: torch.Tensor, path: str | None):
    model.rnn_path = path
    model.zero_grad()
    out = model(x)
    (out * torch.linspace(-1, 2, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def random_lengths(seed: int, rows: int = 12) -> list[int]:
    """Seeded lengths in 1..WIDTH, with 1 and WIDTH always among them."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, WIDTH + 1, (rows,), generator=g).tolist()
    lengths[seed % (rows - 1)], lengths[-1] = 1, WIDTH
    return lengths


@pytest.mark.parametrize("path", ["auto", "split", "twin", None])
@pytest.mark.parametrize("name", RNN_MODELS)
@pytest.mark.parametrize("seed", [0, 1])
def test_every_path_matches_the_packed_reference_in_outputs_and_every_gradient(name, path, seed):
    model = small(name, seed)
    x = padded(random_lengths(seed) if seed else LENGTHS, seed=seed + 1)
    ref_out, ref_grads = out_and_grads(model, x, "packed")
    out, grads = out_and_grads(model, x, path)
    assert torch.allclose(out, ref_out, atol=1e-6, rtol=0)
    assert grads.keys() == ref_grads.keys()
    for n, g in grads.items():
        assert torch.allclose(g, ref_grads[n], atol=1e-6, rtol=0), n
    # The reference does read the rows to their own lengths: ignoring them changes the output.
    full = x.clone()
    full[full == PAD] = 1
    assert not torch.allclose(out_and_grads(model, full, "packed")[0], ref_out, atol=1e-3)


@pytest.mark.parametrize("name", ["bigru"])
def test_auto_takes_both_branches_and_each_matches_the_reference(name, monkeypatch):
    model = small(name)
    x = padded(LENGTHS)
    ref_out, ref_grads = out_and_grads(model, x, "packed")
    for threshold in (0.0, 1.01):  # never packs / always packs
        monkeypatch.setitem(varlen.PACKED_BELOW_FILL, nn.GRU, threshold)
        out, grads = out_and_grads(model, x, "auto")
        assert torch.allclose(out, ref_out, atol=1e-6, rtol=0)
        assert all(torch.allclose(g, ref_grads[n], atol=1e-6, rtol=0) for n, g in grads.items())


@pytest.mark.parametrize("name", RNN_MODELS)
def test_per_position_outputs_match_the_packed_reference_where_rows_have_tokens(name):
    model = small(name)
    lengths = torch.tensor(LENGTHS)
    emb = model.embedding(padded(LENGTHS))
    ref = varlen.outputs(model.rnn, emb, lengths, "packed")
    valid = torch.arange(WIDTH)[None, :] < lengths[:, None]
    for path in ("split", "twin", "auto"):
        out = varlen.outputs(model.rnn, emb, lengths, path)
        assert out.shape == ref.shape == (len(LENGTHS), WIDTH, ref.shape[2])
        assert torch.allclose(out[valid], ref[valid], atol=1e-6, rtol=0), path


@pytest.mark.parametrize("name", TEXT)
def test_a_rows_output_depends_neither_on_its_batch_mates_nor_on_the_padding(name):
    model = small(name).eval()
    x = padded(LENGTHS)
    together = model(x)
    for row, n in enumerate(LENGTHS):
        alone = model(x[row : row + 1, :n])  # no padding at all
        wider = model(torch.cat([x[row : row + 1], torch.zeros(1, 7, dtype=torch.long)], 1))
        assert torch.allclose(together[row], alone[0], atol=1e-12, rtol=0)
        assert torch.allclose(together[row], wider[0], atol=1e-12, rtol=0)
    shuffled = torch.randperm(len(LENGTHS), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(model(x[shuffled]), together[shuffled], atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "name, alias, tensor",
    [
        ("lstm", "Lstm.ih.w", "rnn.weight_ih_l0"),
        ("bilstm", "Lstm.hh.w.reverse", "rnn.weight_hh_l0_reverse"),
        ("bigru", "Gru.ih.w.l1", "rnn.weight_ih_l1"),
        ("textrcnn", "Lstm.hh.w.reverse", "rnn.weight_hh_l0_reverse"),
    ],
)
def test_dropattack_perturbs_exactly_the_tensor_the_alias_names_and_it_reaches_the_output(
    name, alias, tensor
):
    model = small(name)
    assert resolve(model, [alias]) == [tensor]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen: list[tuple[set[str], torch.Tensor]] = []

    def record(module, args, output):
        changed = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
        seen.append((changed, output.detach().clone()))

    model.register_forward_hook(record)
    x, y = padded(LENGTHS), torch.tensor(LENGTHS) % 2
    DropAttack(model, attack=[tensor], eps=0.5, p=0.7, k=1, seed=0).backward(x, y, F.cross_entropy)
    assert [changed for changed, _ in seen] == [set(), {tensor}]  # clean pass, then attacked
    assert not torch.allclose(seen[0][1], seen[1][1])  # the perturbed tensor is the one read
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # restored
    assert model.get_parameter(tensor).grad.abs().sum() > 0


def test_flat_weights_are_the_registered_parameters_so_in_place_changes_are_read():
    model = small("bigru")
    names = [n for n, _ in model.rnn.named_parameters()]
    flat = model.rnn._flat_weights
    assert len(flat) == len(names)
    assert all(w is model.rnn.get_parameter(n) for w, n in zip(flat, names, strict=True))
    x = padded(LENGTHS)
    out = model(x)
    with torch.no_grad():
        model.rnn.weight_hh_l1_reverse.add_(0.1)
    assert not torch.allclose(model(x), out)


def test_checkpoint_names_are_unchanged_and_load_across_paths(tmp_path):
    model = small("bilstm")
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    other = small("bilstm", seed=5)
    other.load_state_dict(torch.load(path, weights_only=True))
    x = padded(LENGTHS)
    model.rnn_path, other.rnn_path = "packed", "split"
    assert torch.allclose(model(x), other(x), atol=1e-12, rtol=0)
    assert list(model.state_dict()) == [
        "embedding.weight",
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.bias_ih_l0",
        "rnn.bias_hh_l0",
        "rnn.weight_ih_l0_reverse",
        "rnn.weight_hh_l0_reverse",
        "rnn.bias_ih_l0_reverse",
        "rnn.bias_hh_l0_reverse",
        "fc.weight",
        "fc.bias",
    ]


def test_reverse_index_reverses_each_row_within_its_length_and_is_its_own_inverse():
    index = varlen.reverse_index(torch.tensor([1, 3, 5]), 5)
    assert index.tolist() == [[0, 1, 2, 3, 4], [2, 1, 0, 3, 4], [4, 3, 2, 1, 0]]
    assert torch.equal(index.gather(1, index), torch.arange(5).expand(3, 5))


def test_an_unknown_path_is_a_one_line_error():
    model = small("lstm")
    model.rnn_path = "fast"
    with pytest.raises(ValueError, match="varlen path: expected one of .*got 'fast'"):
        model(padded(LENGTHS))


def test_defaults_keep_cudnn_on_the_module_itself():
    # On CUDA only whole-module calls keep cuDNN's flat weights: no per-direction split there.
    with torch.device("meta"):
        rnns = {n: models.get(n, vocab_size=10).rnn for n in ("lstm", "bilstm", "bigru")}
    cuda = torch.device("cuda")
    assert {n: varlen.choose_path(r, cuda) for n, r in rnns.items()} == {
        "lstm": "split",
        "bilstm": "packed",
        "bigru": "packed",
    }
    assert {varlen.choose_path(r, torch.device("cpu")) for r in rnns.values()} == {"auto"}
