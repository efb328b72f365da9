"""Registry of training methods that share :class:`~dropattack.methods.base.Method`'s shape.

>>> from dropattack import methods
>>> m = methods.get("fgm", model, attack=["embedding.weight"], eps=1.0)
>>> methods.names()  # doctest: +SKIP
"""

from __future__ import annotations

from dropattack.methods.base import LossFn, Method
from dropattack.methods.registry import get, get_class, names, register

# Importing the modules registers them; the order is the order of names().
# isort: off
from dropattack.methods import standard, regularizers, fgsm, fgm, pgd, freeat, freelb  # noqa: F401
from dropattack.attack import DropAttack  # noqa: F401
from dropattack.methods import awp, amp, sam  # noqa: F401
# isort: on

__all__ = ["DropAttack", "LossFn", "Method", "get", "get_class", "names", "register"]
