"""The extension study's report section: its statistics against scipy, and a real sweep of the
shipped ``extension`` spec (shrunk: fewer examples, 1 epoch, 2 seeds) through Ray and a real
MLflow server, with every number of the section recomputed from the runs MLflow returns."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image
from scipy import stats

from sweeps.execution.driver import SweepOptions, run_sweep
from sweeps.records.tracking import TAG
from sweeps.report import build_report
from sweeps.report.aggregate import CellStats
from sweeps.report.extension import difference, study_rows
from sweeps.specs.load import load_spec
from sweeps.specs.spec import parse_spec

GROUPS = {"paper": 2, "per_target": 3, "joint": 1}  # groups of Input;Conv.1.w;Conv.2.w


def _cell(key, values, seconds, **params) -> CellStats:
    return CellStats(
        key=key,
        params={"task": "t", **{k: str(v) for k, v in params.items()}},
        variant="",
        values=list(values),
        seeds=[str(i) for i in range(len(values))],
        run_ids=[f"{key}-{i}" for i in range(len(values))],
        seconds=list(seconds),
    )


def test_difference_is_welchs_interval():
    a = _cell("a", [91.0, 93.5, 92.2, 90.1], [1, 1, 1, 1])
    b = _cell("b", [94.0, 95.5, 93.1], [1, 1, 1])
    for level in (0.95, 0.9875):
        d = difference(a, b, level)
        ref = stats.ttest_ind(a.values, b.values, equal_var=False).confidence_interval(level)
        assert d.diff == pytest.approx(a.mean - b.mean)
        assert d.ci == pytest.approx((ref.low, ref.high))
    assert difference(_cell("c", [90.0], [1]), b).ci is None


def test_study_rows_compare_each_grouping_with_the_papers_at_its_k_adjusted_for_the_count():
    rng = np.random.default_rng(0)
    cells = [_cell("base", rng.normal(95, 1, 3), [1, 1, 1], method="standard", passes=1)]
    cells[0].is_baseline = True
    for k in (1, 3):
        for g, n_groups in GROUPS.items():
            cells.append(
                _cell(
                    f"{g}{k}",
                    rng.normal(93, 1.5, 3),
                    [1 + k * n_groups] * 3,  # seconds proportional to passes
                    method="dropattack",
                    groups=g,
                    k=k,
                    passes=1 + k * n_groups,
                )
            )
    rows, compared = study_rows(cells)
    assert compared == 4 + 6  # per_target and joint against paper at K = 1, 3; six vs baseline
    assert [r.label for r in rows][-1] == "baseline"
    by = {(r.groups, r.k): r for r in rows}
    for (g, k), r in by.items():
        if k is None:
            continue
        paper = next(c for c in cells if c.key == f"paper{k}")
        if g == "paper":
            assert r.vs_paper is None
        else:
            ref = stats.ttest_ind(r.cell.values, paper.values, equal_var=False)
            assert r.vs_paper.ci == pytest.approx(
                tuple(ref.confidence_interval(1 - 0.05 / 4)), rel=1e-9
            )
        base = stats.ttest_ind(r.cell.values, cells[0].values, equal_var=False)
        assert r.vs_baseline.ci == pytest.approx(
            tuple(base.confidence_interval(1 - 0.05 / 6)), rel=1e-9
        )
        assert r.passes == 1 + k * GROUPS[g]
    # Pareto on (mean seconds, mean): recomputed by brute force
    points = {r.cell.key: (statistics.fmean(r.cell.seconds), r.cell.mean) for r in rows}
    front = {
        key
        for key, (s, m) in points.items()
        if not any((s2 <= s and m2 >= m and (s2 < s or m2 > m)) for s2, m2 in points.values())
    }
    assert {r.cell.key for r in rows if r.pareto} == front


def _fields_of(params: dict) -> tuple:
    return (params.get("groups", "-"), params.get("k", "-"))


@pytest.fixture(scope="module")
def extension_sweep(ray_local, mlflow_server, tmp_path_factory):
    """The shipped spec with fewer examples, 1 epoch and 2 seeds: 14 real trials."""
    folder = tmp_path_factory.mktemp("extension")
    data = load_spec("extension").model_dump(mode="json")
    data["name"] = "extension-test"
    data["defaults"] = {**data["defaults"], "epochs": 1, "train_size": 300}
    data["seeds"] = [0, 1]
    spec = parse_spec(data, "extension-test.yaml")
    result = run_sweep(
        spec, SweepOptions(mlflow_uri=mlflow_server.uri, runs_dir=folder, live=False)
    )
    client = MlflowClient(mlflow_server.uri)
    runs = client.search_runs(
        [result.experiment_id],
        filter_string=f"tags.`{TAG['parent']}` = '{result.parent_run_id}'",
        max_results=1000,
    )
    report = build_report(
        "extension-test",
        tracking_uri=mlflow_server.uri,
        out_dir=folder / "report",
        formats=("md", "html"),
    )
    return result, runs, report


def _section_rows(md: str) -> list[list[str]]:
    part = md.split("### digits-lenet5: groupings of DropAttack's passes", 1)[1]
    table = part.split("\n\n", 2)[1]
    lines = [line for line in table.splitlines() if line.startswith("|")][2:]
    cells = [[c.strip().strip("*") for c in line.strip("|").split("|")] for line in lines]
    return [[re.sub(r"\\([!-/:-@[-`{-~])", r"\1", c) for c in row] for row in cells]  # as shown


def test_extension_sweep_runs_and_its_report_shows_each_grouping(extension_sweep):
    result, runs, report = extension_sweep
    assert result.counts["done"] == 14 and result.counts["failed"] == 0
    by_config: dict[tuple, list] = defaultdict(list)
    for run in runs:
        assert run.info.status == "FINISHED"
        p = run.data.params
        if p["method"] == "dropattack":
            assert p["groups"] in GROUPS  # readable as a param, also for the default grouping
            assert p["passes"] == str(1 + int(p["k"]) * GROUPS[p["groups"]])
        by_config[_fields_of(p)].append(run)
    assert len(by_config) == 7 and all(len(v) == 2 for v in by_config.values())
    md = report.files["md"].read_text()
    assert "## Extension: is the cheaper grouping as good?" in md
    assert md.index("## Extension") < md.index("## All configurations")
    rows = _section_rows(md)
    assert len(rows) == 7
    for row in rows:
        grouping, k, passes, n, mean_std, ci = row[:6]
        key = ("-", "-") if grouping.startswith("baseline") else (grouping, k)
        members = by_config[key]
        values = [100 * r.data.metrics["test_acc"] for r in members]
        mean, std = statistics.fmean(values), statistics.stdev(values)
        assert mean_std == f"{mean:.2f} ± {std:.2f}"
        assert n == "2" and passes == members[0].data.params["passes"]
        half = stats.t.ppf(0.975, 1) * std / np.sqrt(2)
        assert ci == f"[{mean - half:.2f}, {mean + half:.2f}]"
        seconds = statistics.fmean(r.data.metrics["train_seconds"] for r in members)
        assert row[8] == f"{seconds:.1f}"
    answer = md.split("### The answer", 1)[1]
    assert len(re.findall(r"K=\d: (joint|per_target) \(\d+ passes/step", answer)) == 4
    png = report.files["extension.png"]
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[1] > 800 and image.std() > 10
    logged = {
        a.path
        for a in MlflowClient(report.analysis.sweep.tracking_uri).list_artifacts(
            result.parent_run_id, "report"
        )
    }
    assert "report/extension.png" in logged
    html = report.files["html"].read_text()
    assert "<figure id='extension'>" in html
