"""A group-sequential rule for adding seeds: O'Brien-Fleming-type alpha spending.

Seeds are added in rounds; after each round (a *look*) the row's paired t statistic is compared
with a boundary that keeps the chance of ever wrongly excluding 0, over every look up to a
declared maximum of seeds, at ``alpha``. The boundaries come from Lan and DeMets' (1983)
alpha-spending function of O'Brien-Fleming type,

    spent(t) = 4 - 4 Φ(z_{1-α/4} / √t),   t = seeds so far / the declared maximum

(each side spends α/2 by the one-sided form 2 - 2 Φ(z_{1-α/4} / √t)),

so the first looks spend almost nothing (a clear effect still stops early) and the last look's
boundary is close to the fixed-sample one. At look k the boundary ``c_k`` (on the z scale) is
the value with P(|Z_k| ≥ c_k, no earlier crossing) = spent(t_k) - spent(t_{k-1}) under no
effect, computed by numerical integration of the Brownian-motion recursion (Armitage,
McPherson and Rowe, 1969) on a grid. With few seeds the statistic is Student's t, not normal,
and its looks share one estimated spread: the boundaries actually used (:func:`t_boundaries`)
spend the same alpha at the same looks on the t statistics themselves, found on a fixed set of
simulated null paths (``bench/sequential_seeds.py`` checks the error rates on fresh draws).

The interval reported after a sequential run is the *repeated confidence interval* (Jennison
and Turnbull, 1989) at the look it stopped at: ``mean ± crit_k · se_k``. These intervals hold
the true effect at every look at once with probability at least 1 - alpha, so the one read at a
data-dependent stop still covers it at least 1 - alpha of the time. The looks may come at any
seed counts (a failed trial makes a round smaller): spending depends only on the fractions seen
so far.

Pure numpy/scipy; nothing here knows of runs or reports.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

__all__ = [
    "PATHS",
    "RULE",
    "Look",
    "Simulation",
    "boundaries",
    "look",
    "schedule",
    "simulate",
    "spent",
    "t_boundaries",
]

#: How the report names the rule.
RULE = "group-sequential paired t, O'Brien-Fleming-type alpha spending (Lan-DeMets)"
_GRID = 1201  # points of the integration grid (odd: Simpson's rule)


def spent(t: float | np.ndarray, alpha: float) -> float | np.ndarray:
    """The two-sided alpha spent by information fraction ``t`` (0 < t; 1 and beyond: all)."""
    t = np.minimum(np.asarray(t, dtype=float), 1.0)
    z = special.ndtri(1 - alpha / 4)
    out = 4 - 4 * special.ndtr(z / np.sqrt(t))
    return float(out) if out.ndim == 0 else out


def _simpson(n: int) -> np.ndarray:
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w / 3.0


def _excess(
    c: float, s: np.ndarray, mass: np.ndarray, sd: float, root_t: float, target: float
) -> float:
    """P(first crossing of |Z| >= c at this look) - ``target``, from the continuation mass
    ``mass`` at points ``s`` of the last look and an increment of standard deviation ``sd``."""
    b = c * root_t
    return float(mass @ (special.ndtr((-b - s) / sd) + special.ndtr((s - b) / sd))) - target


def boundaries(fractions: Sequence[float], alpha: float) -> np.ndarray:
    """Two-sided z boundaries ``c_k`` at increasing information fractions ``t_k`` (the last
    at most 1): under no effect, P(some |Z_k| ≥ c_k) = spent(t_K)."""
    t = np.asarray(fractions, dtype=float)
    if t.ndim != 1 or not len(t) or t[0] <= 0 or np.any(np.diff(t) <= 0) or t[-1] > 1 + 1e-12:
        raise ValueError(f"information fractions must increase within (0, 1]; got {list(t)}")
    cum = spent(t, alpha)
    out = np.empty(len(t))
    out[0] = special.ndtri(1 - cum[0] / 2)
    half = out[0] * math.sqrt(t[0])  # the continuation region on the S = Z √t scale
    s = np.linspace(-half, half, _GRID)
    density = np.exp(-(s**2) / (2 * t[0])) / math.sqrt(2 * math.pi * t[0])
    for k in range(1, len(t)):
        sd = math.sqrt(t[k] - t[k - 1])
        mass = density * _simpson(len(s)) * (s[1] - s[0])

        args = (s, mass, sd, math.sqrt(t[k]), cum[k] - cum[k - 1])
        if _excess(40.0, *args) >= 0:
            out[k] = 40.0
        else:
            out[k] = optimize.brentq(_excess, 0.0, 40.0, args=args, xtol=1e-10)
        half = out[k] * math.sqrt(t[k])
        new = np.linspace(-half, half, _GRID)
        kernel = np.exp(-((new[:, None] - s[None, :]) ** 2) / (2 * sd**2)) / (
            sd * math.sqrt(2 * math.pi)
        )
        density, s = kernel @ mass, new
    return out


#: Null paths behind :func:`t_boundaries` (its Monte Carlo error on the level: about
#: sqrt(alpha / PATHS), 0.0002 at alpha 0.05) and their fixed seed.
PATHS = 1_000_000
_PATHS_SEED = 20_211
#: A look whose spending would stop fewer paths than this takes the z boundary's nominal
#: level read off Student's t instead (the alpha it spends is too small to matter).
_MIN_CROSSING = 100


@functools.lru_cache(maxsize=64)
def _t_boundaries(seeds: tuple[int, ...], max_seeds: int, alpha: float) -> tuple[float, ...]:
    fractions = np.minimum(seeds, max_seeds) / max_seeds
    cum = np.r_[0.0, spent(fractions, alpha)]
    z = boundaries(fractions, alpha)
    rng = np.random.default_rng(_PATHS_SEED)
    total, squares = np.zeros(PATHS), np.zeros(PATHS)
    alive = np.ones(PATHS, dtype=bool)
    out, before = [], 0
    for k, n in enumerate(seeds):
        # m new standard normal differences, by their sum and the squares about their mean
        m = n - before
        part = math.sqrt(m) * rng.standard_normal(PATHS)
        total += part
        squares += part**2 / m + (rng.chisquare(m - 1, PATHS) if m > 1 else 0.0)
        before = n
        mean = total / n
        t = np.abs(mean) / np.sqrt(np.maximum(squares - n * mean**2, 0.0) / (n - 1) / n)
        cross = int(round(PATHS * (cum[k + 1] - cum[k])))
        if cross < _MIN_CROSSING:
            crit = float(special.stdtrit(n - 1, special.ndtr(z[k])))
        else:
            free = np.sort(t[alive])[::-1]
            crit = 0.0 if cross >= len(free) else float((free[cross - 1] + free[cross]) / 2)
        out.append(crit)
        alive &= t < crit
    return tuple(out)


def t_boundaries(seeds: Sequence[int], max_seeds: int, alpha: float) -> np.ndarray:
    """Critical |t| of a paired t statistic at looks after ``seeds[k]`` pairs each, for a
    design declared to stop at ``max_seeds`` pairs at the latest.

    The z boundaries of :func:`boundaries` assume a known spread; with few seeds the spread is
    estimated and the t statistics of successive looks share it, which the usual conversion
    (the z boundary's nominal level read off Student's t) does not capture: at 3, 6, 9, 12
    seeds it wrongly excludes 0 in 5.3% of rows instead of 5%. So the boundaries are found on
    the t statistics themselves: :data:`PATHS` paths of standard normal differences (the
    statistic's null distribution does not depend on the spread), and at each look the |t|
    that the spending increment's share of the paths not yet stopped exceeds (a look that
    spends too little for the paths to resolve, such as the first of a few, takes the z
    boundary's nominal level read off Student's t). A look's
    boundary depends only on the looks before it (the paths are drawn look by look from a
    fixed seed), so a later, unplanned look does not move an earlier one.
    """
    looks = tuple(int(n) for n in seeds)
    if not looks or looks[0] < 2 or any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
        raise ValueError(f"looks need at least 2 pairs and must increase; got {list(looks)}")
    return np.asarray(_t_boundaries(looks, int(max_seeds), float(alpha)))


@dataclass(frozen=True)
class Look:
    """The rule read after the latest of ``looks`` (seed counts, one per look)."""

    looks: tuple[int, ...]
    max_seeds: int
    alpha: float
    mean: float
    se: float
    crit: float  # the boundary on |t| at this look

    @property
    def interval(self) -> tuple[float, float]:
        """The repeated confidence interval at this look."""
        return (self.mean - self.crit * self.se, self.mean + self.crit * self.se)

    def excludes(self, value: float) -> bool:
        """Whether the rule rejects an effect equal to ``value`` at this look."""
        lo, hi = self.interval
        return not lo <= value <= hi

    @property
    def last(self) -> bool:
        """The declared maximum is reached: no further look."""
        return self.looks[-1] >= self.max_seeds


def look(differences: Sequence[float], looks: Sequence[int], max_seeds: int, alpha: float) -> Look:
    """The rule at the latest look, from the per-seed differences seen so far (in seed order)
    and the seed counts of every look taken (the last must be ``len(differences)``)."""
    d = np.asarray(differences, dtype=float)
    if not looks or looks[-1] != len(d):
        raise ValueError(f"the last look must be at {len(d)} pairs; looks were {list(looks)}")
    crit = float(t_boundaries(looks, max_seeds, alpha)[-1])
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    return Look(tuple(looks), max_seeds, alpha, float(d.mean()), se, crit)


def schedule(initial: int, max_seeds: int, step: int | None = None) -> list[int]:
    """The seed counts of the looks: ``initial``, then every ``step`` more (default
    ``initial``), and ``max_seeds`` last."""
    if not 2 <= initial <= max_seeds:
        raise ValueError(f"need 2 <= initial ({initial}) <= max ({max_seeds})")
    step = step or initial
    return [*range(initial, max_seeds, step), max_seeds]


@dataclass(frozen=True)
class Simulation:
    """Rows run under the rule with a known true effect (see :func:`simulate`)."""

    rows: int
    effect: float
    rejected: np.ndarray  # bool per row: the interval excluded 0 at the look it stopped at
    covered: np.ndarray  # bool per row: the interval at the stop held the true effect
    seeds: np.ndarray  # seeds per arm each row spent

    @property
    def rejection_rate(self) -> float:
        return float(self.rejected.mean())

    @property
    def coverage(self) -> float:
        return float(self.covered.mean())

    @property
    def mean_seeds(self) -> float:
        return float(self.seeds.mean())

    @staticmethod
    def error(rate: float, rows: int) -> float:
        """The Monte Carlo standard error of a rate over ``rows`` rows."""
        return math.sqrt(rate * (1 - rate) / rows)


def simulate(
    rows: int,
    effect: float,
    spread: float,
    correlation: float,
    looks: Sequence[int],
    alpha: float,
    rng: np.random.Generator,
) -> Simulation:
    """``rows`` rows, each a baseline and a row arm with seed spread ``spread`` whose values
    correlate ``correlation`` across the arms through the seed, the row ``effect`` higher;
    each runs under the rule with the given looks (the last is the declared maximum) and stops
    at the first look whose interval excludes 0."""
    n_max = looks[-1]
    shared = rng.standard_normal((rows, n_max))
    own = rng.standard_normal((rows, n_max))
    base = spread * shared
    row = effect + spread * (correlation * shared + math.sqrt(1 - correlation**2) * own)
    d = row - base
    crit = t_boundaries(looks, n_max, alpha)
    open_ = np.ones(rows, dtype=bool)
    rejected = np.zeros(rows, dtype=bool)
    covered = np.zeros(rows, dtype=bool)
    seeds = np.full(rows, n_max)
    for k, n in enumerate(looks):
        mean = d[:, :n].mean(axis=1)
        se = d[:, :n].std(axis=1, ddof=1) / math.sqrt(n)
        reject = open_ & (np.abs(mean) > crit[k] * se)
        stop = reject | (open_ & (k == len(looks) - 1))
        rejected |= reject
        covered[stop] = np.abs(mean[stop] - effect) <= crit[k] * se[stop]
        seeds[stop] = n
        open_ &= ~stop
    return Simulation(rows, effect, rejected, covered, seeds)
