"""The paper's effects against the measured effects on real MLflow stores.

Stores written with known accuracies cover every effect verdict (appendix Tables 5 and 7,
with a negative paper effect and a row without a test), Table 10's p = 0 baseline (one per ε,
and an ε without one) and Table 3's per-size baselines. A real sweep at tiny scale (digits,
tagged table10) checks the effects and the scale the report reads from real trial runs.
Every expected number is computed here with scipy and a Holm written out below.
"""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from scipy import stats

from sweeps import cli
from sweeps.execution.driver import SweepOptions, run_sweep
from sweeps.report import build_report
from sweeps.report.effects import effect_verdict
from sweeps.report.tables import layout_tables
from sweeps.specs.load import load_spec

ALPHA = 0.05


def _holm(pvalues: list[float]) -> list[float]:
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    out, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        out[i] = running
    return out


def _test(a: list[float], b: list[float], shift: float = 0.0):
    """The report's test of ``a - b == shift`` for arms logged on seeds 0, 1, ...: paired t
    on the seeds both ran when there are at least 3, else Welch's."""
    k = min(len(a), len(b))
    if k >= 3:
        return stats.ttest_rel(np.asarray(a[:k]) - shift, b[:k])
    return stats.ttest_ind(np.asarray(a) - shift, b, equal_var=False)


def _effect_p(a: list[float], b: list[float], shift: float = 0.0) -> float:
    return float(_test(a, b, shift).pvalue)


def _effect_ci(a: list[float], b: list[float]) -> tuple[float, float]:
    ci = _test(a, b).confidence_interval(0.95)
    return float(ci.low), float(ci.high)


# --- the verdict's definitions, edges included -------------------------------------------


@pytest.mark.parametrize(
    ("effect", "paper", "zero", "excl_paper", "want"),
    [
        (2.0, 1.5, True, False, "reproduced"),  # the paper's effect inside the CI
        (5.0, 1.5, True, True, "reproduced"),  # beyond it, in the paper's direction
        (0.5, 1.5, True, True, "smaller"),  # between 0 and the paper's effect
        (0.4, 1.5, False, True, "not shown"),  # the CI covers 0
        (-1.0, 1.5, True, True, "opposite"),  # excludes 0 on the other side
        (-2.0, -1.5, True, False, "reproduced"),  # a negative paper effect, reproduced
        (-0.5, -1.5, True, True, "smaller"),
        (1.0, -1.5, True, True, "opposite"),  # measured gain where the paper lost
        (1.0, 0.0, True, True, "reproduced"),  # paper 0: a claimed gain of 0, met
        (-1.0, 0.0, True, True, "opposite"),
        (0.1, 0.0, False, False, "not shown"),
    ],
)
def test_effect_verdict_follows_its_definitions(effect, paper, zero, excl_paper, want):
    assert effect_verdict(effect, paper, zero, excl_paper) == want


# --- a store written with known values: appendix Tables 5 and 7 ----------------------------

BASE7 = [86.4, 86.5, 86.6, 86.45, 86.55]
# (attack, eps, p) -> (accuracies in %, expected verdict); paper effects from Table 7
TABLE7 = {
    ("Embedding", 5, 0.5): ([87.7, 88.2, 88.1, 87.8, 88.2], "reproduced"),  # paper +1.48
    ("Embedding", 5, 0.7): ([91.0, 91.2, 91.1, 91.05, 91.15], "reproduced"),  # +1.47, beyond
    ("Embedding;Gru.ih.w", 5, 0.7): ([87.0, 87.05, 87.1, 86.95, 87.0], "smaller"),  # +1.50
    ("Gru.ih.w", 5, 0.5): ([85.0, 88.0, 86.0, 87.5, 86.2], "not shown"),  # +0.59
    ("Fc.w", 5, 0.5): ([85.0, 85.1, 84.9, 85.05, 84.95], "opposite"),  # +0.37
    ("Gru.hh.w", 5, 0.5): ([90.0], None),  # one run: no test
}
BASE5 = [88.0, 88.2, 88.1]
TABLE5 = {("Lstm.hh.w", 5, 0.5): ([87.0, 87.1, 87.05], "smaller")}  # paper -1.48
PAPER7 = {
    ("Embedding", 5, 0.5): 93.35,
    ("Embedding", 5, 0.7): 93.34,
    ("Embedding;Gru.ih.w", 5, 0.7): 93.37,
    ("Gru.ih.w", 5, 0.5): 92.46,
    ("Fc.w", 5, 0.5): 92.24,
    ("Gru.hh.w", 5, 0.5): 92.25,
}


def _log(client, exp_id, parent, params, acc, *, table="tables5to9", seed=0):
    cell = ";".join(f"{k}={v}" for k, v in params.items() if k not in ("val_size", "test_size"))
    run = client.create_run(
        exp_id,
        tags={
            "mlflow.parentRunId": parent,
            "dropattack.role": "trial",
            "dropattack.paper_table": table,
            "dropattack.cell": cell,
        },
    )
    client.log_batch(
        run.info.run_id,
        metrics=[Metric("test_acc", acc / 100, 0, 0), Metric("val_acc", acc / 100, 0, 0)],
        params=[Param(k, str(v)) for k, v in {**params, "seed": seed}.items()],
    )
    client.set_terminated(run.info.run_id, "FINISHED")


def _parent(client, name, table, root):
    exp_id = client.create_experiment(name, artifact_location=(root / name).as_uri())
    parent = client.create_run(
        exp_id, tags={"dropattack.role": "sweep", "dropattack.paper_table": table}
    )
    return exp_id, parent.info.run_id


AGNEWS = {
    "task": "agnews-bigru",
    "val_size": 783,
    "test_size": 595,
    "data_source": "shared/data/agnews/val_ag1.csv",
    "train_size": 2000,
    "epochs": 2,
    "embedding_init": "glove",
}
IMDB_OLD = {"task": "imdb-lstm", "train_size": 40000, "epochs": 10}  # an older store: no sizes


@pytest.fixture(scope="module")
def targets_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("effects-targets")
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    exp_id, parent = _parent(client, "targets", "tables5to9", root)
    for seed, acc in enumerate(BASE7):
        _log(client, exp_id, parent, {**AGNEWS, "method": "standard"}, acc, seed=seed)
    for (attack, eps, p), (accs, _) in TABLE7.items():
        for seed, acc in enumerate(accs):
            params = {**AGNEWS, "method": "dropattack", "attack": attack, "eps": eps, "p": p}
            _log(client, exp_id, parent, params, acc, seed=seed)
    for seed, acc in enumerate(BASE5):
        _log(client, exp_id, parent, {**IMDB_OLD, "method": "standard"}, acc, seed=seed)
    for (attack, eps, p), (accs, _) in TABLE5.items():
        for seed, acc in enumerate(accs):
            params = {**IMDB_OLD, "method": "dropattack", "attack": attack, "eps": eps, "p": p}
            _log(client, exp_id, parent, params, acc, seed=seed)
    out = root / "report"
    report = build_report(
        "targets", tracking_uri=client.tracking_uri, out_dir=out, formats="md,html,json",
        log_artifacts=False,
    )  # fmt: skip
    return report, json.loads(report.files["json"].read_text())


def _cell(data: dict, **want) -> dict:
    (cell,) = [
        c for c in data["cells"] if all(c["params"].get(k) == str(v) for k, v in want.items())
    ]
    return cell


def test_every_verdict_from_known_values_with_holm_over_the_rows_of_one_baseline(
    targets_report,
):
    _, data = targets_report
    tested = {k: v for k, v in TABLE7.items() if len(v[0]) > 1}
    p0 = {k: _effect_p(accs, BASE7) for k, (accs, _) in tested.items()}
    paper_effects = {k: round(PAPER7[k] - 91.87, 6) for k in TABLE7}
    pp = {k: _effect_p(accs, BASE7, paper_effects[k]) for k, (accs, _) in tested.items()}
    # the one-run row is in the family (its p counts as 1), so m = 6
    keys = list(TABLE7)
    holm0 = dict(zip(keys, _holm([p0.get(k, 1.0) for k in keys]), strict=True))
    holmp = dict(zip(keys, _holm([pp.get(k, 1.0) for k in keys]), strict=True))
    for key, (accs, verdict) in TABLE7.items():
        attack, eps, p = key
        cell = _cell(data, task="agnews-bigru", attack=attack, p=p)
        assert cell["effect"] == pytest.approx(np.mean(accs) - np.mean(BASE7), abs=1e-9)
        assert cell["paper_effect"] == pytest.approx(paper_effects[key], abs=1e-9)
        assert cell["effect_verdict"] == verdict, key
        assert cell["effect_family"] == 6
        if len(accs) > 1:
            assert cell["effect_ci95"] == pytest.approx(_effect_ci(accs, BASE7), abs=1e-9)
            assert cell["effect_p_holm"] == pytest.approx(holm0[key], rel=1e-9)
            assert cell["paper_effect_p_holm"] == pytest.approx(holmp[key], rel=1e-9)
        else:
            assert cell["effect_ci95"] is None and cell["effect_p_holm"] is None
    # the negative paper effect of Table 5 (attacking Lstm.hh.w cost the paper 1.48 points)
    lstm = _cell(data, task="imdb-lstm", method="dropattack")
    assert lstm["paper_effect"] == pytest.approx(86.64 - 88.12)
    assert lstm["effect_verdict"] == "smaller" and lstm["effect_family"] == 1
    assert lstm["effect_ci95"] == pytest.approx(_effect_ci(TABLE5[("Lstm.hh.w", 5, 0.5)][0], BASE5))
    # baselines carry no effect
    base = _cell(data, task="agnews-bigru", method="standard")
    assert base["effect"] is None and base["effect_verdict"] is None


def test_summary_counts_per_paper_table_and_scale_per_task(targets_report):
    report, data = targets_report
    summary = data["effect_summary"]
    assert list(summary) == ["table5", "table7"]
    assert summary["table7"] == {
        "reproduced": 2, "smaller": 1, "not shown": 1, "opposite": 1, "no verdict": 1,
        "rows": 6, "alpha": 0.05, "adjustment": "holm",
        "scale": {"agnews-bigru": {"train": 2000, "paper_train": 110000, "different_scale": True}},
    }  # fmt: skip
    assert summary["table5"]["smaller"] == 1 and summary["table5"]["rows"] == 1
    scales = {t["task"]: t["scale"] for t in data["tasks"]}
    agnews = scales["agnews-bigru"]
    assert {k: agnews[k] for k in ("train", "paper_train", "val", "test", "source")} == {
        "train": 2000,
        "paper_train": 110_000,
        "val": 783,
        "test": 595,
        "source": "shared/data/agnews/val_ag1.csv",
    }
    assert agnews["epochs"] == ["2"] and agnews["vectors"] == "random"
    assert agnews["embedding"] == "glove" and agnews["paper_embedding"] == "GloVe"
    assert scales["imdb-lstm"]["embedding"] == "random"  # no embedding_init: random
    md = report.files["md"].read_text()
    assert "glove (GloVe)" in md and "random (GloVe)" in md
    # an older store without split sizes: train from train_size, val/test unknown
    imdb = scales["imdb-lstm"]
    assert (imdb["train"], imdb["paper_train"], imdb["val"], imdb["test"]) == (
        40000,
        40000,
        None,
        None,
    )
    assert imdb["source"] is None and imdb["different_scale"] is False
    # absolute verdicts: 'different scale' on the 2,000-example AG News runs only
    verdicts = {
        (c["params"]["task"], c["params"].get("attack")): c["verdict"] for c in data["cells"]
    }
    assert "not reproduced" not in {v for (t, _), v in verdicts.items() if t == "agnews-bigru"}
    assert verdicts[("agnews-bigru", "Fc.w")] == "different scale"
    assert verdicts[("imdb-lstm", "Lstm.hh.w")] == "not reproduced"  # at the paper's size
    md = report.files["md"].read_text()
    head = md[: md.index("## Sweep")]
    assert "## Reproduction summary" in head
    assert (
        "Table 7: of 6 effects the paper reports, 2 reproduced, 1 smaller, 1 not shown, "
        "1 opposite, 1 without a test (fewer than 2 runs) — at agnews-bigru: 2,000 training "
        "examples (1.8% of the paper's 110,000), 2 epochs; n = 1–5 runs per configuration."
    ) in head
    assert "Holm-adjusted p-value" in head
    assert "| agnews-bigru | agnews | shared/data/agnews/val_ag1.csv | 2,000 (110,000) |" in md


def test_layout_tables_put_the_effect_beside_the_absolute_number(targets_report):
    report, _ = targets_report
    tables = {t.title.split(":")[0]: t for t in layout_tables(report.analysis)}
    table7 = tables["Table 7"]
    assert table7.header[1:3] == [
        "Accuracy: measured (paper)",
        "Effect vs BiGRU: measured [95% CI] (paper): verdict",
    ]
    rows = {r[0][0].text: r for r in table7.rows}
    assert rows["BiGRU"][2][0].text == "baseline"
    emb = rows["BiGRU + DropAttack[Embedding] (ε=5, p=0.5)"][2][0].text
    accs = TABLE7[("Embedding", 5, 0.5)][0]
    lo, hi = _effect_ci(accs, BASE7)
    assert (
        emb
        == f"{np.mean(accs) - np.mean(BASE7):+.2f} [{lo:.2f}, {hi:.2f}] (paper +1.48): reproduced"
    )
    assert rows["BiGRU + DropAttack[Gru.hh.w] (ε=5, p=0.5)"][2][0].text.endswith(
        "(paper +0.38): no verdict (a t-test needs at least 2 runs on each side)"
    )
    assert rows["BiGRU + DropAttack[Fc.w] (ε=5, p=0.5)"][4][0].text == "different scale"


# --- Table 10: each (eps, p) against p = 0 -------------------------------------------------

TABLE10 = {  # (eps, p) -> accuracies in %
    (5.0, 0.0): [88.0, 88.3, 88.1],
    (7.0, 0.0): [87.0, 87.2, 87.1],
    (5.0, 0.7): [90.2, 90.4, 90.3],  # paper 90.18 - 88.12 = +2.06
    (7.0, 0.7): [87.1, 87.0, 87.2],  # paper +2.24; against eps 7's own p = 0: not shown
    (9.0, 0.7): [89.9, 90.1, 90.0],  # no p = 0 at eps 9: another eps's p = 0 stands in
}


@pytest.fixture(scope="module")
def table10_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("effects-table10")
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    exp_id, parent = _parent(client, "t10", "table10", root)
    for (eps, p), accs in TABLE10.items():
        for seed, acc in enumerate(accs):
            params = {"task": "imdb-lstm", "method": "dropattack", "attack": "Embedding",
                      "eps": eps, "p": p, "train_size": 40000, "test_size": 5000}  # fmt: skip
            _log(client, exp_id, parent, params, acc, table="table10", seed=seed)
    report = build_report(
        "t10", tracking_uri=client.tracking_uri, out_dir=root / "out", formats="md,json",
        log_artifacts=False,
    )  # fmt: skip
    return report, json.loads(report.files["json"].read_text())


def test_table10_cells_are_read_against_the_p0_row_of_their_eps(table10_report):
    report, data = table10_report
    by = {(float(c["params"]["eps"]), float(c["params"]["p"])): c for c in data["cells"]}
    for key in ((5.0, 0.0), (7.0, 0.0)):
        assert by[key]["effect"] is None  # the baselines
    own = {(5.0, 0.7): (5.0, 0.0), (7.0, 0.7): (7.0, 0.0)}
    for key, base in own.items():
        assert by[key]["effect_baseline"] == by[base]["key"]
        assert by[key]["effect"] == pytest.approx(np.mean(TABLE10[key]) - np.mean(TABLE10[base]))
        family = sum(c["effect_baseline"] == by[base]["key"] for c in data["cells"])
        assert by[key]["effect_family"] == family  # the rows against that p = 0 cell
        assert by[key]["effect_ci95"] == pytest.approx(_effect_ci(TABLE10[key], TABLE10[base]))
    assert by[(5.0, 0.7)]["paper_effect"] == pytest.approx(90.18 - 88.12)
    assert by[(7.0, 0.7)]["paper_effect"] == pytest.approx(90.36 - 88.12)
    assert by[(9.0, 0.7)]["paper_effect"] == pytest.approx(90.14 - 88.12)
    assert by[(7.0, 0.7)]["effect_verdict"] == "not shown"
    # eps 9 has no p = 0 cell: the most alike p = 0 cell (first of equal ones) stands in
    assert by[(9.0, 0.7)]["effect_baseline"] in {by[(5.0, 0.0)]["key"], by[(7.0, 0.0)]["key"]}
    # at the paper's size the absolute verdict keeps its name
    assert "different scale" not in {c["verdict"] for c in data["cells"]}
    _, effects = layout_tables(report.analysis)
    assert effects.title == "Table 10, effects: each (ε, p) against p = 0"
    text = {
        (r[0][0].text, effects.header[j]): r[j][0].text
        for r in effects.rows
        for j in range(1, len(r))
    }
    assert text[("p = 0", "ε = 5")] == "baseline"
    assert text[("p = 0.7", "ε = 7")].endswith("(paper +2.24): not shown")
    assert {"effect-heatmap.png", "figure4-effect.png"} <= set(report.files)


# --- Table 3: DropAttack-3 against standard training at each size --------------------------

TABLE3 = {  # (size, method) -> accuracies; the 500 row has no standard runs
    (100, "standard"): [60.0, 61.0, 62.0],
    (100, "dropattack"): [64.0, 66.0, 65.0],  # paper +2.20: the CI holds it
    (1000, "standard"): [78.0, 78.2, 78.1],
    (1000, "dropattack"): [78.1, 78.3, 78.0],  # paper +2.40: not shown
    (500, "dropattack"): [76.0, 76.1, 76.2],
}


def test_table3_each_size_against_its_own_standard_row(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp_id, parent = _parent(client, "t3", "table3", tmp_path)
    for (size, method), accs in TABLE3.items():
        for seed, acc in enumerate(accs):
            params = {"task": "imdb-lstm", "method": method, "train_size": size,
                      "k": 3, "eps": 5, "p": 0.7}  # fmt: skip
            _log(client, exp_id, parent, params, acc, table="table3", seed=seed)
    report = build_report(
        "t3", tracking_uri=client.tracking_uri, out_dir=tmp_path / "out", formats="md,json",
        log_artifacts=False,
    )  # fmt: skip
    data = json.loads(report.files["json"].read_text())
    by = {(int(c["params"]["train_size"]), c["params"]["method"]): c for c in data["cells"]}
    for size, paper_effect, verdict in ((100, 2.20, "reproduced"), (1000, 2.40, "not shown")):
        row, base = by[(size, "dropattack")], by[(size, "standard")]
        assert row["effect_baseline"] == base["key"] and row["effect_family"] == 1
        want = TABLE3[(size, "dropattack")], TABLE3[(size, "standard")]
        assert row["effect_ci95"] == pytest.approx(_effect_ci(*want))
        assert row["paper_effect"] == pytest.approx(paper_effect)
        assert row["effect_verdict"] == verdict
    # a size without its standard row is not measured against another size's
    assert by[(500, "dropattack")]["effect"] is None
    # Table 3's paper training size is the row's own: 100 examples is the paper's scale
    (task,) = data["tasks"]
    assert task["scale"]["paper_train"] == [100, 500, 1000]
    assert task["scale"]["train"] == [100, 500, 1000] and not task["scale"]["different_scale"]
    assert data["effect_summary"]["table3"]["reproduced"] == 1
    (table,) = layout_tables(report.analysis)
    assert table.rows[-1][0][0].text == "Effect, 95% CI (paper): verdict"
    assert table.rows[-1][table.header.index("100")][0].text.endswith("(paper +2.20): reproduced")


# --- a real sweep at tiny scale ------------------------------------------------------------

GRID10 = """
name: {name}
paper_table: table10
defaults: {{task: digits-lenet5, method: dropattack, attack: Input, epochs: 1, train_size: 400}}
space: {{eps: [5], p: [0, 0.7]}}
seeds: [0, 1]
resources: {{cpus: 1}}
keep_checkpoint: false
"""


def test_a_real_sweep_reports_its_effects_and_the_scale_it_ran_at(ray_local, tmp_path):
    """digits under ``paper_table: table10`` (the paper's IMDB table): the effect against
    p = 0 is measured, with a warning and without the paper's IMDB numbers beside it."""
    path = tmp_path / "t10-digits.yaml"
    path.write_text(textwrap.dedent(GRID10.format(name="t10-digits")))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_sweep(load_spec(path), SweepOptions(mlflow_uri=uri, runs_dir=tmp_path, live=False))
    assert result.counts["done"] == 4
    client = MlflowClient(uri)
    runs = client.search_runs(
        [result.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'",
    )
    params = runs[0].data.params
    # what the trial recorded about its data
    assert params["train_size"] == "400"
    assert int(params["val_size"]) > 0 and int(params["test_size"]) > 0
    assert params["data_source"] and params["data_split"]  # digits: scikit-learn's, no root
    accs = {p: [] for p in ("0", "0.7")}
    for run in runs:
        accs[run.data.params["p"]].append(100 * run.data.metrics["test_acc"])
    report = build_report(
        result.experiment, tracking_uri=uri, out_dir=tmp_path / "out",
        formats="md,json", log_artifacts=False,
    )  # fmt: skip
    data = json.loads(report.files["json"].read_text())
    (row,) = [c for c in data["cells"] if c["params"]["p"] == "0.7"]
    assert row["effect"] == pytest.approx(np.mean(accs["0.7"]) - np.mean(accs["0"]), abs=1e-9)
    if min(np.std(accs["0.7"]), np.std(accs["0"])) > 0:
        lo, hi = _effect_ci(accs["0.7"], accs["0"])
        assert row["effect_ci95"] == pytest.approx([lo, hi], abs=1e-9)
    (warning,) = data["warnings"]
    assert "the paper's IMDB table" in warning and "digits" in warning
    assert all(c["paper"] is None and c["paper_effect"] is None for c in data["cells"])
    (task,) = data["tasks"]
    scale = task["scale"]
    assert scale["train"] == 400 and scale["paper_train"] is None  # digits: not a paper dataset
    assert (scale["val"], scale["test"]) == (int(params["val_size"]), int(params["test_size"]))
    assert scale["source"] == params["data_source"] and scale["different_scale"] is True
    assert all(math.isfinite(c["mean"]) for c in data["cells"])


def test_cli_report_prints_the_reproduction_summary(targets_report, tmp_path, capsys):
    report, _ = targets_report
    uri = report.analysis.sweep.tracking_uri
    argv = ["report", "targets", "--mlflow-uri", uri, "--out", str(tmp_path), "--no-log"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "  Table 7: of 6 effects the paper reports, 2 reproduced, 1 smaller" in out
    assert "  Table 5: of 1 effect the paper reports, 0 reproduced, 1 smaller" in out
