"""Tasks: names, the paper's defaults, metrics, model building and alias resolution."""

from __future__ import annotations

import pytest
import torch

from models import tasks

PAPER_TASKS = [
    "imdb-lstm",
    "pheme-bilstm",
    "agnews-bigru",
    "mnist-lenet5",
    "cifar10-vgg16",
    "imdb-textcnn",
    "imdb-textrcnn",
]


def test_the_papers_tasks_are_registered():
    assert tasks.names() == [*PAPER_TASKS, "digits-lenet5"]
    with pytest.raises(ValueError, match="unknown 'imdb'; expected one of imdb-lstm, pheme-bilstm"):
        tasks.get("imdb")


@pytest.mark.parametrize("name", PAPER_TASKS)
def test_paper_tasks_use_adam_lr_1e3_batch_128(name):
    task = tasks.get(name)
    assert (task.optimizer, task.lr, task.batch_size) == ("adam", 1e-3, 128)
    assert task.max_len == (256 if task.is_text else None)
    assert task.input_alias == ("Embedding" if task.is_text else "Input")


def test_epochs_follow_the_authors_notebooks_and_metrics_the_paper():
    assert {n: tasks.get(n).epochs for n in ("imdb-lstm", "pheme-bilstm", "agnews-bigru")} == {
        "imdb-lstm": 10,
        "pheme-bilstm": 5,
        "agnews-bigru": 5,
    }
    assert tasks.get("pheme-bilstm").metrics == ("acc", "f1")
    assert all(tasks.get(n).metrics == ("acc",) for n in tasks.names() if n != "pheme-bilstm")
    assert "not the paper's" in tasks.get("digits-lenet5").note


def test_describe_lists_aliases_and_parameters_without_loading_data():
    d = tasks.get("agnews-bigru").describe()
    assert d["paper_model"] == "BiGRU" and d["num_classes"] == 4
    assert d["aliases"]["Gru.ih.w.reverse"] == ["rnn.weight_ih_l0_reverse"]
    assert "rnn.weight_hh_l1" in d["parameters"]


def test_build_model_takes_vocabulary_from_data_and_overrides():
    task = tasks.get("digits-lenet5")
    data = task.load()
    model = task.build_model(data, dropout=0.1)
    assert model.fc3.out_features == 10 and model.dropout.p == 0.1
    assert task.resolve(model, "Input,Conv.1.w") == ["input", "conv1.weight"]
    with torch.device("meta"):
        text = tasks.get("imdb-lstm").build_model(hidden=8)
    assert text.rnn.hidden_size == 8 and text.embedding.num_embeddings == 2
