"""The report's figures as PNG bytes (matplotlib, Agg backend, no display needed).

- :func:`heatmap`: measured mean over the ε × p grid, annotated with each cell's value;
- :func:`figure4`: the paper's Figure 4, accuracy against p with one line per ε;
- :func:`figure2`: the paper's Figure 2, train and validation accuracy per epoch with and
  without DropAttack, one panel per model.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["Curve", "Grid", "figure2", "figure4", "heatmap"]

_DPI = 110


@dataclass(frozen=True)
class Grid:
    """Means (and stds) on an ε × p grid; NaN where a combination was not measured."""

    eps: Sequence[float]
    p: Sequence[float]
    mean: np.ndarray  # shape (len(p), len(eps))
    std: np.ndarray
    reference: Mapping[float, tuple[Sequence[float], Sequence[float]]] | None = None
    """The paper's full curve per ε, (p values, accuracies), drawn dashed in Figure 4."""
    unit: str = "%"
    title: str = ""


@dataclass(frozen=True)
class Curve:
    """One line of Figure 2: a model's accuracy per epoch, averaged over seeds."""

    model: str
    method: str
    split: str  # "train" or "val"
    epochs: Sequence[int]
    values: Sequence[float]


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def heatmap(grid: Grid) -> bytes:
    """The measured mean over the grid (rows p, columns ε), each cell annotated."""
    fig, ax = plt.subplots(figsize=(1.1 * len(grid.eps) + 2.5, 0.7 * len(grid.p) + 1.8))
    data = np.ma.masked_invalid(grid.mean)
    image = ax.imshow(data, cmap="viridis", aspect="auto", origin="upper")
    ax.set_xticks(range(len(grid.eps)), [f"{e:g}" for e in grid.eps])
    ax.set_yticks(range(len(grid.p)), [f"{p:g}" for p in grid.p])
    ax.set_xlabel("perturbation coefficient ε")
    ax.set_ylabel("attack probability p")
    lo, hi = (float(data.min()), float(data.max())) if data.count() else (0.0, 1.0)
    mid = (lo + hi) / 2
    for i in range(len(grid.p)):
        for j in range(len(grid.eps)):
            value = grid.mean[i, j]
            text = "–" if np.isnan(value) else f"{value:.2f}"
            color = "black" if np.isnan(value) or value > mid else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    fig.colorbar(image, ax=ax, label=f"mean accuracy ({grid.unit})")
    ax.set_title(grid.title or "Measured mean over the ε × p grid")
    return _png(fig)


def figure4(grid: Grid) -> bytes:
    """Accuracy against p, one line per ε (error bars: std); the paper's lines dashed."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = plt.get_cmap("tab10")
    for j, eps in enumerate(grid.eps):
        color = colors(j % 10)
        y, err = grid.mean[:, j], grid.std[:, j]
        ok = ~np.isnan(y)
        if ok.any():
            ax.errorbar(
                np.asarray(grid.p)[ok],
                y[ok],
                yerr=np.nan_to_num(err[ok]),
                marker="o",
                ms=4,
                capsize=2,
                color=color,
                label=f"ε = {eps:g}",
            )
        if grid.reference and eps in grid.reference:
            px, py = grid.reference[eps]
            ax.plot(px, py, ls="--", lw=1, alpha=0.6, color=color)
    ax.set_xlabel("attack probability p")
    ax.set_ylabel(f"accuracy ({grid.unit})")
    note = " (dashed: paper)" if grid.reference else ""
    ax.set_title(f"Accuracy against attack probability, one line per ε{note}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _png(fig)


def figure2(curves: Sequence[Curve], unit: str = "%") -> bytes:
    """Train (dashed) and validation (solid) accuracy per epoch, one panel per model."""
    models = list(dict.fromkeys(c.model for c in curves))
    methods = list(dict.fromkeys(c.method for c in curves))
    colors: Mapping[str, str] = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for c in (c for c in curves if c.model == model):
            ax.plot(
                c.epochs,
                c.values,
                ls="-" if c.split == "val" else "--",
                marker="o" if c.split == "val" else None,
                ms=3,
                color=colors[c.method],
            )
        ax.set_title(model)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"accuracy ({unit})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[m], lw=2, label=m) for m in methods] + [
        Line2D([], [], color="gray", ls="--", label="train"),
        Line2D([], [], color="gray", ls="-", marker="o", ms=3, label="validation"),
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(4, len(handles)),
        fontsize=8,
        bbox_to_anchor=(0.5, -0.02 - 0.04 * (len(handles) // 4)),
    )
    fig.suptitle("Training (dashed) and validation (solid) accuracy per epoch")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _png(fig)
