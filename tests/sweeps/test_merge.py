"""Configurations that train identically train once per seed: DropAttack at p = 0 or eps = 0.

The merge is checked against real training (digits, one short epoch each): every merged
configuration reaches the same weights bit for bit, and a perturbing one does not. The
report's side reads a merged run once per cell it stands for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from sweeps.records.collect import RunRecord, with_stand_ins
from sweeps.records.tracking import TAG
from sweeps.specs.load import load_spec
from sweeps.specs.merge import idle, merge_identical, stood_for_cells
from sweeps.specs.space import expand_grid
from sweeps.trial import TrialConfig, run_trial


def _spec(tmp_path: Path, **data) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"name": "m", **data}))
    return path


def test_table10_trains_its_p0_row_once_per_seed() -> None:
    spec = load_spec("table10")
    merged, full = expand_grid(spec), expand_grid(spec, merge=False)
    assert (len(full), len(merged)) == (245, 215)
    assert stood_for_cells(merged) == {t["cell"] for t in full}  # every cell still filled
    kept = [t for t in merged if t.get("stands_for")]
    assert len(kept) == 5 and {t["p"] for t in kept} == {0.0}
    assert all(len(t["stands_for"]) == 6 for t in kept)
    assert {s["eps"] for s in kept[0]["stands_for"]} == {0.1, 1.0, 3.0, 5.0, 7.0, 9.0}
    assert [t["index"] for t in merged] == list(range(215))


def test_only_idle_dropattack_merges(tmp_path: Path) -> None:
    spec = load_spec(
        _spec(
            tmp_path,
            defaults={"task": "digits-lenet5", "epochs": 1},
            trials=[{"method": "standard"}, {"method": "dropattack"}, {"method": "fgm"}],
            space={"eps": [0, 1, 5], "p": [0, 0.5]},
            seeds=[0, 1],
        )
    )
    trials = expand_grid(spec)
    full = expand_grid(spec, merge=False)
    # dropattack: (eps 0 or p 0) = 4 of 6 cells train alike; fgm at eps = 0 is not merged
    assert len(full) - len(trials) == 3 * 2
    assert stood_for_cells(trials) == {t["cell"] for t in full}
    assert not any(t.get("stands_for") for t in trials if t["method"] != "dropattack")
    assert idle({"method": "dropattack", "eps": 0.0, "p": 0.5})
    assert not idle({"method": "dropattack", "eps": 1.0, "p": 0.5})
    assert not idle({"method": "fgm", "eps": 0.0})
    # different seeds, tasks or targets are other trainings
    again = merge_identical(expand_grid(spec, merge=False))
    assert [t["key"] for t in again] == [t["key"] for t in trials]


def _weights(**fields) -> dict[str, torch.Tensor]:
    cfg = TrialConfig(
        task="digits-lenet5", method="dropattack", attack=("Input", "Conv.1.w"),
        epochs=1, train_size=96, batch_size=32, seed=3, **fields,
    )  # fmt: skip
    torch.set_num_threads(1)
    return run_trial(cfg).best_state


def test_merged_configurations_train_to_the_same_weights() -> None:
    first = _weights(eps=1.0, p=0.0, k=1)
    for other in ({"eps": 5.0, "p": 0.0, "k": 3}, {"eps": 0.0, "p": 0.5, "groups": "joint"}):
        got = _weights(**other)
        assert got.keys() == first.keys()
        assert all(torch.equal(got[n], first[n]) for n in first), other
    perturbed = _weights(eps=5.0, p=0.5, k=1)
    assert not all(torch.equal(perturbed[n], first[n]) for n in first)


def test_a_merged_run_fills_every_cell_it_stands_for() -> None:
    stands_for = [
        {"cell": "c-eps5", "key": "c-eps5;seed=0", "name": "n5", "variant": "v5",
         "eps": 5.0, "p": 0.0, "k": 3, "groups": None},
    ]  # fmt: skip
    run = RunRecord(
        run_id="r1",
        status="FINISHED",
        params={"eps": "1", "p": "0", "k": "1", "seed": "0"},
        metrics={"val_acc": 0.9},
        tags={TAG["cell"]: "c-eps1", TAG["stands_for"]: json.dumps(stands_for)},
    )
    runs = with_stand_ins([run])
    assert [r.cell for r in runs] == ["c-eps1", "c-eps5"]
    copy = runs[1]
    assert copy.params == {"eps": "5", "p": "0", "k": "3", "seed": "0"}
    assert copy.metrics == run.metrics and copy.run_id == "r1"
    assert copy.name == "n5" and copy.tags[TAG["variant"]] == "v5"
    assert copy.tags["dropattack.trained_as"] == "c-eps1"
    assert TAG["stands_for"] not in copy.tags


@pytest.mark.parametrize("raw", ["", "not json", "{}", "[1, 2]"])
def test_a_broken_stands_for_tag_adds_nothing(raw: str) -> None:
    run = RunRecord("r", "FINISHED", {}, {}, {TAG["stands_for"]: raw})
    assert run.stand_ins() == []


def test_a_merged_sweep_reports_every_cell(ray_local, tmp_path: Path) -> None:
    """A real sweep of 3 trainings stands for 4 cells; the report has all 4, each with its
    own eps and the merged training's numbers."""
    from sweeps import cli

    path = _spec(
        tmp_path,
        defaults={"task": "digits-lenet5", "method": "dropattack", "epochs": 1,
                  "train_size": 64, "batch_size": 32},
        space={"eps": [1, 5], "p": [0, 0.5]},
        resources={"cpus": 1, "gpus": "auto"},
        keep_checkpoint=False,
        system_metrics=False,
    )  # fmt: skip
    common = ["--mlflow-uri", f"sqlite:///{tmp_path}/mlflow.db", "--runs-dir", str(tmp_path)]
    assert cli.main(["sweep", str(path), *common, "--no-live", "--plan-budget", "0"]) == 0
    out = tmp_path / "report"
    assert cli.main(["report", "m", *common, "--out", str(out), "--format", "json"]) == 0
    report = json.loads(next(out.glob("*.json")).read_text())
    cells = {c["key"]: c for c in report["cells"]}
    assert len(cells) == 4 and all(c["n"] == 1 for c in cells.values())
    p0 = [c for c in cells.values() if c["params"].get("p") in ("0", 0, 0.0)]
    assert len(p0) == 2 and p0[0]["run_ids"] == p0[1]["run_ids"]
    assert p0[0]["values"] == p0[1]["values"]
    assert {str(c["params"]["eps"]) for c in p0} == {"1", "5"}


def test_the_report_summary_says_which_runs_are_shared() -> None:
    from sweeps.records.collect import SweepRuns
    from sweeps.report.analysis import analyze
    from sweeps.report.build import _summary
    from sweeps.report.match import matcher_for

    stands_for = [{"cell": "c-eps5", "name": "n5", "eps": 5.0}]
    runs = with_stand_ins(
        RunRecord(f"r{seed}", "FINISHED", {"task": "digits-lenet5", "method": "dropattack",
                  "eps": "1", "p": "0", "seed": str(seed)}, {"test_acc": 0.9, "val_acc": 0.9},
                  {TAG["cell"]: "c-eps1", TAG["stands_for"]: json.dumps(stands_for)})
        for seed in range(2)
    )  # fmt: skip
    parent = RunRecord("p", "FINISHED", {}, {}, {})
    analysis = analyze(SweepRuns("memory", "m", "0", parent, runs), matcher_for(""))
    assert len(analysis.cells) == 2 and all(c.n == 2 for c in analysis.cells)
    summary = _summary(analysis)
    assert any(line.startswith("Merged trainings: 2 of the trial runs") for line in summary)
