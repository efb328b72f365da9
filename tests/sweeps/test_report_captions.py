"""The effect figures' captions name the baseline the effects were measured against."""

from __future__ import annotations

from sweeps.records.collect import RunRecord, SweepRuns
from sweeps.report.analysis import analyze
from sweeps.report.effect_figures import effect_figures
from sweeps.report.effects import measure
from sweeps.report.match import matcher_for


def _run(i: int, params: dict[str, str], acc: float, name: str) -> RunRecord:
    cell = ";".join(f"{k}={v}" for k, v in params.items())
    return RunRecord(
        run_id=f"r{i}",
        status="FINISHED",
        params={**params, "seed": str(i % 3)},
        metrics={"test_acc": acc + (i % 3) / 200, "val_acc": acc},
        tags={"dropattack.cell": cell, "dropattack.name": name},
    )


def _captions(table: str, baseline: dict[str, str]) -> list[str]:
    runs, n = [], 0
    for _ in range(3):
        runs.append(_run(n := n + 1, {"task": "digits-lenet5", **baseline}, 0.90, "base"))
        for eps in ("1", "5"):
            for p in ("0.3", "0.7"):
                params = {"task": "digits-lenet5", "method": "dropattack", "attack": "Input",
                          "eps": eps, "p": p, "k": "1"}  # fmt: skip
                runs.append(_run(n := n + 1, params, 0.92, f"da {eps} {p}"))
    parent = RunRecord("p", "FINISHED", {}, {}, {"dropattack.paper_table": table})
    analysis = analyze(SweepRuns("memory", "q", "0", parent, runs), matcher_for(table))
    analysis.effects = measure(analysis.cells, analysis.matcher, analysis.metric)
    return [f.caption for f in effect_figures(analysis).figures]


def test_quickstart_heatmap_names_its_standard_baseline() -> None:
    heatmap, figure4 = _captions("quickstart", {"method": "standard", "attack": ""})
    assert heatmap.startswith("The ε × p grid read against base (digits-lenet5)")
    assert "p = 0" not in heatmap and "Table 10" not in heatmap
    assert "paper's effect" not in heatmap and "paper's effects" not in figure4
    assert figure4.startswith("Figure 4 read against base (digits-lenet5)")


def test_a_p0_baseline_is_read_against_p0() -> None:
    baseline = {"method": "dropattack", "attack": "Input", "eps": "1", "p": "0", "k": "1"}
    heatmap, _ = _captions("quickstart", baseline)
    assert heatmap.startswith("The ε × p grid read against p = 0 (digits-lenet5)")
    assert "(the p = 0 cell)" in heatmap
