"""DropAttack: masked adversarial perturbation of inputs and weights, for any PyTorch model.

The library needs torch only; the sweep service (``sweeps``) attaches logging through
:class:`~dropattack.train.Callback`.
"""

from dropattack import methods
from dropattack.attack import GROUP_MODES, STEP_MODES, DropAttack
from dropattack.methods import Method
from dropattack.targets import INPUT, Target, resolve
from dropattack.train import Callback, EpochMetrics, FitResult, NonFiniteLossError, evaluate, fit

__all__ = [
    "GROUP_MODES",
    "INPUT",
    "Callback",
    "DropAttack",
    "EpochMetrics",
    "FitResult",
    "Method",
    "NonFiniteLossError",
    "STEP_MODES",
    "Target",
    "evaluate",
    "fit",
    "methods",
    "resolve",
]
__version__ = "0.1.0"
