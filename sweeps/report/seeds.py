"""How many seeds a row's verdict needs, and what adding them costs (``dropattack seeds``).

For each measured row with a baseline (:mod:`sweeps.report.effects`), from its seeds now:

- *decided*: its verdict is ``reproduced``, ``smaller`` or ``opposite`` (its interval
  excludes 0 after the family's Holm adjustment); rows without a paper effect are decided when
  their Holm-adjusted p is below 0.05. ``not shown`` rows and rows no test could judge are
  undecided.
- *seeds needed* (per arm; both arms run the same seeds, so the test is paired): the fewest
  with which a paired t test at the family's strictest Holm level, 0.05 / m for a family of m
  rows, has the stated power
  - ``against_zero``: to show the paper's effect against 0, were the true effect the paper's
    (the measured effect where the paper has none, or prints 0);
  - ``against_paper``: to tell the measured effect from the paper's, were the true effect the
    measured one.

  The spread they assume is that of the per-seed differences: measured on the shared seeds
  when the row is paired, else sqrt(s_row² + s_baseline²) (no correlation assumed: the
  planned seeds pair the arms, so this errs long).
- *trials to add* (for undecided rows): ``against_zero`` minus the seeds each arm has, on the
  row and on its baseline (a baseline shared by several rows is counted once in the totals, at
  the most any of its rows needs), and their device-hours: the arm's mean measured seconds per
  trial times the devices a trial held (GPUs per trial, else CPUs), or a calibration's
  prediction where no trial of the arm recorded its seconds. A row that needs more than
  ``max_seeds`` cannot be decided within it: it adds nothing and says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

from sweeps.report.aggregate import CellStats
from sweeps.report.effects import ALPHA, Effect, EffectSet
from sweeps.report.rounds import decides

__all__ = [
    "DECIDED",
    "LIMIT",
    "RowSeeds",
    "SeedsPlan",
    "paired_power",
    "plan_seeds",
    "seeds_for",
]

#: Effect verdicts that more seeds would not turn around: the interval excludes 0.
DECIDED = frozenset({"reproduced", "smaller", "opposite"})
#: Seeds per arm searched at most; a row that needs more reads "more than LIMIT".
LIMIT = 10_000


def paired_power(n: int | np.ndarray, delta: float, sd: float, alpha: float) -> np.ndarray:
    """Power of the two-sided paired t test at level ``alpha`` with ``n`` pairs, a true mean
    difference ``delta`` and a spread ``sd`` of the per-seed differences (noncentral t)."""
    n = np.asarray(n, dtype=float)
    df = n - 1
    crit = special.stdtrit(df, 1 - alpha / 2)
    ncp = abs(delta) / sd * np.sqrt(n)
    return stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp)


def seeds_for(delta: float, sd: float, alpha: float, power: float) -> int | None:
    """The fewest pairs (at least 2) whose paired t test reaches ``power``; None when no
    count up to :data:`LIMIT` does (or the effect is 0)."""
    if sd <= 0 or not math.isfinite(sd) or delta == 0 or not math.isfinite(delta):
        return None
    n = np.arange(2, LIMIT + 1)
    ok = np.nonzero(paired_power(n, delta, sd, alpha) >= power)[0]
    return int(n[ok[0]]) if len(ok) else None


@dataclass
class RowSeeds:
    """One row's seeds: now, needed, and what adding them costs."""

    effect: Effect
    n: int  # seeds now: pairs when paired, else the smaller arm
    decided: bool
    sd: float | None  # spread of the per-seed differences the plan assumes
    alpha: float  # the family's strictest Holm level
    against_zero: int | None
    against_paper: int | None
    row_trials: int = 0
    base_trials: int = 0
    device_hours: float | None = 0.0
    why: str = ""  # why no seeds are added (decided, beyond --max-seeds, no spread)

    @property
    def trials_to_add(self) -> int:
        return self.row_trials + self.base_trials

    @property
    def verdict(self) -> str | None:
        return self.effect.verdict

    @property
    def name(self) -> str:
        return self.effect.cell.name


@dataclass
class SeedsPlan:
    """Every row's seeds and the totals (a baseline's added trials counted once)."""

    rows: list[RowSeeds]
    power: float
    max_seeds: int
    total_trials: int = 0
    total_device_hours: float | None = 0.0
    priced_by_calibration: list[str] = field(default_factory=list)  # cell keys


def _spread(e: Effect) -> float | None:
    d = e.diff
    if d.test == "paired" and d.se is not None:
        return d.se * math.sqrt(d.n_pairs)
    a, b = e.cell, e.baseline
    if a.n < 2 or b.n < 2:
        return None
    return math.sqrt(a.std**2 + b.std**2)


def _decided(e: Effect) -> bool:
    if e.sequential is not None:  # judged in rounds: the rule decides
        return decides(e.sequential)
    if e.paper_effect is not None:
        return e.verdict in DECIDED
    return e.pvalue_holm is not None and e.pvalue_holm < ALPHA


def _why_not(e: Effect, sd: float | None, need: int | None, max_seeds: int) -> str:
    if sd is None or sd <= 0:
        return "no spread to plan from (fewer than 2 seeds on a side, or identical values)"
    target = _target(e)
    if not target:
        return "the effect to show is 0"
    ratio = abs(target) / sd
    what = "paper's" if e.paper_effect else "measured"
    needs = f"more than {LIMIT:,}" if need is None else f"{need}"
    return (
        f"the {what} effect ({target:+.2f}) is {ratio:.2g} of the per-seed differences' spread "
        f"({sd:.2f}): it needs {needs} seeds per arm, more than --max-seeds {max_seeds}"
    )


def _target(e: Effect) -> float:
    """The effect to show against 0: the paper's, else (none, or 0) the measured one."""
    return e.paper_effect if e.paper_effect else e.value


def _seconds(cell: CellStats, calibrated: dict[str, float]) -> float | None:
    return cell.mean_seconds if cell.mean_seconds is not None else calibrated.get(cell.key)


def plan_seeds(
    effects: EffectSet,
    *,
    power: float = 0.8,
    max_seeds: int = 20,
    device_share: float = 1.0,
    calibrate: Callable[[Sequence[CellStats]], dict[str, float]] | None = None,
) -> SeedsPlan:
    """Each row's seeds needed and the cost of the undecided rows' missing seeds.

    ``device_share``: devices one trial holds (GPUs per trial, else CPUs). ``calibrate``:
    predicted seconds per trial (by cell key) for arms whose trials recorded none (the plan's
    calibration); without it those arms are unpriced and the hours None.
    """
    rows = []
    for e in effects.rows:
        sd = _spread(e)
        alpha = ALPHA / e.family
        n = e.diff.n_pairs if e.diff.test == "paired" else min(e.cell.n, e.baseline.n)
        zero = seeds_for(_target(e), sd, alpha, power) if sd else None
        paper = None
        if e.paper_effect is not None and sd:
            paper = seeds_for(e.value - e.paper_effect, sd, alpha, power)
        row = RowSeeds(e, n, _decided(e), sd, alpha, zero, paper)
        if row.decided:
            row.why = f"decided: {e.verdict or 'the interval excludes 0'}"
        elif zero is None or zero > max_seeds:
            row.why = _why_not(e, sd, zero, max_seeds)
        else:
            row.row_trials = max(0, zero - e.cell.n)
            row.base_trials = max(0, zero - e.baseline.n)
        rows.append(row)
    plan = SeedsPlan(rows, power, max_seeds)
    adding = [r for r in rows if r.trials_to_add]
    unpriced = {
        c.key: c
        for r in adding
        for c, k in ((r.effect.cell, r.row_trials), (r.effect.baseline, r.base_trials))
        if k and c.mean_seconds is None
    }
    calibrated = calibrate(list(unpriced.values())) if calibrate and unpriced else {}
    plan.priced_by_calibration = [k for k in unpriced if k in calibrated]
    base_need: dict[str, tuple[CellStats, int]] = {}
    total_seconds: float | None = 0.0
    for r in rows:
        secs_row = _seconds(r.effect.cell, calibrated)
        secs_base = _seconds(r.effect.baseline, calibrated)
        parts = [(r.row_trials, secs_row), (r.base_trials, secs_base)]
        if any(k and s is None for k, s in parts):
            r.device_hours = None
        else:
            r.device_hours = sum(k * (s or 0.0) for k, s in parts) * device_share / 3600
        if r.row_trials:
            total_seconds = (
                None
                if secs_row is None or total_seconds is None
                else (total_seconds + r.row_trials * secs_row)
            )
        key = r.effect.baseline.key
        if r.base_trials > base_need.get(key, (None, 0))[1]:
            base_need[key] = (r.effect.baseline, r.base_trials)
    for base, k in base_need.values():
        secs = _seconds(base, calibrated)
        total_seconds = None if secs is None or total_seconds is None else total_seconds + k * secs
    plan.total_trials = sum(r.row_trials for r in rows) + sum(k for _, k in base_need.values())
    plan.total_device_hours = None if total_seconds is None else total_seconds * device_share / 3600
    return plan
