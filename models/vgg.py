"""VGG-16 with BatchNorm for CIFAR-10 (§4.2).

The 13 convolutions (64, 64, 128, 128, 256, 256, 256, 512 x 6; kernel 3, padding 1), each
followed by BatchNorm and ReLU, with five max-pools, are torchvision's ``make_layers(cfgs["D"],
batch_norm=True)``. On 32x32 images the features end at 1x1x512, so the classifier is the
paper's FC 512-4096-4096-10 (torchvision's ImageNet head expects 7x7x512); it keeps
torchvision's layout (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear) and
initialisation, so parameter names are torchvision's: ``features.{n}.weight``,
``classifier.{0,3,6}.weight``.

Paper aliases (Table 9), counted 1-based in network order:

- ``Input`` -> ``input``.
- ``Conv.{i}.w``/``Conv.{i}.b`` (i = 1..13) -> the i-th convolution's weight/bias
  (``Conv.1.w`` = ``features.0.weight``).
- ``BatchNorm.{i}.w``/``BatchNorm.{i}.b`` -> the i-th BatchNorm's weight/bias
  (``BatchNorm.1.w`` = ``features.1.weight``, ``BatchNorm.8.w`` = ``features.25.weight``).
- ``Fc.{j}``/``Fc.{j}.w``/``Fc.{j}.b`` (j = 1..3) -> the classifier's linear layers
  (``Fc.j`` is the weight, as on LeNet-5); ``Fc.w``/``Fc.b`` -> the output layer.
"""

from __future__ import annotations

import torch
from torch import nn

from models.aliases import INPUT, PaperModel

__all__ = ["VGG16", "vgg16"]


class VGG16(PaperModel):
    """VGG-16-BN with the paper's 512-4096-4096-classes head; see the module docstring."""

    paper_name = "VGG-16"
    input_alias = "Input"

    def __init__(self, num_classes: int = 10, *, dropout: float = 0.0) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers  # seconds to import: only VGG needs it

        self.features = make_layers(cfgs["D"], batch_norm=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(
            nn.Linear(512, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():  # torchvision's VGG initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def paper_aliases(self) -> dict[str, list[str]]:
        out = {"Input": [INPUT]}
        for prefix, kind in (("Conv", nn.Conv2d), ("BatchNorm", nn.BatchNorm2d)):
            layers = [n for n, m in self.features.named_children() if isinstance(m, kind)]
            for i, n in enumerate(layers, start=1):
                out[f"{prefix}.{i}.w"] = [f"features.{n}.weight"]
                out[f"{prefix}.{i}.b"] = [f"features.{n}.bias"]
        linears = [n for n, m in self.classifier.named_children() if isinstance(m, nn.Linear)]
        for j, n in enumerate(linears, start=1):
            out[f"Fc.{j}"] = [f"classifier.{n}.weight"]
            out[f"Fc.{j}.w"] = [f"classifier.{n}.weight"]
            out[f"Fc.{j}.b"] = [f"classifier.{n}.bias"]
        out["Fc.w"] = [f"classifier.{linears[-1]}.weight"]
        out["Fc.b"] = [f"classifier.{linears[-1]}.bias"]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg16(num_classes: int = 10, **kw) -> VGG16:
    """CIFAR-10's VGG-16 with BatchNorm."""
    return VGG16(num_classes, **kw)
