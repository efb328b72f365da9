"""``dropattack seeds``: the seeds each row's verdict needs, and what adding them costs.

A store written with known values holds three Table 10 rows, each against its own p = 0
baseline: one decided, one that more seeds would decide, one that needs more than --max-seeds.
The seeds needed are checked by simulating paired t tests with scipy here; a tiny digits sweep
checks the command end to end on real trials.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import textwrap

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from scipy import stats

from sweeps import cli
from sweeps.report.rounds import TAG, Record
from sweeps.report.sequential import look
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


def test_run_flags_without_run_are_one_line(store, capsys):
    assert cli.main(["seeds", "seeds-known", "--mlflow-uri", store, "--budget-hours", "2"]) == 2
    assert capsys.readouterr().err.strip().endswith("--budget-hours: only with --run")


def test_an_unknown_experiment_is_one_line(store, capsys):
    assert cli.main(["seeds", "nope", "--mlflow-uri", store]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope" in err and "\n" not in err


GRID = """
name: {name}
paper_table: table10
defaults: {{task: digits-lenet5, method: dropattack, attack: Input, epochs: 1, train_size: 200}}
space: {{eps: [5, 1000], p: [0, 0.7]}}
seeds: {seeds}
resources: {{cpus: 1}}
keep_checkpoint: false
system_metrics: false
"""


def _trial_runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], "tags.`dropattack.role` = 'trial'")


def _seeds_by_arm(runs: list) -> dict[tuple[str, str], set[int]]:
    """(eps, p) -> seeds; the p = 0 baseline is one arm whatever its eps."""
    out: dict[tuple[str, str], set[int]] = {}
    for r in runs:
        p = r.data.params["p"]
        arm = ("", p) if p == "0" else (r.data.params["eps"], p)
        out.setdefault(arm, set()).add(int(r.data.params["seed"]))
    return out


def test_dry_run_of_seeds_until_decided_lists_the_initial_seeds_and_the_rounds(tmp_path, capsys):
    path = tmp_path / "until.yaml"
    path.write_text(textwrap.dedent(GRID.format(name="until", seeds="{initial: 4, max: 6}")))
    assert cli.main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert " s3" in out and " s4" not in out  # seeds 0..3 only
    assert "then seeds until decided: rounds of 4 more for the undecided rows" in out
    assert "at most 6 per arm" in out


def test_a_digits_sweep_end_to_end(ray_local, tmp_path, capsys):
    """A digits sweep with `seeds: {initial: 4, max: 6, until: decided}`: seeds go only to the
    rows the rule leaves undecided after the 4 seeds, and their baseline, in rounds that stop;
    `seeds --json` reads every round; `seeds --run` resumes a round cut short without
    training anything twice."""
    path = tmp_path / "seeds-digits.yaml"
    text = GRID.format(name="seeds-digits", seeds="{initial: 4, max: 6, until: decided}")
    path.write_text(textwrap.dedent(text))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = ["--mlflow-uri", uri, "--runs-dir", str(tmp_path)]
    assert cli.main(["sweep", str(path), *common, "--no-live", "--plan-budget", "0"]) == 0
    out = capsys.readouterr().out
    client = MlflowClient(uri)
    parent = client.get_experiment_by_name("seeds-digits")
    (sweep,) = client.search_runs([parent.experiment_id], "tags.`dropattack.role` = 'sweep'")
    assert sweep.data.metrics["trials_done"] == 12  # the sweep's summary, not a round's
    record = Record.from_tag(sweep.data.tags[TAG])
    assert record.max_seeds == 6 and record.step == 4 and f"stopped: {record.stopped}" in out
    runs = _trial_runs(client, "seeds-digits")
    arms = _seeds_by_arm(runs)
    acc = {
        (r.data.params["eps"], r.data.params["p"], int(r.data.params["seed"])): r.data.metrics[
            "test_acc"
        ]
        for r in runs
    }
    base = {s: v for (e, p, s), v in acc.items() if p == "0"}
    added = arms[("", "0")] - {0, 1, 2, 3}
    diffs = {}
    for eps in ("5", "1000"):
        mine = sorted(arms[(eps, "0.7")])
        diffs[eps] = [100 * (acc[(eps, "0.7", s)] - base[s]) for s in mine]
        (line,) = [x for x in out.splitlines() if f"eps={eps} p=0.7" in x and "looks at" in x]
        looks = [int(n) for n in re.search(r"looks at ([\d, ]+) pairs", line)[1].split(", ")]
        assert looks in record.looks.values()
        # each row against p = 0 at its eps: a family of one, level 0.05
        first = look(diffs[eps][:4], [4], 6, 0.05)
        assert looks[0] == 4
        if first.excludes(0):  # decided at the sweep's seeds: no seeds added, no further look
            assert mine == [0, 1, 2, 3] and looks == [4], (eps, looks)
        else:  # undecided: the round's seeds, with the baseline, up to the maximum
            assert mine == [0, 1, 2, 3, 4, 5] and looks == [4, 6], (eps, looks)
            assert added == {4, 5}
            last = look(diffs[eps], [4, 6], 6, 0.05)
            assert f"[{last.interval[0]:+.2f}, {last.interval[1]:+.2f}]" in line
    assert added <= {4, 5}
    assert record.rounds == (1 if added else 0)

    # `seeds --json` reads every round: each row's pairs and paired effect
    assert cli.main(["seeds", "seeds-digits", *common, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["rows"]) == 2 and all(set(r) == JSON_ROW for r in data["rows"])
    for eps in ("5", "1000"):
        (row,) = [r for r in data["rows"] if f"eps={eps} " in r["row"]]
        assert row["n"] == len(diffs[eps]) and row["effect_test"] == "paired"
        assert row["effect"] == pytest.approx(float(np.mean(diffs[eps])), abs=1e-9)
    assert math.isfinite(data["total_device_hours"])

    # the rounds stopped: `seeds --run` adds nothing
    argv = ["seeds", "seeds-digits", *common, "--run", "--no-live"]
    assert cli.main(argv) == 0
    assert len(_trial_runs(client, "seeds-digits")) == len(runs)
    assert "stopped: " in capsys.readouterr().out
    if added:  # a driver killed during the round, before Tune saved it: the rerun trains nothing
        (home,) = tmp_path.joinpath("ray").glob("seeds-digits.seeds-*")
        state = json.loads((home / "rounds.json").read_text())
        state["rounds"][-1]["status"] = "running"
        (home / "rounds.json").write_text(json.dumps(state))
        shutil.rmtree(home / "round-1")
        assert cli.main(argv) == 0
        assert len(_trial_runs(client, "seeds-digits")) == len(runs)
        assert json.loads((home / "rounds.json").read_text())["rounds"][-1]["status"] == "judged"
        again = Record.from_tag(client.get_run(sweep.info.run_id).data.tags[TAG])
        assert again.looks == record.looks
    # the declared maximum cannot change once looks are taken
    assert cli.main([*argv, "--max-seeds", "8"]) == 2
    assert "declared 6 seeds per arm at most" in capsys.readouterr().err


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
