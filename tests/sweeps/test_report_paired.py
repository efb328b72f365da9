"""Paired effects: a row and its baseline that share seeds are tested on per-seed differences.

Expected numbers come from scipy (``ttest_rel``, ``ttest_ind``) and numpy here; the report's
own arithmetic is not reused.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from scipy import stats

from sweeps.report import build_report
from sweeps.report.aggregate import CellStats, difference


def _cell(key: str, values: list[float], seeds: list[int], baseline: bool = False) -> CellStats:
    return CellStats(
        key=key,
        params={"task": "t"},
        variant="",
        values=values,
        seeds=[str(s) for s in seeds],
        run_ids=[f"{key}{s}" for s in seeds],
        is_baseline=baseline,
    )


def _correlated(n: int, rho: float, spread: float, effect: float, seed: int):
    """Two arms whose seed-driven parts correlate ``rho``: baseline and row."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, spread * np.sqrt(rho), n)
    own = rng.normal(0, spread * np.sqrt(1 - rho), (2, n))
    return list(80 + shared + own[0]), list(80 + effect + shared + own[1])


def test_paired_interval_is_scipys_ttest_rel_and_tighter_than_welch_on_correlated_arms():
    base, row = _correlated(8, 0.8, 3.9, 2.0, seed=3)
    d = difference(_cell("r", row, list(range(8))), _cell("b", base, list(range(8)), True))
    ref = stats.ttest_rel(row, base)
    ci = ref.confidence_interval(0.95)
    assert d.test == "paired" and d.n_pairs == 8
    assert d.value == pytest.approx(np.mean(row) - np.mean(base), abs=1e-12)
    assert d.ci95 == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert d.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    assert d.correlation == pytest.approx(np.corrcoef(row, base)[0, 1], abs=1e-12)
    welch = stats.ttest_ind(row, base, equal_var=False).confidence_interval(0.95)
    assert d.ci95[1] - d.ci95[0] < 0.6 * (welch.high - welch.low)


def test_only_shared_seeds_are_paired_and_fewer_than_three_fall_back_to_welch():
    base = _cell("b", [80.0, 81.5, 79.0, 82.0, 80.5], [0, 1, 2, 3, 4], True)
    row = _cell("r", [82.0, 80.0, 83.1, 81.0, 84.0], [2, 3, 4, 5, 6])  # shares 2, 3, 4
    d = difference(row, base)
    a, b = [82.0, 80.0, 83.1], [79.0, 82.0, 80.5]
    ref = stats.ttest_rel(a, b)
    assert (d.test, d.n_pairs) == ("paired", 3)
    assert d.value == pytest.approx(np.mean(a) - np.mean(b))
    assert d.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    two = _cell("r", [82.0, 80.0, 83.1, 81.0, 84.0], [3, 4, 5, 6, 7])  # shares 3, 4
    w = difference(two, base)
    ref = stats.ttest_ind(two.values, base.values, equal_var=False)
    assert (w.test, w.n_pairs, w.correlation) == ("welch", 2, None)
    assert w.ci95 == pytest.approx(tuple(ref.confidence_interval(0.95)), abs=1e-9)


def test_a_shifted_paired_test_is_the_test_of_the_shifted_differences():
    base, row = _correlated(6, 0.6, 3.9, 1.0, seed=7)
    d = difference(_cell("r", row, list(range(6))), _cell("b", base, list(range(6)), True), 2.5)
    assert d.pvalue == pytest.approx(stats.ttest_rel(np.asarray(row) - 2.5, base).pvalue)


def _log(client, exp_id, parent, params, acc, seed):
    cell = ";".join(f"{k}={v}" for k, v in params.items())
    run = client.create_run(
        exp_id,
        tags={
            "mlflow.parentRunId": parent,
            "dropattack.role": "trial",
            "dropattack.paper_table": "table10",
            "dropattack.cell": cell,
        },
    )
    client.log_batch(
        run.info.run_id,
        metrics=[Metric("test_acc", acc / 100, 0, 0), Metric("val_acc", acc / 100, 0, 0)],
        params=[Param(k, str(v)) for k, v in {**params, "seed": seed}.items()],
    )
    client.set_terminated(run.info.run_id, "FINISHED")


def test_report_json_and_markdown_name_the_test_its_pairs_and_the_correlation(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp_id = client.create_experiment("paired", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(
        exp_id, tags={"dropattack.role": "sweep", "dropattack.paper_table": "table10"}
    ).info.run_id
    base, row = _correlated(6, 0.6, 3.9, 2.0, seed=11)
    unpaired = list(np.asarray(row[:4]) + 0.5)
    common = {"task": "imdb-lstm", "method": "dropattack", "attack": "Embedding", "eps": 5}
    for seed, (b, r) in enumerate(zip(base, row, strict=True)):
        _log(client, exp_id, parent, {**common, "p": 0.0}, b, seed)
        _log(client, exp_id, parent, {**common, "p": 0.7}, r, seed)
    for seed, r in zip(range(100, 104), unpaired, strict=True):  # seeds the baseline never ran
        _log(client, exp_id, parent, {**common, "p": 0.5}, r, seed)
    report = build_report(
        "paired", tracking_uri=client.tracking_uri, out_dir=tmp_path / "out",
        formats="md,json", log_artifacts=False,
    )  # fmt: skip
    data = json.loads(report.files["json"].read_text())
    by = {c["params"]["p"]: c for c in data["cells"]}
    assert by["0.0"]["effect_test"] is None  # the baseline
    assert (by["0.7"]["effect_test"], by["0.7"]["n_pairs"]) == ("paired", 6)
    assert by["0.7"]["arm_correlation"] == pytest.approx(np.corrcoef(row, base)[0, 1])
    ci = stats.ttest_rel(row, base).confidence_interval(0.95)
    assert by["0.7"]["effect_ci95"] == pytest.approx([ci.low, ci.high])
    assert (by["0.5"]["effect_test"], by["0.5"]["n_pairs"]) == ("welch", 0)
    assert by["0.5"]["arm_correlation"] is None
    md = report.files["md"].read_text()
    r = np.corrcoef(row, base)[0, 1]
    assert f"paired (6, r = {r:.2f})" in md and "Welch" in md


def test_rows_judged_in_rounds_report_the_rule_its_looks_and_the_adjusted_interval(tmp_path):
    """A parent run whose rounds recorded looks at 3 and 6 pairs for one row: the report
    gives that row the rule's repeated confidence interval and the verdict it reads."""
    from types import SimpleNamespace

    from sweeps.report.effects import effect_verdict
    from sweeps.report.rounds import TAG, Record, row_id
    from sweeps.report.sequential import RULE, look

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp_id = client.create_experiment("rounds", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(
        exp_id, tags={"dropattack.role": "sweep", "dropattack.paper_table": "table10"}
    ).info.run_id
    base, row = _correlated(6, 0.6, 3.9, 2.0, seed=11)
    common = {"task": "imdb-lstm", "method": "dropattack", "attack": "Embedding", "eps": 5}
    for seed, (b, r) in enumerate(zip(base, row, strict=True)):
        _log(client, exp_id, parent, {**common, "p": 0.0}, b, seed)
        _log(client, exp_id, parent, {**common, "p": 0.7}, r, seed)
        _log(client, exp_id, parent, {**common, "p": 0.3}, r - 1.0, seed)

    def report(name: str) -> tuple[dict, str]:
        out = build_report(
            "rounds", tracking_uri=client.tracking_uri, out_dir=tmp_path / name,
            formats="md,json", log_artifacts=False,
        )  # fmt: skip
        return json.loads(out.files["json"].read_text()), out.files["md"].read_text()

    before, md = report("before")
    assert before["seed_rounds"] is None and "sequential" not in md
    by = {c["params"]["p"]: c for c in before["cells"]}
    cells = SimpleNamespace(key=by["0.7"]["key"]), SimpleNamespace(key=by["0.0"]["key"])
    rid = row_id(SimpleNamespace(cell=cells[0], baseline=cells[1]))
    record = Record(max_seeds=12, step=3, looks={rid: [3, 6]}, rounds=1, stopped="budget")
    client.set_tag(parent, TAG, record.to_tag())
    data, md = report("after")
    by = {c["params"]["p"]: c for c in data["cells"]}
    seq = by["0.7"]["effect_sequential"]
    want = look(np.subtract(row, base), [3, 6], 12, 0.05 / 2)  # two rows against p = 0
    assert seq["looks"] == [3, 6] and seq["max_seeds"] == 12 and seq["rule"] == RULE
    assert seq["ci"] == pytest.approx(list(want.interval))
    assert by["0.7"]["effect_ci95"] == pytest.approx(list(want.interval))
    fixed = stats.ttest_rel(row, base).confidence_interval(0.95)
    assert want.interval[1] - want.interval[0] > fixed.high - fixed.low
    paper = by["0.7"]["paper_effect"]
    assert by["0.7"]["effect_verdict"] == effect_verdict(
        want.mean, paper, want.excludes(0), want.excludes(paper)
    )
    assert by["0.3"]["effect_sequential"] is None  # no looks recorded: the fixed-sample test
    assert data["seed_rounds"] == {
        "rule": RULE, "max_seeds": 12, "seeds_per_round": 3, "rounds": 1, "stopped": "budget",
    }  # fmt: skip
    assert "sequential: looks at 3, 6 of at most 12 seeds" in md and RULE in md
