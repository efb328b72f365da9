"""The factory a spec names as ``task: "own_task.task:make"``.

It returns a :class:`models.interface.SimpleTask`: how to load the data (train/validation/test
from scikit-learn's bundled breast-cancer set, standardised on the training split) and how to
build the model (an MLP whose layers DropAttack may target by name or glob).
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

from models.data import DataOptions, TaskData
from models.interface import SimpleTask, tensor_data

FEATURES = 30
CLASSES = 2


class Mlp(nn.Module):
    """``encoder`` (two Linear+ReLU layers) and a linear ``head``."""

    def __init__(self, hidden: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(FEATURES, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def load(options: DataOptions) -> TaskData:
    """Breast-cancer features, split 70/15/15 by ``options.split_seed``, standardised with the
    training split's mean and deviation; ``options.train_size`` keeps a seeded subset."""
    x, y = load_breast_cancer(return_X_y=True)
    data = tensor_data(x, y, options, source="sklearn.datasets.load_breast_cancer")
    mean, std = data.train.x.mean(0), data.train.x.std(0).clamp(min=1e-6)
    for split in (data.train, data.val, data.test):
        split.x = (split.x - mean) / std
    return data


def make(hidden: int = 32, dropout: float = 0.0, epochs: int = 20) -> SimpleTask:
    """The task, with its model's width and dropout and its default epochs as ``task_args``."""
    if hidden < 1:
        raise ValueError(f"hidden: expected >= 1, got {hidden}")

    def build(data: TaskData | None = None, **overrides: object) -> nn.Module:
        return Mlp(**{"hidden": hidden, "dropout": dropout, **overrides})

    return SimpleTask(
        name="cancer-mlp",
        load_data=load,
        model_builder=build,
        metrics=("acc", "f1"),
        epochs=epochs,
        batch_size=32,
        lr=3e-3,
        perturbs="input",
        target_aliases={"Hidden": ["encoder.0.weight", "encoder.3.weight"]},
    )
