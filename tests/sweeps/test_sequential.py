"""The group-sequential rule for adding seeds: its boundaries and, by a small simulation, its
error rates (``bench/sequential_seeds.py`` runs the large one)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sweeps.report.sequential import (
    Simulation,
    boundaries,
    look,
    schedule,
    simulate,
    spent,
    t_boundaries,
)

# Lan-DeMets O'Brien-Fleming-type boundaries, two-sided alpha 0.05, five equally spaced looks,
# as published (Jennison and Turnbull, Group Sequential Methods, 2000, Table 7.6 and others).
PUBLISHED = [4.877, 3.357, 2.680, 2.290, 2.031]


def test_z_boundaries_are_the_published_ones():
    assert boundaries([0.2, 0.4, 0.6, 0.8, 1.0], 0.05) == pytest.approx(PUBLISHED, abs=2e-3)
    assert boundaries([1.0], 0.05) == pytest.approx([stats.norm.isf(0.025)])
    assert spent(1.0, 0.05) == pytest.approx(0.05) and spent(0.25, 0.05) < 1e-4


def test_t_boundaries_tend_to_the_z_ones_and_earlier_looks_do_not_move():
    many = t_boundaries([10_000, 20_000, 30_000, 40_000, 50_000], 50_000, 0.05)
    assert many == pytest.approx(PUBLISHED, abs=0.05)
    full = t_boundaries([3, 6, 9, 12], 12, 0.05)
    assert t_boundaries([3, 6], 12, 0.05) == pytest.approx(full[:2])
    assert np.all(np.diff(full) < 0)  # early looks spend little
    one = t_boundaries([8], 8, 0.05)[0]  # a single look: the fixed-sample test
    assert one == pytest.approx(stats.t.isf(0.025, 7), rel=0.01)


def test_the_interval_at_a_look_is_mean_plus_minus_its_boundary():
    d = [1.0, 2.5, 0.5, 3.0, 2.0, 1.5]
    got = look(d, [3, 6], 12, 0.05)
    crit = t_boundaries([3, 6], 12, 0.05)[-1]
    se = np.std(d, ddof=1) / np.sqrt(6)
    assert got.interval == pytest.approx((np.mean(d) - crit * se, np.mean(d) + crit * se))
    assert got.excludes(0.0) == (abs(np.mean(d)) > crit * se) and not got.last
    with pytest.raises(ValueError, match="last look"):
        look(d, [3, 5], 12, 0.05)


def test_schedule_ends_at_the_maximum():
    assert schedule(3, 12) == [3, 6, 9, 12]
    assert schedule(3, 10, 2) == [3, 5, 7, 9, 10]
    with pytest.raises(ValueError):
        schedule(1, 12)


def test_a_small_simulation_keeps_both_error_rates():
    """2,000 rows at the measured spread (3.9 points) and correlation (0.6)."""
    looks, rows = schedule(3, 12), 2000
    null = simulate(rows, 0.0, 3.9, 0.6, looks, 0.05, np.random.default_rng(1))
    bound = 0.05 + 3 * Simulation.error(0.05, rows)
    assert null.rejection_rate <= bound
    real = simulate(rows, 3.07, 3.9, 0.6, looks, 0.05, np.random.default_rng(2))
    assert real.coverage >= 0.95 - 3 * Simulation.error(0.95, rows)
    assert real.mean_seeds < null.mean_seeds <= 12  # a real effect stops earlier
    # testing at every look at 0.05 without the rule: about twice the false rate
    rng = np.random.default_rng(1)
    d = 3.9 * np.sqrt(2 * 0.4) * rng.standard_normal((rows, 12))
    naive = np.zeros(rows, dtype=bool)
    for n in looks:
        naive |= stats.ttest_1samp(d[:, :n], 0.0, axis=1).pvalue < 0.05
    assert naive.mean() > bound
