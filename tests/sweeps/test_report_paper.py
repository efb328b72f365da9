"""The report's copy of the paper's numbers, its matching of cells to them, and its layouts.

The transcription is checked against ../shared/paper/*.csv (skipped with a reason when absent).
Layouts are checked on analyses of in-memory runs shaped like the MLflow contract.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

import pytest

from sweeps.records.collect import RunRecord, SweepRuns
from sweeps.report import paper
from sweeps.report.aggregate import pareto, verdict
from sweeps.report.analysis import analyze
from sweeps.report.effects import measure
from sweeps.report.match import MATCHERS, dataset_of, matcher_for
from sweeps.report.tables import layout_tables, top_keys

SHARED = Path(__file__).resolve().parents[3] / "shared" / "paper"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"the paper's CSV tables are not at {SHARED}"
)


def _csv(name: str) -> list[dict[str, str]]:
    with open(SHARED / name, newline="") as f:
        return list(csv.DictReader(f))


@needs_shared
def test_table10_matches_the_csv():
    rows = _csv("table10_eps_p.csv")
    seen = {}
    for row in rows:
        p = float(row.pop("p"))
        for col, value in row.items():
            seen[(float(col.removeprefix("eps_")), p)] = float(value)
    assert {k: v.acc for k, v in paper.TABLE10.items()} == seen
    assert len(seen) == 49


@needs_shared
def test_table2_and_table4_match_the_csv():
    for name, table, row_key in (
        ("table2_methods.csv", paper.TABLE2, lambda r: r["method"]),
        ("table4_k.csv", paper.TABLE4, lambda r: int(r["k"])),
    ):
        rows = _csv(name)
        expected = {}
        for r in rows:
            for d in paper.DATASETS:
                f1 = float(r["pheme_f1"]) if d == "pheme" else None
                expected[(row_key(r), d)] = paper.PaperValue(float(r[f"{d}_acc"]), f1)
        assert table == expected, name


@needs_shared
def test_table3_matches_the_csv():
    expected = {}
    for r in _csv("table3_train_size.csv"):
        size = int(r["train_size"])
        expected[(size, "standard")] = paper.PaperValue(float(r["standard_acc"]))
        expected[(size, "dropattack3")] = paper.PaperValue(float(r["dropattack3_acc"]))
    assert expected == paper.TABLE3


@needs_shared
def test_tables5to9_match_the_csv_row_for_row():
    rows = _csv("tables5to9_targets.csv")
    assert len(rows) == len(paper.TARGET_ROWS)
    for r, mine in zip(rows, paper.TARGET_ROWS, strict=True):
        assert mine.table == int(r["table"]) and mine.dataset == r["dataset"]
        assert mine.model == r["model"]
        assert ";".join(mine.targets) == r["targets"]
        assert mine.eps == (float(r["eps"]) if r["eps"] else None)
        assert mine.p == (float(r["p"]) if r["p"] else None)
        assert mine.value == paper.PaperValue(float(r["acc"]), float(r["f1"]) if r["f1"] else None)


def test_target_rows_have_unique_keys_per_table():
    for n, rows in paper.TARGET_TABLES.items():
        keys = [r.key for r in rows]
        assert len(keys) == len(set(keys)), n


def test_paper_top_ten_of_table10_includes_the_ties():
    values = sorted((v.acc for v in paper.TABLE10.values()), reverse=True)
    tenth = values[9]
    assert tenth == 90.18
    expected = {k for k, v in paper.TABLE10.items() if v.acc >= tenth}
    assert expected == paper.TABLE10_TOP and len(expected) == 11
    assert (7.0, 0.7) in paper.TABLE10_TOP and (0.01, 0.7) not in paper.TABLE10_TOP  # 90.17


def test_top_keys_takes_ties_and_short_lists():
    assert top_keys({"a": 3, "b": 2, "c": 2, "d": 1}, 2) == {"a", "b", "c"}
    assert top_keys({"a": 1}, 10) == {"a"}
    assert top_keys({}, 10) == set()


def test_verdict_rules():
    # |paper - mean| <= 2 std
    v = verdict(90.0, [89.0, 90.0, 91.0])  # mean 90, std 1
    assert v.reproduced is True and v.diff == pytest.approx(0.0)
    v = verdict(93.5, [89.0, 90.0, 91.0])  # diff 3.5 > 2 std but inside the t interval (2.48)?
    half = 4.302652729911275 / math.sqrt(3)
    assert v.reproduced is (abs(3.5) <= half) and v.ci == pytest.approx((90 - half, 90 + half))
    v = verdict(95.0, [89.0, 90.0, 91.0])
    assert v.reproduced is False and v.diff == pytest.approx(5.0) and v.text == "not reproduced"
    v = verdict(90.0, [88.0])
    assert v.reproduced is None and v.text == "n=1, no verdict" and v.diff == 2.0
    # many runs: the CI is narrow, 2 std decides
    values = [90.0 + 0.1 * ((i % 5) - 2) for i in range(20)]
    sd = statistics.stdev(values)
    assert verdict(90.0 + 1.9 * sd, values).reproduced is True
    assert verdict(90.0 + 2.1 * sd, values).reproduced is False


def _run(i, params, acc, *, variant="", seconds=1.0, f1=None, status="FINISHED"):
    metrics = {"test_acc": acc, "val_acc": acc, "seconds": seconds}
    if f1 is not None:
        metrics["test_f1"] = f1
    cell = ";".join(f"{k}={v}" for k, v in params.items())
    return RunRecord(
        run_id=f"r{i}",
        status=status,
        params={**params, "seed": str(i % 3)},
        metrics=metrics,
        tags={"dropattack.cell": cell, "dropattack.variant": variant},
    )


def _sweep(table, runs):
    parent = RunRecord("p", "FINISHED", {}, {}, {"dropattack.paper_table": table})
    return SweepRuns("memory", "exp", "0", parent, runs)


def test_dataset_of_task_names():
    assert dataset_of({"task": "imdb-lstm"}) == "imdb"
    assert dataset_of({"task": "cifar10-vgg16"}) == "cifar10"
    assert dataset_of({"task": "agnews_bigru"}) == "agnews"
    assert dataset_of({"task": "x", "dataset": "pheme"}) == "pheme"


def test_table2_layout_methods_by_datasets_with_pheme_acc_and_f1():
    runs = []
    for i, acc in enumerate([0.85, 0.86, 0.87]):
        runs.append(
            _run(
                i,
                {"task": "pheme-bilstm", "method": "standard", "attack": ""},
                acc,
                variant="baseline",
                f1=acc - 0.05,
            )
        )
        runs.append(
            _run(
                10 + i,
                {"task": "pheme-bilstm", "method": "dropattack", "attack": "Embedding;Lstm.hh.w"},
                acc + 0.01,
                f1=acc - 0.04,
            )
        )
        runs.append(
            _run(
                20 + i,
                {"task": "imdb-lstm", "method": "fgm", "attack": "Embedding"},
                0.89,
                variant="fgm",
            )
        )
    a = analyze(_sweep("table2", runs), matcher_for("table2"))
    (table,) = layout_tables(a)
    # an effect column beside each measured dataset
    assert table.header == [
        "", "IMDB", "IMDB: effect", "PHEME (acc/F1)", "PHEME (acc/F1): effect",
        "AGnews", "MNIST", "CIFAR-10",
    ]  # fmt: skip
    assert [r[0][0].text for r in table.rows] == [
        paper.TABLE2_LABELS[v] for v in paper.TABLE2_VARIANTS
    ]
    rows = {r[0][0].text: r for r in table.rows}
    base = "".join(s.text for s in rows["Baseline"][3])
    assert base == "86.00 ± 1.00/81.00 ± 1.00 (84.08/78.99) ✓"
    ih = "".join(s.text for s in rows["Baseline + DropAttack-(I-H)"][3])  # derived variant
    assert ih.startswith("87.00 ± 1.00/82.00 ± 1.00 (87.15/81.31)")
    # with the effects measured, the column beside PHEME holds DropAttack's gain on accuracy
    a.effects = measure(a.cells, a.matcher, a.metric)
    (table,) = layout_tables(a)
    rows = {r[0][0].text: r for r in table.rows}
    ih_effect = rows["Baseline + DropAttack-(I-H)"][4][0].text
    assert ih_effect.startswith("+1.00 [") and ih_effect.endswith("(paper +3.07): not shown")
    assert rows["Baseline"][4][0].text == "baseline"
    fgm = "".join(s.text for s in rows["Baseline + FGM"][1])
    # zero spread: only an exact match would reproduce; the task's only configuration: selected
    assert fgm == "89.00 ± 0.00 (89.26) ✗ ◆"
    cells = {c.key: c for c in a.cells}
    pheme = next(c for c in cells.values() if c.variant == "baseline")
    assert pheme.f1_verdict.reproduced is True and pheme.paper_f1 == 78.99
    tasks = {c.task: c for c in a.comparisons}
    assert tasks["pheme-bilstm"].baseline.variant == "baseline"
    assert tasks["imdb-lstm"].note == "no baseline configuration was measured"


def test_table3_layout_sizes_with_improvement_row():
    runs = []
    for size, std_acc, da_acc in ((500, 0.74, 0.76), (1000, 0.78, 0.81)):
        for s in range(2):
            runs.append(
                _run(
                    size + s,
                    {"task": "imdb-lstm", "method": "standard", "train_size": str(size)},
                    std_acc + 0.001 * s,
                )
            )
            runs.append(
                _run(
                    size + 10 + s,
                    {
                        "task": "imdb-lstm",
                        "method": "dropattack",
                        "train_size": str(size),
                        "k": "3",
                    },
                    da_acc,
                )
            )
    a = analyze(_sweep("table3", runs), matcher_for("table3"))
    (table,) = layout_tables(a)
    assert table.header == ["Method", *(f"{s:,}" for s in paper.TABLE3_SIZES)]
    improvement = ["".join(s.text for s in e) for e in table.rows[2]]
    assert improvement[0] == "Improvement ↑"
    assert (
        improvement[2] == f"{76 - 74.05:.2f} (2.08)"
        and improvement[3] == f"{81 - 78.05:.2f} (2.40)"
    )
    assert improvement[1] == "– (2.20)"


def test_table4_layout_k_by_dataset():
    runs = [
        _run(i, {"task": "mnist-lenet5", "method": "dropattack", "k": str(k)}, 0.99)
        for i, k in enumerate([1, 1, 2, 2, 7, 7])
    ]
    a = analyze(_sweep("table4", runs), matcher_for("table4"))
    (table,) = layout_tables(a)
    assert [r[0][0].text for r in table.rows] == [f"DropAttack-{k}" for k in (1, 2, 3, 4, 5, 7)]
    mnist = table.header.index("MNIST")
    assert "".join(s.text for s in table.rows[1][mnist]).startswith("99.00 ± 0.00 (99.24)")
    assert "".join(s.text for s in table.rows[5][mnist]) == "99.00 ± 0.00 (–)"


def test_targets_layout_matches_attack_sets_in_any_order_and_lists_extra_rows():
    runs = []
    for i in range(2):
        runs.append(_run(i, {"task": "mnist-lenet5", "method": "standard", "attack": ""}, 0.9895))
        # the paper writes "Input;Conv.1.w"; order must not matter
        runs.append(
            _run(
                10 + i,
                {
                    "task": "mnist-lenet5",
                    "method": "dropattack",
                    "attack": "Conv.1.w;Input",
                    "eps": "5",
                    "p": "0.5",
                },
                0.9927 + 0.0002 * i,
            )
        )
        runs.append(
            _run(
                20 + i,
                {
                    "task": "mnist-lenet5",
                    "method": "dropattack",
                    "attack": "Conv.3.w",
                    "eps": "5",
                    "p": "0.5",
                },
                0.98,
            )
        )
    a = analyze(_sweep("table8", runs), matcher_for("table8"))
    (table,) = layout_tables(a)
    assert table.title.startswith("Table 8") and len(table.rows) == 14 + 1
    rows = {r[0][0].text: r for r in table.rows}
    hit = rows["LeNet-5 + DropAttack[Input, Conv.1.w] (ε=5, p=0.5)"]
    assert "".join(s.text for s in hit[1]).startswith("99.28 ± 0.01 (99.27)")
    assert hit[4][0].text == "reproduced"
    assert "".join(s.text for s in rows["LeNet-5"][1]).startswith("98.95 ± 0.00 (98.95)")
    extra = rows["LeNet-5 + DropAttack[Conv.3.w] (ε=5, p=0.5)"]
    assert "".join(s.text for s in extra[1]) == "98.00 ± 0.00 (–)"


def test_unknown_or_search_tables_get_the_generic_layout():
    for tag in ("search", "quickstart", "", "figure2", "table99"):
        assert matcher_for(tag) is MATCHERS["generic"]
    runs = [
        _run(i, {"task": "digits-lenet5", "method": m}, 0.9 + 0.01 * i)
        for i, m in enumerate(["standard", "standard", "sam", "sam"])
    ]
    a = analyze(_sweep("search", runs), matcher_for("search"))
    assert layout_tables(a) == []
    (c,) = a.comparisons
    assert c.best.params["method"] == "sam" and c.baseline.params["method"] == "standard"
    assert c.t is not None and all(cell.verdict is None for cell in a.cells)


def test_pareto_keeps_only_non_dominated_points():
    runs = [
        _run(0, {"c": "a"}, 0.90, seconds=10),
        _run(1, {"c": "b"}, 0.92, seconds=20),
        _run(2, {"c": "c"}, 0.91, seconds=30),
        _run(3, {"c": "d"}, 0.90, seconds=5),
        _run(4, {"c": "e"}, 0.95, seconds=50),
    ]
    a = analyze(_sweep("search", runs), matcher_for("search"))
    front = [c.params["c"] for c in pareto(a.cells)]
    assert front == ["d", "b", "e"]  # cheapest first; a and c are dominated


def test_missing_metric_and_failed_runs_are_kept_aside():
    runs = [_run(0, {"c": "a"}, 0.9), _run(1, {"c": "a"}, 0.8, status="FAILED")]
    runs.append(RunRecord("r9", "FINISHED", {"c": "b"}, {"seconds": 1.0}, {}))
    a = analyze(_sweep("search", runs), matcher_for("search"))
    assert [r.run_id for r in a.failed] == ["r1"] and [r.run_id for r in a.missing_metric] == ["r9"]
    assert [c.n for c in a.cells] == [1]
    with pytest.raises(ValueError, match="metric 'val_f1'.*seconds, test_acc"):
        analyze(_sweep("search", runs), matcher_for("search"), metric="val_f1")
