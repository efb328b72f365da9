"""LeNet-5 for MNIST (§4.2): 61,706 parameters.

conv 1->6 (k5, padding 2) -> ReLU -> max-pool 2 -> conv 6->16 (k5) -> ReLU -> max-pool 2 ->
FC 400->120 -> ReLU -> dropout -> FC 120->84 -> ReLU -> dropout -> FC 84->10. Input:
``(batch, 1, 28, 28)``.

Parameter names: ``conv1.weight``, ``conv1.bias``, ``conv2.*``, ``fc1.*``, ``fc2.*``, ``fc3.*``.

Paper aliases (Table 8):

- ``Input`` -> ``input`` (the image tensor).
- ``Conv.1.w``/``Conv.1.b``/``Conv.2.w``/``Conv.2.b`` -> ``conv{1,2}.weight``/``bias``; the
  paper's undotted ``Conv1.w``/``Conv2.w`` are accepted as the same.
- ``Fc.1``/``Fc.2``/``Fc.3`` -> ``fc{1,2,3}.weight``: the paper names FC layers without a
  suffix; the attacked tensor is read as the weight because every other hidden target of the
  tables is a weight unless it says ``.b``. ``Fc.1.w``, ``Fc.1.b``, ... name them exactly.
- ``Fc.1.w2`` (the paper's ``fc1.w2`` in "Conv1.w, Conv2.w, fc1.w2") -> ``fc1.weight``. The
  row writes the other layers without dots (``Conv1.w`` = ``Conv.1.w``), so ``fc1.w`` is
  fc1's weight and the trailing "2" is read as a stray character (it is not a tensor of
  LeNet-5: fc1 has one weight). Attack ``Fc.1;Fc.2`` for the other reading (fc1 and fc2).
- ``Fc.w``/``Fc.b`` -> ``fc3.*``, the output layer, as ``Fc.w`` is on the text models.
"""

from __future__ import annotations

import torch
from torch import nn

from models.aliases import INPUT, PaperModel

__all__ = ["LeNet5", "lenet5"]


class LeNet5(PaperModel):
    """LeNet-5 with ReLU and max-pooling; see the module docstring."""

    paper_name = "LeNet-5"
    input_alias = "Input"

    def __init__(self, num_classes: int = 10, *, in_channels: int = 1, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.dropout = nn.Dropout(dropout)

    def paper_aliases(self) -> dict[str, list[str]]:
        out = {"Input": [INPUT]}
        for i in (1, 2):
            out[f"Conv.{i}.w"] = [f"conv{i}.weight"]
            out[f"Conv.{i}.b"] = [f"conv{i}.bias"]
            out[f"Conv{i}.w"] = [f"conv{i}.weight"]
            out[f"Conv{i}.b"] = [f"conv{i}.bias"]
        for i in (1, 2, 3):
            out[f"Fc.{i}"] = [f"fc{i}.weight"]
            out[f"Fc.{i}.w"] = [f"fc{i}.weight"]
            out[f"Fc.{i}.b"] = [f"fc{i}.bias"]
        out["Fc.1.w2"] = ["fc1.weight"]
        out["Fc.w"], out["Fc.b"] = ["fc3.weight"], ["fc3.bias"]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.dropout(torch.relu(self.fc1(x)))
        x = self.dropout(torch.relu(self.fc2(x)))
        return self.fc3(x)


def lenet5(num_classes: int = 10, **kw) -> LeNet5:
    """MNIST's LeNet-5 (61,706 parameters for 10 classes)."""
    return LeNet5(num_classes, **kw)
