"""Rounds of seeds under the group-sequential rule (:mod:`sweeps.report.rounds`): which rows take
a look, which are decided, which get seeds, and the record the report reads."""

from __future__ import annotations

import numpy as np
import pytest

from sweeps.report.aggregate import CellStats, difference
from sweeps.report.effects import Effect
from sweeps.report.rounds import Record, judge, pairs, round_size, row_id
from sweeps.report.sequential import look

BASE = [80.0, 82.0, 79.0, 81.0, 80.5, 83.0, 78.0, 80.0, 81.5, 79.5, 82.5, 80.0]
CLEAR = [5.0, 5.2, 4.9, 5.1, 5.0, 4.8, 5.3, 5.0, 5.1, 4.9, 5.2, 5.0]  # row minus baseline
NOISY = [3.0, -2.0, 1.0, -1.5, 2.5, -3.0, 0.5, 1.0, -0.5, 2.0, -2.5, 1.5]


def _cell(key: str, values: list[float], seeds: list[int], baseline: bool = False) -> CellStats:
    return CellStats(
        key=key,
        params={},
        variant="",
        values=list(values),
        seeds=[str(s) for s in seeds],
        run_ids=[f"{key}-{s}" for s in seeds],
        is_baseline=baseline,
    )


def _effect(key: str, diffs: list[float], n: int, family: int = 2, base_n: int | None = None):
    seeds = list(range(n))
    base = _cell("p=0", BASE[: base_n or n], list(range(base_n or n)), baseline=True)
    cell = _cell(key, [b + d for b, d in zip(BASE, diffs[:n], strict=False)], seeds)
    return Effect(cell, base, difference(cell, base), "", paper_effect=2.0, family=family)


def test_the_first_look_decides_a_clear_row_and_leaves_a_noisy_one_open():
    rows = [_effect("clear", CLEAR, 6), _effect("noisy", NOISY, 6)]
    record = Record(max_seeds=12, step=3)
    clear, noisy = judge(rows, record, take_look=True)
    assert record.looks == {row_id(rows[0]): [6], row_id(rows[1]): [6]}
    assert clear.decided and not clear.open and not noisy.decided and noisy.open
    # the interval is the rule's, at level 0.05 / 2 for a family of two rows
    want = look(np.asarray(CLEAR[:6]), [6], 12, 0.025)
    assert clear.look.interval == pytest.approx(want.interval)
    assert clear.alpha == 0.025
    # wider than the fixed-sample paired interval: the first look spends little alpha
    lo, hi = noisy.look.interval
    assert hi - lo > np.diff(rows[1].diff.ci95)[0]
    # only the open row (and its baseline) get the next round's seeds, 3 of them
    assert round_size([clear, noisy], 12, 3) == 3


def test_a_decided_row_takes_no_further_look_and_an_open_one_looks_when_its_pairs_grow():
    record = Record(max_seeds=12, step=3)
    judge(
        [_effect("clear", CLEAR, 3, base_n=3), _effect("noisy", NOISY, 3)], record, take_look=True
    )
    # the clear row is open at 3 pairs (the first of four looks spends almost nothing)
    assert all(v == [3] for v in record.looks.values())
    rows = [_effect("clear", CLEAR, 6), _effect("noisy", NOISY, 6)]
    clear, noisy = judge(rows, record, take_look=True)
    assert clear.looks == [3, 6] and clear.decided
    rows = [_effect("clear", CLEAR, 9), _effect("noisy", NOISY, 9)]
    clear, noisy = judge(rows, record, take_look=True)
    assert clear.looks == [3, 6] and clear.decided  # no look after its decision
    assert noisy.looks == [3, 6, 9] and noisy.open
    # reading again without new pairs takes no look
    judge(rows, record, take_look=True)
    assert record.looks[noisy.id] == [3, 6, 9]
    assert round_size([clear, noisy], 12, 3) == 3
    assert round_size([clear, noisy], 11, 3) == 2  # capped at the declared maximum
    rows = [_effect("clear", CLEAR, 9), _effect("noisy", NOISY, 12)]
    clear, noisy = judge(rows, record, take_look=True)
    assert noisy.looks == [3, 6, 9, 12] and noisy.capped and not noisy.open
    assert round_size([clear, noisy], 12, 3) == 0


def test_a_row_without_two_pairs_is_open_without_a_look():
    (row,) = judge([_effect("one", NOISY, 1)], Record(12, 3), take_look=True)
    assert row.look is None and row.looks == [] and row.open


def test_pairs_are_in_seed_order_and_unshared_seeds_are_left_out():
    base = _cell("p=0", [1.0, 2.0, 3.0, 4.0], [10, 9, 2, 7], baseline=True)
    cell = _cell("row", [11.0, 5.0, 30.0], [9, 10, 2])
    e = Effect(cell, base, difference(cell, base), "")
    assert pairs(e) == [30.0 - 3.0, 11.0 - 2.0, 5.0 - 1.0]  # seeds 2, 9, 10


def test_the_record_round_trips_through_its_tag_and_refuses_a_tag_too_long():
    record = Record(12, 3, {"abc": [3, 6]}, rounds=1, stopped="every row decided")
    assert Record.from_tag(record.to_tag()) == record
    assert Record.from_tag(None) is None and Record.from_tag("{not json") is None
    big = Record(12, 3, {f"{i:012d}": list(range(2, 12)) for i in range(300)})
    with pytest.raises(ValueError, match="longer than an MLflow tag"):
        big.to_tag()
