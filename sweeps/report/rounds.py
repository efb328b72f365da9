"""Seeds added in rounds until each row is decided: the rule of :mod:`sweeps.report.sequential`
applied to a sweep's rows, and what it has recorded.

The design, for every row measured against a baseline (:mod:`sweeps.report.effects`):

- *looks*: the first at the seeds the sweep ran (``initial``), then one after each round of
  added seeds. A look is the row's count of *pairs* (seeds both the row and its baseline
  finished), so a failed trial makes a look smaller, never a wrong one.
- *the rule* at a look: the repeated confidence interval of the per-seed differences (paired t,
  boundary from Lan-DeMets alpha spending of O'Brien-Fleming type over ``max_seeds`` pairs,
  :func:`sweeps.report.sequential.look`) at level ``0.05 / m`` for a family of ``m`` rows
  against the same baseline (Bonferroni: the rows of a family stop at different looks). A row
  is *decided* at the first look whose interval excludes 0; it takes no further look.
- *a round* gives the rows still open (undecided, under ``max_seeds`` pairs), and the
  baselines they are measured against, ``step`` fresh seeds each (fewer where ``max_seeds``
  would be passed); rows decided or at the cap get none.
- *it stops* when no row is open, a cap is reached (``max_seeds``, a budget of device-hours:
  then the rows still open keep the interval of their last look, which still holds its level)
  or a round adds no pair.

The looks are recorded on the sweep's MLflow parent run (tag :data:`TAG`, a JSON
:class:`Record`), so the report reads the rule's intervals from the tracking store alone.
Pure: nothing here runs trials (:mod:`sweeps.report.seed_rounds` does).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sweeps.report.effects import ALPHA, Effect, EffectSet, effect_verdict
from sweeps.report.sequential import RULE, Look, look

__all__ = [
    "TAG",
    "Record",
    "RowState",
    "apply",
    "decides",
    "pairs",
    "row_id",
    "round_size",
    "judge",
]

#: The parent run's tag holding the :class:`Record` as JSON.
TAG = "dropattack.seed_rounds"
#: MLflow's longest tag value.
_MAX_TAG = 8000


def row_id(e: Effect) -> str:
    """A short, stable id of a row and its baseline (the record's key)."""
    text = f"{e.cell.key}|{e.baseline.key}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _seed_order(seed: str) -> tuple[int, int | str]:
    return (0, int(seed)) if seed.lstrip("-").isdigit() else (1, seed)


def pairs(e: Effect) -> list[float]:
    """The row's per-seed differences (row minus baseline) on the seeds both arms finished
    once, in seed order (the order rounds add them)."""
    mine = {s: v for s, v in zip(e.cell.seeds, e.cell.values, strict=True)}
    theirs = {s: v for s, v in zip(e.baseline.seeds, e.baseline.values, strict=True)}
    shared = [
        s
        for s in mine
        if s and s in theirs and e.cell.seeds.count(s) == 1 and e.baseline.seeds.count(s) == 1
    ]
    return [mine[s] - theirs[s] for s in sorted(shared, key=_seed_order)]


@dataclass
class Record:
    """What the rounds recorded: the declared maximum and each row's looks (pairs per look)."""

    max_seeds: int
    step: int
    looks: dict[str, list[int]] = field(default_factory=dict)  # row id -> pairs at each look
    rounds: int = 0
    stopped: str = ""  # why the rounds ended ("" while they go on)
    rule: str = RULE

    def to_tag(self) -> str:
        text = json.dumps(
            {
                "rule": self.rule,
                "max_seeds": self.max_seeds,
                "step": self.step,
                "rounds": self.rounds,
                "stopped": self.stopped,
                "looks": self.looks,
            },
            separators=(",", ":"),
        )
        if len(text) > _MAX_TAG:
            raise ValueError(
                f"the rounds' record of {len(self.looks)} rows ({len(text)} characters) is "
                f"longer than an MLflow tag ({_MAX_TAG}); run fewer rows per sweep"
            )
        return text

    @classmethod
    def from_tag(cls, text: str | None) -> Record | None:
        """The record a parent run's tag holds, or None without one (or an unreadable one)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(
                max_seeds=int(data["max_seeds"]),
                step=int(data["step"]),
                looks={str(k): [int(n) for n in v] for k, v in data["looks"].items()},
                rounds=int(data.get("rounds", 0)),
                stopped=str(data.get("stopped", "")),
                rule=str(data.get("rule", RULE)),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass
class RowState:
    """A row under the rule: its looks so far and what the last one said."""

    effect: Effect
    id: str
    alpha: float
    n: int  # pairs now
    looks: list[int]
    look: Look | None  # the rule at the last look (None: no look of 2 pairs yet)
    decided: bool
    capped: bool  # at the declared maximum of pairs

    @property
    def open(self) -> bool:
        """It takes seeds in the next round."""
        return not self.decided and not self.capped

    @property
    def excludes_paper(self) -> bool | None:
        """The last look's interval excludes the paper's effect (None: no paper effect or look)."""
        p = self.effect.paper_effect
        return None if p is None or self.look is None else self.look.excludes(p)


def _read(e: Effect, looks: list[int], max_seeds: int, alpha: float) -> Look | None:
    if not looks:
        return None
    d = pairs(e)[: looks[-1]]
    if len(d) != looks[-1]:  # fewer pairs than the record says: not this sweep's record
        return None
    return look(d, looks, max_seeds, alpha)


def decides(rule: Look | None) -> bool:
    """The rule decides the row at this look: its interval excludes 0 (a zero spread
    decides nothing)."""
    return rule is not None and rule.se > 0 and math.isfinite(rule.se) and rule.excludes(0.0)


def judge(rows: Sequence[Effect], record: Record, *, take_look: bool) -> list[RowState]:
    """Each row under the rule; with ``take_look`` an open row whose pairs grew since its last
    look (or that has none, with at least 2 pairs) takes a look now, recorded in ``record``."""
    out = []
    for e in rows:
        rid = row_id(e)
        alpha = ALPHA / e.family
        n = len(pairs(e))
        looks = list(record.looks.get(rid, []))
        rule = _read(e, looks, record.max_seeds, alpha)
        done = decides(rule) or bool(looks and looks[-1] >= record.max_seeds)
        if take_look and not done and n >= 2 and (not looks or n > looks[-1]):
            looks.append(min(n, record.max_seeds) if looks else n)
            record.looks[rid] = looks
            rule = _read(e, looks, record.max_seeds, alpha)
        capped = n >= record.max_seeds or bool(looks and looks[-1] >= record.max_seeds)
        out.append(RowState(e, rid, alpha, n, looks, rule, decides(rule), capped))
    return out


def round_size(states: Sequence[RowState], max_seeds: int, step: int) -> int:
    """Seeds the next round adds to each open row and its baseline: ``step``, fewer where the
    open row with the most pairs would pass ``max_seeds``; 0 with no open row."""
    open_ = [s.n for s in states if s.open]
    return max(0, min(step, max_seeds - max(open_))) if open_ else 0


def apply(effects: EffectSet, record: Record | None) -> EffectSet:
    """The rows the rounds judged, with the rule's interval and verdict at their last look
    (``Effect.sequential``); other rows as they were. The verdict reads the rule's interval
    as the report reads a 95% one: against 0 and against the paper's effect."""
    if record is None or not record.looks:
        return effects
    rows = []
    for e in effects.rows:
        looks = record.looks.get(row_id(e))
        rule = _read(e, looks, record.max_seeds, ALPHA / e.family) if looks else None
        if rule is None:
            rows.append(e)
            continue
        verdict = e.verdict
        if e.paper_effect is not None and rule.se > 0:
            excludes = (decides(rule), rule.excludes(e.paper_effect))
            verdict = effect_verdict(rule.mean, e.paper_effect, *excludes)
        rows.append(replace(e, sequential=rule, verdict=verdict))
    return replace(effects, rows=rows)
