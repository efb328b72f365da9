"""Registry of training methods that share :class:`~dropattack.methods.base.Method`'s shape.

>>> from dropattack import methods
>>> m = methods.get("fgm", model, attack=["embedding.weight"], eps=1.0)
>>> methods.names()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from torch import nn

from dropattack.methods.base import LossFn, Method

__all__ = ["LossFn", "Method", "get", "get_class", "names", "register"]

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available as ``get(cls.name, ...)``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}.name: a registered method needs a name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    """Registered method names, in registration order."""
    return list(_REGISTRY)


def get_class(name: str) -> type[Method]:
    """The class registered as ``name`` (to inspect its hyperparameters).

    Raises:
        ValueError: unknown name.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise ValueError(f"method: unknown {name!r}; expected one of {known}") from None


def get(name: str, model: nn.Module, **hp: Any) -> Method:
    """Build method ``name`` on ``model`` with hyperparameters ``hp``.

    Raises:
        ValueError: unknown name or hyperparameter.
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"method: unknown {name!r}; expected one of {', '.join(_REGISTRY)}"
        ) from None
    try:
        return cls(model, **hp)
    except TypeError as e:
        raise ValueError(f"method {name!r}: {e}") from None


# Importing the modules registers them; the order is the order of names().
# isort: off
from dropattack.attack import DropAttack  # noqa: E402
from dropattack.methods import standard  # noqa: E402,F401
from dropattack.methods import regularizers  # noqa: E402,F401
from dropattack.methods import fgsm  # noqa: E402,F401
from dropattack.methods import fgm  # noqa: E402,F401
from dropattack.methods import pgd  # noqa: E402,F401
from dropattack.methods import freeat  # noqa: E402,F401
from dropattack.methods import freelb  # noqa: E402,F401

register(DropAttack)

from dropattack.methods import awp  # noqa: E402,F401
from dropattack.methods import amp  # noqa: E402,F401
from dropattack.methods import sam  # noqa: E402,F401
# isort: on
