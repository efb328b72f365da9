"""``dropattack seeds``: the seeds each row's verdict needs, and what adding them costs.

A store written with known values holds three Table 10 rows, each against its own p = 0
baseline: one decided, one that more seeds would decide, one that needs more than --max-seeds.
The seeds needed are checked by simulating paired t tests with scipy here; a tiny digits sweep
checks the command end to end on real trials.
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
from sweeps.specs.space import cell_key

JSON_ROW = {
    "row",
    "n",
    "effect",
    "ci95",
    "effect_test",
    "verdict",
    "seeds_needed",
    "trials_to_add",
    "device_hours",
}
SECONDS = 30.0  # every trial's recorded train_seconds
BASE = {
    5.0: [88.0, 88.5, 87.6, 88.2, 88.1],
    7.0: [88.0, 84.0, 91.0, 86.0, 89.0],
    1.0: [70.0, 95.0, 80.0, 100.0, 60.0],
}
DIFFS = {  # per seed, row minus baseline
    5.0: [2.1, 2.0, 2.3, 1.9, 2.2],  # clear: reproduced (paper +2.06)
    7.0: [3.0, -1.0, 4.0, 0.5, 2.5],  # not shown at 5 seeds; paper +2.24
    1.0: [15.0, -20.0, 10.0, -12.0, 8.0],  # a spread of 15 against a paper effect of +2.06
}
PAPER = {5.0: 90.18 - 88.12, 7.0: 90.36 - 88.12, 1.0: 90.18 - 88.12}


def _log(client, exp_id, parent, params, acc, seed):
    run = client.create_run(
        exp_id,
        tags={
            "mlflow.parentRunId": parent,
            "dropattack.role": "trial",
            "dropattack.paper_table": "table10",
            "dropattack.cell": ";".join(f"{k}={v}" for k, v in params.items()),
        },
    )
    client.log_batch(
        run.info.run_id,
        metrics=[
            Metric("test_acc", acc / 100, 0, 0),
            Metric("val_acc", acc / 100, 0, 0),
            Metric("train_seconds", SECONDS, 0, 0),
        ],
        params=[Param(k, str(v)) for k, v in {**params, "seed": seed}.items()],
    )
    client.set_terminated(run.info.run_id, "FINISHED")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    exp_id = client.create_experiment("seeds-known", artifact_location=(root / "a").as_uri())
    parent = client.create_run(
        exp_id,
        tags={"dropattack.role": "sweep", "dropattack.paper_table": "table10"},
    ).info.run_id
    client.log_param(parent, "cpus_per_trial", "2")
    common = {"task": "imdb-lstm", "method": "dropattack", "attack": "Embedding"}
    for eps, base in BASE.items():
        for seed, (b, d) in enumerate(zip(base, DIFFS[eps], strict=True)):
            _log(client, exp_id, parent, {**common, "eps": eps, "p": 0.0}, b, seed)
            _log(client, exp_id, parent, {**common, "eps": eps, "p": 0.7}, b + d, seed)
    return client.tracking_uri


def _seeds_json(uri, capsys, *extra) -> dict:
    assert cli.main(["seeds", "seeds-known", "--mlflow-uri", uri, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _power(n: int, delta: float, sd: float, alpha: float, rng) -> float:
    """Simulated power of scipy's paired t test with n pairs."""
    d = rng.normal(delta, sd, (40_000, n))
    return float((stats.ttest_1samp(d, 0.0, axis=1).pvalue < alpha).mean())


def test_json_has_every_key_and_each_rows_numbers(store, capsys):
    data = _seeds_json(store, capsys)
    assert set(data) == {"rows", "total_trials_to_add", "total_device_hours"}
    by = {}
    for row in data["rows"]:
        assert set(row) == JSON_ROW
        by[next(e for e in BASE if f"eps={e};" in row["row"])] = row
    assert set(by) == set(BASE)
    for eps, row in by.items():
        d = np.asarray(DIFFS[eps])
        assert (row["n"], row["effect_test"]) == (5, "paired")
        assert row["effect"] == pytest.approx(d.mean())
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
        assert row["ci95"] == pytest.approx([ci.low, ci.high])
    assert by[5.0]["verdict"] == "reproduced" and by[5.0]["trials_to_add"] == 0
    assert by[7.0]["verdict"] == "not shown"
    assert by[1.0]["verdict"] == "not shown"
    # eps 7: the seeds that give a paired t test 80% power against the paper's effect
    rng = np.random.default_rng(5)
    sd = float(np.std(DIFFS[7.0], ddof=1))
    need = by[7.0]["seeds_needed"]["against_zero"]
    assert 5 < need <= 20
    assert _power(need, PAPER[7.0], sd, 0.05, rng) >= 0.8 - 0.01
    assert _power(need - 1, PAPER[7.0], sd, 0.05, rng) < 0.8 + 0.01
    gap = float(np.mean(DIFFS[7.0])) - PAPER[7.0]  # measured minus paper's: 0.44 points
    z = (stats.norm.isf(0.025) + stats.norm.isf(0.2)) * sd / abs(gap)
    assert by[7.0]["seeds_needed"]["against_paper"] >= z**2  # at least the normal bound
    # both arms add the missing seeds, priced at 30 s on 2 CPUs per trial
    assert by[7.0]["trials_to_add"] == 2 * (need - 5)
    assert by[7.0]["device_hours"] == pytest.approx(2 * (need - 5) * SECONDS * 2 / 3600)
    # eps 1: needs far more than 20 seeds per arm: nothing added
    far = by[1.0]["seeds_needed"]["against_zero"]
    assert far > 20 and by[1.0]["trials_to_add"] == 0 and by[1.0]["device_hours"] == 0
    assert data["total_trials_to_add"] == by[7.0]["trials_to_add"]
    assert data["total_device_hours"] == pytest.approx(by[7.0]["device_hours"])


def test_higher_power_and_a_larger_cap_ask_for_more(store, capsys):
    low = _seeds_json(store, capsys, "--power", "0.5")
    high = _seeds_json(store, capsys, "--power", "0.95", "--max-seeds", "1000")
    need = {r["row"]: r["seeds_needed"]["against_zero"] for r in low["rows"]}
    for r in high["rows"]:
        assert r["seeds_needed"]["against_zero"] > need[r["row"]]
    # with room for it, the noisy eps 1 row is priced as well
    assert high["total_trials_to_add"] > low["total_trials_to_add"]
    (noisy,) = [r for r in high["rows"] if "eps=1.0;" in r["row"]]
    assert noisy["trials_to_add"] == 2 * (noisy["seeds_needed"]["against_zero"] - 5)


def test_text_says_which_rows_are_decided_and_which_cannot_be(store, capsys):
    assert cli.main(["seeds", "seeds-known", "--mlflow-uri", store]) == 0
    out = capsys.readouterr().out
    assert "decided at n = 5: reproduced" in out
    assert "cannot be decided within --max-seeds 20: the paper's effect (+2.06) is 0.13" in out
    assert "total: " in out and "device-hours" in out


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["--power", "1"], "--power: expected a power between 0 and 1, got '1'"),
        (["--max-seeds", "1"], "--max-seeds: expected an integer >= 2, got 1"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(store, capsys, argv, want):
    with pytest.raises(SystemExit) as e:
        cli.main(["seeds", "seeds-known", "--mlflow-uri", store, *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert want in err and err.count("\n") == 1


def test_an_unknown_experiment_is_one_line(store, capsys):
    assert cli.main(["seeds", "nope", "--mlflow-uri", store]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope" in err and "\n" not in err


GRID = """
name: {name}
paper_table: table10
defaults: {{task: digits-lenet5, method: dropattack, attack: Input, epochs: 1, train_size: 300}}
space: {{eps: [5], p: [0, 0.7]}}
seeds: [0, 1, 2]
resources: {{cpus: 1}}
keep_checkpoint: false
"""


def test_a_digits_sweep_end_to_end(ray_local, tmp_path, capsys):
    path = tmp_path / "seeds-digits.yaml"
    path.write_text(textwrap.dedent(GRID.format(name="seeds-digits")))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = ["--mlflow-uri", uri, "--runs-dir", str(tmp_path)]
    assert cli.main(["sweep", str(path), *common, "--no-live"]) == 0
    capsys.readouterr()
    assert cli.main(["seeds", "seeds-digits", *common, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (row,) = data["rows"]
    assert set(row) == JSON_ROW and row["n"] == 3
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("seeds-digits")
    runs = client.search_runs([exp.experiment_id], "tags.`dropattack.role` = 'trial'")
    acc = {(r.data.params["p"], r.data.params["seed"]): r.data.metrics["test_acc"] for r in runs}
    d = [100 * (acc[("0.7", s)] - acc[("0", s)]) for s in ("0", "1", "2")]
    assert row["effect"] == pytest.approx(float(np.mean(d)), abs=1e-9)
    assert row["effect_test"] == "paired"
    need = row["seeds_needed"]["against_zero"]
    if row["verdict"] == "not shown" and need is not None and need <= 20:
        seconds = [r.data.metrics["train_seconds"] for r in runs]
        by_arm = {
            p: np.mean([r.data.metrics["train_seconds"] for r in runs if r.data.params["p"] == p])
            for p in ("0", "0.7")
        }
        assert row["trials_to_add"] == 2 * (need - 3)
        want = (need - 3) * (by_arm["0"] + by_arm["0.7"]) / 3600
        assert row["device_hours"] == pytest.approx(want) and min(seconds) > 0
    else:
        assert row["trials_to_add"] == 0
    assert data["total_trials_to_add"] == row["trials_to_add"]
    assert math.isfinite(data["total_device_hours"])


def test_arms_without_recorded_seconds_are_priced_by_calibration(tmp_path, capsys):
    """The row's trials recorded no time: the plan's calibration prices them (digits)."""
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp_id = client.create_experiment("seeds-cal", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(
        exp_id, tags={"dropattack.role": "sweep", "dropattack.paper_table": "table10"}
    ).info.run_id
    common = {"task": "digits-lenet5", "method": "dropattack", "eps": 5.0, "train_size": 200,
              "epochs": 1}  # fmt: skip

    def trial(p: float, acc: float, seed: int, timed: bool) -> None:
        params = {**common, "attack": "Input", "p": p}
        cell = cell_key({**common, "attack": ["Input"], "p": p})
        run = client.create_run(
            exp_id,
            tags={
                "mlflow.parentRunId": parent,
                "dropattack.role": "trial",
                "dropattack.paper_table": "table10",
                "dropattack.cell": cell,
            },
        )
        metrics = [Metric("test_acc", acc / 100, 0, 0), Metric("val_acc", 0.9, 0, 0)]
        metrics += [Metric("train_seconds", SECONDS, 0, 0)] if timed else []
        client.log_batch(
            run.info.run_id,
            metrics=metrics,
            params=[Param(k, str(v)) for k, v in {**params, "seed": seed}.items()],
        )
        client.set_terminated(run.info.run_id, "FINISHED")

    for seed, (b, d) in enumerate(zip(BASE[7.0], DIFFS[7.0], strict=True)):
        trial(0.0, b, seed, timed=True)
        trial(0.7, b + d, seed, timed=False)
    argv = ["seeds", "seeds-cal", "--mlflow-uri", client.tracking_uri, "--budget", "5"]
    assert cli.main([*argv, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    added = row["trials_to_add"] // 2
    # digits is not Table 10's dataset: no paper effect, so no verdict against it; the row is
    # still undecided against zero, so seeds are added
    assert row["verdict"] is None and added > 0
    recorded = added * SECONDS / 3600  # the baseline's part, at its recorded 30 s
    assert row["device_hours"] > recorded  # the row's part, calibrated, is on top
    assert cli.main(argv) == 0
    assert "(1 arms priced by calibration)" in capsys.readouterr().out
