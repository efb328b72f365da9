"""A paper table's numbers only beside its own dataset: a digits grid with
``paper_table: table10`` (the paper's IMDB table) is reported with a warning, no IMDB numbers,
and its ``method: standard`` row as the baseline; ``confirm`` then finds that baseline."""

from __future__ import annotations

from sweeps.commands.confirm import chosen_cells
from sweeps.records.collect import RunRecord, SweepRuns
from sweeps.report.analysis import analyze
from sweeps.report.build import _as_json, _summary
from sweeps.report.match import MATCHERS, fit_datasets, matcher_for


def _run(i: int, params: dict[str, str], acc: float) -> RunRecord:
    cell = ";".join(f"{k}={v}" for k, v in params.items())
    return RunRecord(
        run_id=f"r{i}",
        status="FINISHED",
        params={**params, "seed": str(i % 3)},
        metrics={"test_acc": acc, "val_acc": acc},
        tags={"dropattack.cell": cell, "dropattack.variant": ""},
    )


def _runs(task: str) -> list[RunRecord]:
    runs = []
    for i in range(3):
        runs.append(_run(i, {"task": task, "method": "standard", "attack": ""}, 0.90 + i / 100))
        for j, eps in enumerate(("1", "5")):
            params = {"task": task, "method": "dropattack", "attack": "Input", "eps": eps,
                      "p": "0.5", "k": "1"}  # fmt: skip
            runs.append(_run(10 * (j + 1) + i, params, 0.92 + i / 100))
    return runs


def _sweep(runs: list[RunRecord], table: str = "table10") -> SweepRuns:
    parent = RunRecord("p", "FINISHED", {}, {}, {"dropattack.paper_table": table})
    return SweepRuns("memory", "digits-grid", "0", parent, runs)


def test_a_digits_grid_under_table10_warns_and_keeps_its_baseline() -> None:
    analysis = analyze(_sweep(_runs("digits-lenet5")), matcher_for("table10"))
    assert len(analysis.warnings) == 1
    warning = analysis.warnings[0]
    assert "paper_table table10 is the paper's IMDB table" in warning and "digits" in warning
    assert all(c.paper is None and c.verdict is None for c in analysis.cells)
    baselines = [c for c in analysis.cells if c.is_baseline]
    assert [c.params["method"] for c in baselines] == ["standard"]
    (comparison,) = analysis.comparisons
    assert comparison.baseline is not None and comparison.difference is not None
    assert f"Warning: {warning}" in _summary(analysis)
    data = _as_json(analysis)
    assert data["warnings"] == [warning] and all(c["paper"] is None for c in data["cells"])
    chosen = chosen_cells(analysis, 1)["digits-lenet5"]  # confirm no longer refuses
    assert chosen[-1].params["method"] == "standard"


def test_the_papers_own_dataset_gets_its_numbers_and_no_warning() -> None:
    analysis = analyze(_sweep(_runs("imdb-lstm")), matcher_for("table10"))
    assert analysis.warnings == []
    assert {c.paper is not None for c in analysis.cells if not c.is_baseline} == {True}
    assert [c.params["method"] for c in analysis.cells if c.is_baseline] == ["standard"]


def test_mixed_datasets_keep_the_table_for_its_own() -> None:
    matcher, warning = fit_datasets(MATCHERS["table3"], ["imdb", "digits"])
    assert "ran on digits" in warning and matcher.name == "table3"
    digits = _run(0, {"task": "digits-lenet5", "method": "standard", "train_size": "100"}, 0.9)
    imdb = _run(1, {"task": "imdb-lstm", "method": "standard", "train_size": "100"}, 0.6)
    assert matcher.paper_value(digits) is None and matcher.paper_value(imdb) is not None
    assert matcher.is_baseline(digits) and matcher.is_baseline(imdb)
    assert fit_datasets(MATCHERS["generic"], ["digits"]) == (MATCHERS["generic"], "")


def test_an_accuracy_interval_stays_within_0_and_100() -> None:
    """Two seeds far apart near the top: Student's t interval would pass 100 %."""
    params = {"task": "digits-lenet5", "method": "standard", "attack": ""}
    runs = [_run(0, params, 0.86), _run(1, params, 0.995)]
    (cell,) = analyze(_sweep(runs, ""), matcher_for("")).cells
    lo, hi = cell.ci95
    assert hi == 100.0 and 0.0 < lo < cell.mean
    half = cell.mean - lo
    assert half > 100.0 - cell.mean  # the unclipped upper end would be above 100
    (val,) = analyze(_sweep(runs, ""), matcher_for(""), metric="val_acc").cells
    assert val.bounds == (0.0, 100.0)
