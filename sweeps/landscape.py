"""Loss landscapes around a trained model (the paper's Figures 3, 5 and 6; Li et al., 2018).

Two random directions α and β with the shape of the parameters are drawn from a Gaussian and
filter-normalised: each filter (slice along the first dimension) of a direction is scaled to
the norm of the same filter of the weights, so the directions are on the scale of each layer's
weights. One-dimensional parameters (biases, normalisation weights) are not perturbed, as in
Li et al. The loss L(δ, η) = L(θ* + δα + ηβ) is evaluated on a grid centred on the trained
weights θ* (:func:`loss_surface`, drawn as 2-D contours and a 3-D surface), and along α alone,
L(δ) = L(θ* + δα) (:func:`loss_curve`, the 1-D curves of the paper's Figure 3, several runs on
one axis). This module needs torch, numpy and matplotlib only; the command reads runs.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import matplotlib
import matplotlib.cm
import matplotlib.colors

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

__all__ = [
    "Landscape",
    "LossCurve",
    "landscape_figure",
    "loss_curve",
    "loss_surface",
    "plot_curves",
    "plot_landscapes",
    "random_directions",
    "shared_scale",
]

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


@dataclass
class LossCurve:
    """Loss (and accuracy) along one direction: ``loss[j]`` is at δ = ``alphas[j]``."""

    alphas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None = None

    @property
    def centre(self) -> int:
        return len(self.alphas) // 2

    @property
    def centre_loss(self) -> float:
        return float(self.loss[self.centre])

    def argmin(self) -> float:
        """The δ of the lowest loss."""
        return float(self.alphas[int(np.argmin(self.loss))])

    def as_dict(self) -> dict:
        out = {"alphas": self.alphas.tolist(), "loss": self.loss.tolist()}
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


def _check_grid(steps: int, span: float, batches: Sequence) -> None:
    if steps < 3 or steps % 2 == 0:
        raise ValueError(
            f"steps: expected an odd number >= 3 (the centre is a grid point), got {steps}"
        )
    if not span > 0:
        raise ValueError(f"span: expected a positive number, got {span}")
    if not batches:
        raise ValueError("batches: expected at least one (x, y) batch to evaluate the loss on")


@contextlib.contextmanager
def _displaced(model: nn.Module) -> Iterator[Callable[[Callable[[str], torch.Tensor]], None]]:
    """Eval mode, no gradients; yields ``move(offset)`` setting θ* + offset(name) on every
    parameter; the trained weights and the training mode are restored on exit."""
    params = dict(model.named_parameters())
    origin = {n: p.detach().clone() for n, p in params.items()}
    was_training = model.training
    model.eval()

    def move(offset: Callable[[str], torch.Tensor]) -> None:
        for n, p in params.items():
            p.copy_(origin[n] + offset(n).to(device=p.device, dtype=p.dtype))

    try:
        with torch.no_grad():
            yield move
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(origin[n])
        model.train(was_training)


def _check_direction(model: nn.Module, *directions: dict[str, torch.Tensor]) -> None:
    names = {n for n, _ in model.named_parameters()}
    if any(set(d) != names for d in directions):
        raise ValueError("directions: their parameter names differ from the model's")


def loss_surface(
    model: nn.Module,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    loss_fn: LossFn = F.cross_entropy,
    span: float = 1.0,
    steps: int = 21,
    seed: int = 0,
    directions: Directions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Landscape:
    """The loss on a ``steps`` x ``steps`` grid over [-span, span]² around the model's weights.

    ``batches`` are evaluated whole at each point (eval mode, no gradients); the weights are
    restored afterwards. ``steps`` must be odd so that the trained weights are the centre.
    ``progress(done, total)`` is called after each point.
    """
    _check_grid(steps, span, batches)
    d1, d2 = directions or random_directions(model, seed)
    _check_direction(model, d1, d2)
    coords = np.linspace(-span, span, steps)
    loss = np.empty((steps, steps))
    acc = np.empty((steps, steps))
    with _displaced(model) as move:
        for i, b in enumerate(coords):
            for j, a in enumerate(coords):
                move(lambda n, a=a, b=b: a * d1[n] + b * d2[n])
                loss[i, j], accuracy = _evaluate(model, batches, loss_fn)
                acc[i, j] = np.nan if accuracy is None else accuracy
                if progress is not None:
                    progress(i * steps + j + 1, steps * steps)
    return Landscape(coords, coords.copy(), loss, None if np.isnan(acc).all() else acc)


def loss_curve(
    model: nn.Module,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    loss_fn: LossFn = F.cross_entropy,
    span: float = 1.0,
    steps: int = 41,
    seed: int = 0,
    direction: dict[str, torch.Tensor] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LossCurve:
    """The loss at ``steps`` points δ in [-span, span] along one filter-normalised direction.

    The direction is the first of :func:`random_directions` (α of :func:`loss_surface` with
    the same seed), so the curve is the surface's η = 0 line, sampled as finely as asked.
    ``steps`` must be odd so that the trained weights (δ = 0) are a point of the curve.
    """
    _check_grid(steps, span, batches)
    d = direction if direction is not None else random_directions(model, seed)[0]
    _check_direction(model, d)
    coords = np.linspace(-span, span, steps)
    loss = np.empty(steps)
    acc = np.empty(steps)
    with _displaced(model) as move:
        for j, a in enumerate(coords):
            move(lambda n, a=a: a * d[n])
            loss[j], accuracy = _evaluate(model, batches, loss_fn)
            acc[j] = np.nan if accuracy is None else accuracy
            if progress is not None:
                progress(j + 1, steps)
    return LossCurve(coords, loss, None if np.isnan(acc).all() else acc)


def shared_scale(landscapes: Sequence[Landscape], levels: int = 20) -> np.ndarray:
    """Contour levels spanning every landscape's finite losses: one scale for all runs."""
    finite = [land.loss[np.isfinite(land.loss)] for land in landscapes]
    values = np.concatenate([f for f in finite if f.size]) if any(f.size for f in finite) else None
    if values is None:
        return np.linspace(0.0, 1.0, levels)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1e-6
    return np.linspace(lo, hi, levels)


def plot_landscapes(landscapes: Sequence[tuple[str, Landscape]]) -> bytes:
    """One row per landscape: 2-D contour and 3-D surface of the loss (PNG bytes); see
    :func:`landscape_figure`."""
    fig = landscape_figure(landscapes)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def landscape_figure(landscapes: Sequence[tuple[str, Landscape]]) -> plt.Figure:
    """One row per landscape: 2-D contour and 3-D surface of the loss.

    Every row shares one scale (:func:`shared_scale`): the same contour levels, colour map
    limits and z-range, so that runs compare by eye; one colour bar gives it.
    """
    levels = shared_scale([land for _, land in landscapes])
    lo, hi = float(levels[0]), float(levels[-1])
    norm = matplotlib.colors.Normalize(vmin=lo, vmax=hi)
    fig = plt.figure(figsize=(12, 4.3 * len(landscapes)))
    for row, (title, land) in enumerate(landscapes):
        a, b = np.meshgrid(land.alphas, land.betas)
        ax = fig.add_subplot(len(landscapes), 2, 2 * row + 1)
        contour = ax.contour(a, b, land.loss, levels=levels, cmap="viridis", norm=norm)
        ax.clabel(contour, fontsize=7, fmt="%.2f")
        ax.plot([0], [0], "r+", ms=10)
        ax.set_xlabel("δ (direction α)")
        ax.set_ylabel("η (direction β)")
        ax.set_title(f"{title}: loss contours")
        ax3 = fig.add_subplot(len(landscapes), 2, 2 * row + 2, projection="3d")
        ax3.plot_surface(a, b, land.loss, cmap="viridis", norm=norm, linewidth=0, antialiased=True)
        ax3.set_zlim(lo, hi)
        ax3.set_xlabel("δ")
        ax3.set_ylabel("η")
        ax3.set_zlabel("loss")
        ax3.set_title(f"{title}: loss surface")
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    bar = fig.add_axes((0.93, 0.1, 0.015, 0.8))
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), cax=bar, label="loss")
    return fig


def plot_curves(curves: Sequence[tuple[str, LossCurve]]) -> bytes:
    """The 1-D loss curves of several runs on one axis (the paper's Figure 3), PNG bytes.

    Solid lines are the loss (left axis), dotted lines the accuracy (right axis) when known.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    colors = plt.get_cmap("tab10")
    acc_ax = None
    for i, (title, curve) in enumerate(curves):
        color = colors(i % 10)
        ax.plot(curve.alphas, curve.loss, color=color, lw=2, label=f"{title}: loss")
        if curve.accuracy is not None:
            acc_ax = acc_ax or ax.twinx()
            acc_ax.plot(
                curve.alphas, 100 * curve.accuracy, color=color, ls=":", label=f"{title}: acc."
            )
    ax.axvline(0.0, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("δ (filter-normalised direction α)")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if acc_ax is not None:
        acc_ax.set_ylabel("accuracy (%)")
        more = acc_ax.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    rows = (len(handles) + 1) // 2
    fig.legend(handles, labels, fontsize=8, ncol=2, loc="lower center", bbox_to_anchor=(0.5, 0))
    ax.set_title("Loss along one filter-normalised direction (trained weights at δ = 0)")
    fig.tight_layout(rect=(0, 0.045 * rows + 0.02, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
