"""The paper's architectures (§4.2), their layer aliases, datasets and tasks.

>>> import models
>>> model = models.get("lenet5")
>>> models.resolve(model, ["Input", "Conv.1.w"])
['input', 'conv1.weight']
>>> models.names()  # doctest: +SKIP
['lstm', 'bilstm', 'bigru', 'textcnn', 'textrcnn', 'lenet5', 'vgg16']

Tasks (dataset + model + metrics + the paper's defaults) are in :mod:`models.tasks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.aliases import INPUT, PaperModel, check_aliases, resolve, split_list
from models.lenet import LeNet5, lenet5
from models.text_rnn import TextRNN, bigru, bilstm, lstm
from models.textcnn import TextCNN, textcnn
from models.textrcnn import TextRCNN, textrcnn
from models.vgg import VGG16, vgg16

__all__ = [
    "INPUT",
    "VGG16",
    "LeNet5",
    "PaperModel",
    "TextCNN",
    "TextRCNN",
    "TextRNN",
    "check_aliases",
    "get",
    "names",
    "register",
    "resolve",
    "split_list",
]

Builder = Callable[..., PaperModel]

_REGISTRY: dict[str, Builder] = {}


def register(name: str, builder: Builder) -> None:
    """Make ``builder`` available as ``get(name, ...)``; names are stable across versions."""
    if name in _REGISTRY and _REGISTRY[name] is not builder:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = builder


def names() -> list[str]:
    """Registered model names, in registration order."""
    return list(_REGISTRY)


def get(name: str, **kw: Any) -> PaperModel:
    """Build model ``name``; text models need ``vocab_size``.

    Raises:
        ValueError: unknown name or argument.
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"model: unknown {name!r}; expected one of {', '.join(_REGISTRY)}"
        ) from None
    try:
        return builder(**kw)
    except TypeError as e:
        raise ValueError(f"model {name!r}: {e}") from None


for _name, _builder in (
    ("lstm", lstm),
    ("bilstm", bilstm),
    ("bigru", bigru),
    ("textcnn", textcnn),
    ("textrcnn", textrcnn),
    ("lenet5", lenet5),
    ("vgg16", vgg16),
):
    register(_name, _builder)
