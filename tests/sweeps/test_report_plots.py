"""The ε × p heatmap's colours relative to the baseline, and Figure 4's baseline band."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Polygon, Rectangle
from PIL import Image

from sweeps.report import plots


def _grid(mean, baseline: plots.Baseline | None) -> plots.Grid:
    mean = np.asarray(mean, dtype=float)
    return plots.Grid(
        eps=[1.0, 3.0, 5.0][: mean.shape[1]],
        p=[0.3, 0.5, 0.7][: mean.shape[0]],
        mean=mean,
        std=np.full(mean.shape, 0.4),
        baseline=baseline,
    )


BASE = plots.Baseline(mean=97.0, std=0.5, n=3)


def _image(fig):
    (ax,) = [a for a in fig.axes if a.images and a.get_label() != "<colorbar>"]
    return ax, ax.images[0]


@pytest.mark.parametrize(
    "mean",
    [
        [[95.0, 97.0, 98.0], [96.5, 97.4, 99.5]],  # on both sides of the baseline
        [[97.0, 97.3, 97.6], [98.0, 98.8, 99.9]],  # all at or above it: still centred on it
        [[90.0, 92.0, 97.0], [93.0, 95.5, 96.0]],  # all at or below it
    ],
)
def test_the_colour_at_the_baselines_value_is_the_maps_centre(mean):
    grid = _grid(mean, BASE)
    fig = plots.heatmap_figure(grid)
    _, image = _image(fig)
    centre = image.cmap(0.5)
    assert image.norm(BASE.mean) == pytest.approx(0.5)
    drawn = image.to_rgba(image.get_array())  # what each cell is painted with
    i, j = np.argwhere(np.asarray(mean) == BASE.mean)[0]
    assert tuple(drawn[i, j]) == pytest.approx(centre)
    # cells above the baseline are on the map's upper half, cells below on its lower half
    values = np.asarray(mean)
    assert np.all(image.norm(values[values > BASE.mean]) > 0.5)
    assert np.all(image.norm(values[values < BASE.mean]) < 0.5)
    # the diverging map is light at its centre and strongly coloured at both ends
    assert min(centre[:3]) > 0.9
    lo, hi = image.cmap(0.0), image.cmap(1.0)
    assert lo[0] > lo[2] and hi[2] > hi[0]  # red below, blue above
    plt.close(fig)


def test_equal_distances_from_the_baseline_get_equal_intensity():
    fig = plots.heatmap_figure(_grid([[95.0, 99.0, 97.5]], BASE))
    _, image = _image(fig)
    assert image.norm(95.0) == pytest.approx(1 - image.norm(99.0))
    plt.close(fig)


def test_the_baseline_is_stated_in_the_title_and_marked_on_the_colour_bar():
    fig = plots.heatmap_figure(_grid([[95.0, 97.0, 98.0]], BASE))
    ax, _ = _image(fig)
    assert "baseline 97.00 ± 0.50% (n=3)" in ax.get_title()
    bar = next(a for a in fig.axes if a is not ax)
    marks = [line.get_ydata() for line in bar.lines]
    assert any(np.allclose(y, BASE.mean) for y in marks)
    plt.close(fig)


def test_without_a_baseline_the_map_spans_the_cells_range():
    mean = [[95.0, 96.0, 98.0]]
    fig = plots.heatmap_figure(_grid(mean, None))
    ax, image = _image(fig)
    assert image.norm(95.0) == pytest.approx(0.0) and image.norm(98.0) == pytest.approx(1.0)
    assert "baseline" not in ax.get_title()
    plt.close(fig)


def test_heatmap_png_paints_the_baseline_cell_in_the_centre_colour():
    """In the rendered PNG itself: the pixel at the centre of the cell equal to the baseline."""
    grid = _grid([[93.0, 97.0, 99.0]], BASE)
    fig = plots.heatmap_figure(grid)
    ax, image = _image(fig)
    fig.canvas.draw()
    x, y = ax.transData.transform((1, 0.3))  # cell (p row 0, ε column 1), below its label
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # same dpi as the canvas: display pixels are PNG pixels
    pixels = np.asarray(Image.open(buf).convert("RGB"), dtype=float)
    height = pixels.shape[0]
    rgb = pixels[int(round(height - y)), int(round(x))] / 255
    assert rgb == pytest.approx(image.cmap(0.5)[:3], abs=0.02)
    below = pixels[int(round(height - y)), int(round(ax.transData.transform((0, 0.3))[0]))]
    assert below[0] > below[2] + 50  # the cell below the baseline is red
    plt.close(fig)


def _band(ax) -> tuple[float, float] | None:
    for patch in ax.patches:
        if isinstance(patch, (Rectangle, Polygon)) and "baseline" in str(patch.get_label()):
            ys = patch.get_path().transformed(patch.get_patch_transform()).vertices[:, 1]
            if isinstance(patch, Polygon):
                ys = patch.get_xy()[:, 1]
            return float(ys.min()), float(ys.max())
    return None


def test_figure4_draws_the_baseline_as_a_band_of_mean_plus_minus_std():
    grid = _grid([[95.0, 97.0, 98.0], [96.5, 97.4, 99.5]], BASE)
    fig = plots.figure4_figure(grid)
    ax = fig.axes[0]
    lo, hi = _band(ax)
    assert (lo, hi) == pytest.approx((BASE.mean - BASE.std, BASE.mean + BASE.std))
    assert any(
        np.allclose(line.get_ydata(), BASE.mean) and "baseline" in line.get_label()
        for line in ax.lines
    )
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "baseline mean ± std (n=3)" in labels
    plt.close(fig)
    none = plots.figure4_figure(_grid([[95.0, 97.0, 98.0]], None))
    assert _band(none.axes[0]) is None
    plt.close(none)


def test_cells_within_the_baselines_noise_stay_pale():
    """The scale reaches at least 2 std of the baseline: a cell 1 std off is not saturated."""
    noisy = plots.Baseline(mean=95.8, std=1.2, n=2)
    fig = plots.heatmap_figure(_grid([[95.2, 96.1, 94.7]], noisy))
    _, image = _image(fig)
    assert image.norm(94.7) == pytest.approx(0.5 - 1.1 / (2 * 2 * 1.2))
    assert image.norm(95.8 + 2 * 1.2) == pytest.approx(1.0)
    plt.close(fig)
