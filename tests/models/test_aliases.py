"""Paper layer aliases: every row of the appendix tables resolves, and each decision holds."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import pytest
import torch

import models
from dropattack import DropAttack
from models import tasks
from models.aliases import INPUT, PaperModel

PAPER_CSV = Path(__file__).resolve().parents[3] / "shared" / "paper" / "tables5to9_targets.csv"
TASK_OF = {
    "imdb": "imdb-lstm",
    "pheme": "pheme-bilstm",
    "agnews": "agnews-bigru",
    "mnist": "mnist-lenet5",
    "cifar10": "cifar10-vgg16",
}


@functools.cache
def meta_model(task: str) -> PaperModel:
    """The task's model on the meta device (no memory); cached, tests only read it."""
    with torch.device("meta"):
        return tasks.get(task).build_model()


def paper_rows() -> list[dict[str, str]]:
    if not PAPER_CSV.is_file():
        pytest.skip(f"{PAPER_CSV} not found: the shared paper tables are absent")
    with PAPER_CSV.open(newline="") as f:
        return list(csv.DictReader(f))


def test_every_row_of_tables_5_to_9_resolves_on_its_model():
    rows = paper_rows()
    assert len(rows) == 71  # Tables 5-9: 15 + 14 + 14 + 14 + 14 rows, baselines included
    seen = set()
    for row in rows:
        aliases = [a for a in row["targets"].split(";") if a]
        if not aliases:
            continue
        model = meta_model(TASK_OF[row["dataset"]])
        params = {n for n, _ in model.named_parameters()} | {INPUT}
        names = tasks.get(TASK_OF[row["dataset"]]).resolve(model, aliases)
        assert len(names) == len(aliases), row  # each paper alias is one tensor
        assert set(names) <= params
        seen.update((row["dataset"], a) for a in aliases)
    assert len(seen) == 28  # distinct (dataset, alias) pairs in the tables


@pytest.mark.parametrize(
    "task, alias, expected",
    [
        ("imdb-lstm", "Embedding", ["embedding.weight"]),
        ("imdb-lstm", "Lstm.ih.w", ["rnn.weight_ih_l0"]),
        ("imdb-lstm", "Lstm.hh.w", ["rnn.weight_hh_l0"]),
        ("imdb-lstm", "Fc.w", ["fc.weight"]),
        ("pheme-bilstm", "Lstm.hh.w", ["rnn.weight_hh_l0"]),
        ("pheme-bilstm", "Lstm.hh.w.reverse", ["rnn.weight_hh_l0_reverse"]),
        ("agnews-bigru", "Gru.ih.w", ["rnn.weight_ih_l0"]),
        ("agnews-bigru", "Gru.ih.w.reverse", ["rnn.weight_ih_l0_reverse"]),
        ("agnews-bigru", "Gru.hh.w.l1.reverse", ["rnn.weight_hh_l1_reverse"]),
        ("mnist-lenet5", "Input", ["input"]),
        ("mnist-lenet5", "Conv.1.b", ["conv1.bias"]),
        ("mnist-lenet5", "Conv2.w", ["conv2.weight"]),
        ("mnist-lenet5", "Fc.1", ["fc1.weight"]),
        ("mnist-lenet5", "Fc.2", ["fc2.weight"]),
        ("mnist-lenet5", "Fc.1.w2", ["fc1.weight"]),
        ("mnist-lenet5", "Fc.w", ["fc3.weight"]),
        ("cifar10-vgg16", "Conv.1.w", ["features.0.weight"]),
        ("cifar10-vgg16", "Conv.6.w", ["features.17.weight"]),
        ("cifar10-vgg16", "BatchNorm.1.w", ["features.1.weight"]),
        ("cifar10-vgg16", "BatchNorm.8.w", ["features.25.weight"]),
        ("cifar10-vgg16", "Fc.1", ["classifier.0.weight"]),
        ("cifar10-vgg16", "Fc.w", ["classifier.6.weight"]),
        ("imdb-textcnn", "Conv.3.w", ["convs.2.weight"]),
        ("imdb-textrcnn", "Proj.w", ["proj.weight"]),
    ],
)
def test_alias_decisions(task, alias, expected):
    assert tasks.get(task).resolve(meta_model(task), [alias]) == expected


def test_vgg_aliases_count_layers_in_network_order():
    model = models.get("vgg16")
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in model.features if isinstance(m, torch.nn.BatchNorm2d)]
    params = dict(model.named_parameters())
    for i in range(13):
        (conv,) = models.resolve(model, f"Conv.{i + 1}.w")
        (bn,) = models.resolve(model, f"BatchNorm.{i + 1}.w")
        assert params[conv] is convs[i].weight
        assert params[bn] is bns[i].weight


def test_aliases_are_case_insensitive_names_and_globs_pass_through_and_order_is_kept():
    model = meta_model("imdb-lstm")
    assert models.resolve(model, "embedding;LSTM.IH.W") == ["embedding.weight", "rnn.weight_ih_l0"]
    assert models.resolve(model, ["fc.bias", "rnn.*_l0", "Lstm.ih.w"]) == [
        "fc.bias",
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.bias_ih_l0",
        "rnn.bias_hh_l0",
    ]


def test_case_folding_is_refused_where_it_is_ambiguous():
    class Toy(PaperModel):
        paper_name = "Toy"

        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(2, 2)
            self.b = torch.nn.Linear(2, 2)

        def paper_aliases(self):
            return {"Fc.W": ["a.weight"], "fc.w": ["b.weight"]}

    toy = Toy()
    assert models.resolve(toy, ["Fc.W", "fc.w"]) == ["a.weight", "b.weight"]
    with pytest.raises(ValueError, match="unknown alias or parameter 'FC.W'"):
        models.resolve(toy, ["FC.W"])


def test_unknown_alias_lists_the_valid_ones():
    model = meta_model("agnews-bigru")
    with pytest.raises(ValueError) as e:
        models.resolve(model, ["Embedding", "Lstm.ih.w"])
    msg = str(e.value)
    assert "'Lstm.ih.w'" in msg and "BiGRU" in msg
    assert "valid aliases: Embedding, Gru.ih.w," in msg and "Gru.ih.w.reverse" in msg
    with pytest.raises(ValueError, match="expected at least one"):
        models.resolve(model, " , ")


def test_input_on_a_text_model_points_to_the_embedding():
    with pytest.raises(ValueError, match="input attack is 'Embedding'"):
        models.resolve(meta_model("imdb-lstm"), ["input"])
    assert models.resolve(meta_model("mnist-lenet5"), ["input"]) == ["input"]


@pytest.mark.parametrize("task", tasks.names())
def test_every_alias_of_every_task_names_real_tensors(task):
    model = meta_model(task)
    models.check_aliases(model)
    assert tasks.get(task).input_alias in model.aliases


def test_resolved_names_drive_dropattack_with_the_paper_grouping():
    model = models.get("lstm", vocab_size=30, embed_dim=4, hidden=3)
    names = models.resolve(model, ["Embedding", "Lstm.ih.w", "Fc.w"])
    da = DropAttack(model, attack=names)
    assert [[t.name for t in g] for g in da.groups] == [
        ["embedding.weight"],
        ["rnn.weight_ih_l0", "fc.weight"],
    ]
