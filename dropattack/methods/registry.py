"""The registry of training methods: a name for each :class:`~dropattack.methods.base.Method`.

Each method's module registers its class with :func:`register` when it is imported (the
package imports them all); :func:`get` builds one by name.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from dropattack.methods.base import Method

__all__ = ["get", "get_class", "names", "register"]

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
