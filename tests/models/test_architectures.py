"""The paper's architectures: sizes from §4.2, parameter counts, padding, dropout, registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import models
from dropattack import methods

torch.set_num_threads(1)

TEXT = ["lstm", "bilstm", "bigru", "textcnn", "textrcnn"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_lenet5_has_61706_parameters_and_the_paper_layers():
    model = models.get("lenet5")
    conv = (1 * 25 + 1) * 6 + (6 * 25 + 1) * 16
    fc = (400 + 1) * 120 + (120 + 1) * 84 + (84 + 1) * 10
    assert conv + fc == 61_706
    assert n_params(model) == 61_706
    assert (model.conv1.in_channels, model.conv1.out_channels, model.conv1.padding) == (
        1,
        6,
        (2, 2),
    )
    assert [(m.in_features, m.out_features) for m in (model.fc1, model.fc2, model.fc3)] == [
        (400, 120),
        (120, 84),
        (84, 10),
    ]
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_vgg16_bn_has_13_convs_13_batchnorms_and_the_512_4096_4096_10_head():
    model = models.get("vgg16")
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    assert [c.out_channels for c in convs] == widths
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert [b.num_features for b in bns] == widths
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (512, 4096),
        (4096, 4096),
        (4096, 10),
    ]
    ins = [3, *widths[:-1]]
    expected = sum(i * o * 9 + o for i, o in zip(ins, widths, strict=True))  # convolutions
    expected += sum(2 * o for o in widths)  # BatchNorm weight and bias
    expected += (512 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 10
    assert expected == 33_646_666
    assert n_params(model) == expected
    model.eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(
    "name, layers, bidirectional, fc_in, classes, cell",
    [
        ("lstm", 1, False, 300, 2, nn.LSTM),
        ("bilstm", 1, True, 600, 2, nn.LSTM),
        ("bigru", 2, True, 600, 4, nn.GRU),
    ],
)
def test_text_rnns_match_section_4_2(name, layers, bidirectional, fc_in, classes, cell):
    with torch.device("meta"):
        model = models.get(name, vocab_size=1000)
    assert model.embedding.embedding_dim == 300
    assert isinstance(model.rnn, cell)
    assert (model.rnn.input_size, model.rnn.hidden_size) == (300, 300)
    assert model.rnn.num_layers == layers
    assert model.rnn.bidirectional is bidirectional
    assert (model.fc.in_features, model.fc.out_features) == (fc_in, classes)


def _tiny(name: str, **kw) -> models.PaperModel:
    torch.manual_seed(0)
    extra = {} if name == "textcnn" else {"hidden": 6}
    return models.get(name, vocab_size=40, embed_dim=8, **extra, **kw).eval()


@pytest.mark.parametrize("name", TEXT)
def test_text_models_ignore_padding(name):
    model = _tiny(name)
    x = torch.randint(2, 40, (3, 9))
    x[0, 6:] = 0
    x[1, 2:] = 0
    padded = torch.cat([x, torch.zeros(3, 11, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded))


@pytest.mark.parametrize("name", ["lstm", "bilstm", "bigru"])
def test_rnn_classifies_from_the_last_hidden_state_of_the_true_length(name):
    model = _tiny(name)
    seq = torch.randint(2, 40, (5,))
    x = torch.cat([seq, torch.zeros(4, dtype=torch.long)])[None]
    with torch.no_grad():
        _, state = model.rnn(model.embedding(seq[None]))
        h = state[0] if isinstance(state, tuple) else state
        last = torch.cat([h[-2], h[-1]], 1) if model.rnn.bidirectional else h[-1]
        torch.testing.assert_close(model(x), model.fc(last))


@pytest.mark.parametrize("name", TEXT)
def test_text_models_accept_an_all_padding_row(name):
    model = _tiny(name)
    x = torch.zeros(2, 7, dtype=torch.long)
    x[1, :3] = torch.tensor([5, 6, 7])
    out = model(x)
    assert out.shape == (2, model.fc.out_features) and torch.isfinite(out).all()


def test_text_models_reject_float_input():
    with pytest.raises(ValueError, match="token ids"):
        _tiny("lstm")(torch.randn(2, 5))


@pytest.mark.parametrize("name", [*TEXT, "lenet5", "vgg16"])
def test_every_model_has_dropout_at_rate_zero_that_the_dropout_method_sets(name):
    model = _tiny(name) if name in TEXT else models.get(name)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(m.p == 0.0 for m in drops)
    if "dropout" in methods.names():
        methods.get("dropout", model, rate=0.3)
        assert all(m.p == 0.3 for m in drops)
    model = _tiny(name, dropout=0.25) if name in TEXT else models.get(name, dropout=0.25)
    assert all(m.p == 0.25 for m in model.modules() if isinstance(m, nn.Dropout))


def test_pretrained_vectors_initialise_the_embedding_with_a_zero_padding_row():
    vectors = torch.randn(40, 8)
    model = models.get("lstm", vocab_size=40, embed_dim=8, hidden=4, pretrained=vectors)
    torch.testing.assert_close(model.embedding.weight[1:], vectors[1:])
    assert model.embedding.weight[0].abs().sum() == 0
    with pytest.raises(ValueError, match=r"expected shape \(40, 16\)"):
        models.get("lstm", vocab_size=40, embed_dim=16, pretrained=vectors)


def test_parameter_names_are_stable():
    with torch.device("meta"):
        names = {n: [p for p, _ in models.get(n, vocab_size=10).named_parameters()] for n in TEXT}
        names["lenet5"] = [p for p, _ in models.get("lenet5").named_parameters()]
    assert names["lstm"] == [
        "embedding.weight",
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.bias_ih_l0",
        "rnn.bias_hh_l0",
        "fc.weight",
        "fc.bias",
    ]
    assert "rnn.weight_ih_l1_reverse" in names["bigru"]
    assert names["lenet5"] == [
        f"{layer}.{kind}"
        for layer in ("conv1", "conv2", "fc1", "fc2", "fc3")
        for kind in ("weight", "bias")
    ]
    assert names["textcnn"][:3] == ["embedding.weight", "convs.0.weight", "convs.0.bias"]
    assert names["textrcnn"][-4:] == ["proj.weight", "proj.bias", "fc.weight", "fc.bias"]


def test_registry_lists_models_and_rejects_unknown_names_and_arguments():
    assert models.names() == ["lstm", "bilstm", "bigru", "textcnn", "textrcnn", "lenet5", "vgg16"]
    with pytest.raises(ValueError, match="unknown 'resnet'; expected one of lstm, bilstm"):
        models.get("resnet")
    with pytest.raises(ValueError, match="model 'lenet5'.*colour"):
        models.get("lenet5", colour=3)
    with pytest.raises(ValueError, match="already registered"):
        models.register("lstm", models.lenet5)
