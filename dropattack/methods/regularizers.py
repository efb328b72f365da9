"""Classic regularisers of the paper's Table 2: L1, L2 and dropout (cost: 1 pass each)."""

from __future__ import annotations

import torch
from torch import nn

from dropattack.methods.perturb import check_number, weight_params
from dropattack.methods.registry import register
from dropattack.methods.standard import Standard


class _Penalty(Standard):
    """Standard training on ``L + penalty(weights)``; :meth:`backward` returns ``L`` alone.

    The weights are the trainable parameters named ``*weight*`` with two or more dimensions
    (matrices, kernels, embeddings); biases and normalisation scales are not penalised.
    """

    passes = 1

    def __init__(self, model: nn.Module, lam: float) -> None:
        super().__init__(model)
        self.lam = check_number("lam", lam, 0.0)
        self.weights = [p for _, p in weight_params(model)]
        if not self.weights:
            raise ValueError(
                f"model: {type(model).__name__} has no weight tensor to penalise "
                "(trainable, named '*weight*', 2+ dimensions)"
            )


@register
class L1(_Penalty):
    """L1 regularisation (Tibshirani 1996): loss ``L + lam * sum |w|`` over the weights.

    Cost: 1 forward/backward pass a step.

    Args:
        model: any ``nn.Module``.
        lam: penalty coefficient ``lam >= 0`` (default 1e-5); the penalty is a sum, not a mean.
    """

    name = "l1"

    def __init__(self, model: nn.Module, lam: float = 1e-5) -> None:
        super().__init__(model, lam)

    def extra_loss(self) -> torch.Tensor:
        return self.lam * torch.stack([w.abs().sum() for w in self.weights]).sum()


@register
class L2(_Penalty):
    """L2 regularisation (Tikhonov 1943): loss ``L + lam * sum w^2 / 2`` over the weights.

    The gradient of the penalty is ``lam * w``: plain weight decay ``lam`` under SGD.

    Cost: 1 forward/backward pass a step.

    Args:
        model: any ``nn.Module``.
        lam: penalty coefficient ``lam >= 0`` (default 1e-4).
    """

    name = "l2"

    def __init__(self, model: nn.Module, lam: float = 1e-4) -> None:
        super().__init__(model, lam)

    def extra_loss(self) -> torch.Tensor:
        return 0.5 * self.lam * torch.stack([w.pow(2).sum() for w in self.weights]).sum()


@register
class Dropout(Standard):
    """Dropout (Srivastava et al. 2014) at one model-level rate, then standard training.

    Construction sets ``p = rate`` on every dropout module of the model (``nn.Dropout``,
    ``nn.Dropout1d/2d/3d``, ``nn.AlphaDropout``, ...); the dropout argument of recurrent
    layers (``nn.LSTM(dropout=...)``) is left alone. The models of this project carry
    ``nn.Dropout`` modules at rate 0 for this purpose.

    Cost: 1 forward/backward pass a step.

    Args:
        model: an ``nn.Module`` with at least one dropout module.
        rate: drop probability in ``[0, 1)`` (default 0.5).
    """

    name = "dropout"
    passes = 1

    def __init__(self, model: nn.Module, rate: float = 0.5) -> None:
        super().__init__(model)
        self.rate = check_number("rate", rate, 0.0, 1.0, open_high=True)
        self.dropouts = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        if not self.dropouts:
            raise ValueError(
                f"model: {type(model).__name__} has no dropout module (nn.Dropout) to set "
                "the rate of; add nn.Dropout(0.0) where dropout belongs"
            )
        for m in self.dropouts:
            m.p = self.rate
