"""Loss landscapes around a trained model (the paper's Figures 3, 5 and 6; Li et al., 2018).

Two random directions α and β with the shape of the parameters are drawn from a Gaussian and
filter-normalised: each filter (slice along the first dimension) of a direction is scaled to
the norm of the same filter of the weights, so the directions are on the scale of each layer's
weights. One-dimensional parameters (biases, normalisation weights) are not perturbed, as in
Li et al. The loss L(δ, η) = L(θ* + δα + ηβ) is evaluated on a grid centred on the trained
weights θ*. This module needs torch, numpy and matplotlib only; the command reads runs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

__all__ = ["Landscape", "loss_surface", "plot_landscapes", "random_directions"]

Directions = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Landscape:
    """Loss (and accuracy) on a grid: ``loss[i, j]`` is at (δ = alphas[j], η = betas[i])."""

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None = None

    @property
    def centre(self) -> tuple[int, int]:
        return len(self.betas) // 2, len(self.alphas) // 2

    @property
    def centre_loss(self) -> float:
        return float(self.loss[self.centre])

    def argmin(self) -> tuple[float, float]:
        """The grid point (δ, η) of the lowest loss."""
        i, j = np.unravel_index(int(np.argmin(self.loss)), self.loss.shape)
        return float(self.alphas[j]), float(self.betas[i])

    def as_dict(self) -> dict:
        out = {
            "alphas": self.alphas.tolist(),
            "betas": self.betas.tolist(),
            "loss": self.loss.tolist(),
        }
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy.tolist()
        return out


def random_directions(model: nn.Module, seed: int = 0) -> Directions:
    """Two seeded, filter-normalised Gaussian directions (zero on 1-D parameters)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):
        direction = {}
        for name, p in model.named_parameters():
            w = p.detach().float().cpu()
            if w.dim() <= 1:
                direction[name] = torch.zeros_like(w)
                continue
            d = torch.randn(w.shape, generator=gen)
            d_norm = d.flatten(1).norm(dim=1).clamp_min(1e-12)
            w_norm = w.flatten(1).norm(dim=1)
            scale = (w_norm / d_norm).view(-1, *([1] * (w.dim() - 1)))
            direction[name] = d * scale
        out.append(direction)
    return out[0], out[1]


def _evaluate(
    model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], loss_fn: LossFn
) -> tuple[float, float | None]:
    total, correct, n = 0.0, 0, 0
    classify = True
    for x, y in batches:
        out = model(x)
        total += float(loss_fn(out, y)) * len(y)
        if classify and out.dim() == 2 and y.dtype in (torch.int64, torch.int32):
            correct += int((out.argmax(1) == y).sum())
        else:
            classify = False
        n += len(y)
    return total / n, (correct / n if classify else None)


def loss_surface(
    model: nn.Module,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    loss_fn: LossFn = F.cross_entropy,
    span: float = 1.0,
    steps: int = 21,
    seed: int = 0,
    directions: Directions | None = None,
) -> Landscape:
    """The loss on a ``steps`` x ``steps`` grid over [-span, span]² around the model's weights.

    ``batches`` are evaluated whole at each point (eval mode, no gradients); the weights are
    restored afterwards. ``steps`` must be odd so that the trained weights are the centre.
    """
    if steps < 3 or steps % 2 == 0:
        raise ValueError(
            f"steps: expected an odd number >= 3 (the centre is a grid point), got {steps}"
        )
    if not span > 0:
        raise ValueError(f"span: expected a positive number, got {span}")
    if not batches:
        raise ValueError("batches: expected at least one (x, y) batch to evaluate the loss on")
    d1, d2 = directions or random_directions(model, seed)
    params = dict(model.named_parameters())
    if set(d1) != set(params) or set(d2) != set(params):
        raise ValueError("directions: their parameter names differ from the model's")
    origin = {n: p.detach().clone() for n, p in params.items()}
    coords = np.linspace(-span, span, steps)
    loss = np.empty((steps, steps))
    acc = np.empty((steps, steps))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, b in enumerate(coords):
                for j, a in enumerate(coords):
                    for n, p in params.items():
                        step = a * d1[n] + b * d2[n]
                        p.copy_(origin[n] + step.to(device=p.device, dtype=p.dtype))
                    loss[i, j], accuracy = _evaluate(model, batches, loss_fn)
                    acc[i, j] = np.nan if accuracy is None else accuracy
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(origin[n])
        model.train(was_training)
    return Landscape(coords, coords.copy(), loss, None if np.isnan(acc).all() else acc)


def plot_landscapes(landscapes: Sequence[tuple[str, Landscape]]) -> bytes:
    """One row per landscape: 2-D contour and 3-D surface of the loss (PNG bytes)."""
    fig = plt.figure(figsize=(11, 4.3 * len(landscapes)))
    for row, (title, land) in enumerate(landscapes):
        a, b = np.meshgrid(land.alphas, land.betas)
        ax = fig.add_subplot(len(landscapes), 2, 2 * row + 1)
        contour = ax.contour(a, b, land.loss, levels=20, cmap="viridis")
        ax.clabel(contour, fontsize=7, fmt="%.2f")
        ax.plot([0], [0], "r+", ms=10)
        ax.set_xlabel("δ (direction α)")
        ax.set_ylabel("η (direction β)")
        ax.set_title(f"{title}: loss contours")
        ax3 = fig.add_subplot(len(landscapes), 2, 2 * row + 2, projection="3d")
        ax3.plot_surface(a, b, land.loss, cmap="viridis", linewidth=0, antialiased=True)
        ax3.set_xlabel("δ")
        ax3.set_ylabel("η")
        ax3.set_zlabel("loss")
        ax3.set_title(f"{title}: loss surface")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
