"""The ``extension`` spec: DropAttack's groupings x K against the baseline, and what each costs.

The pass counts the dry run lists are checked against forward and backward passes counted with
hooks on the task's real model during one real training step of each configuration, built as
the trial builds it.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F

from models import tasks
from models.data import DataOptions
from sweeps import cli
from sweeps.specs.load import load_spec
from sweeps.specs.names import config_name
from sweeps.specs.space import expand_grid
from sweeps.specs.spec import parse_spec
from sweeps.trial import TrialConfig, _build_method

LINE = re.compile(r"^\s*(\d+) passes=(\S+) (.+) s(\d+)$")


def _dry_run(capsys, spec: str = "extension") -> tuple[str, dict[str, dict]]:
    """The dry run's lines by cell: each line's index and readable name are the grid trial's."""
    assert cli.main(["sweep", spec, "--dry-run"]) == 0
    head, where, *lines = capsys.readouterr().out.splitlines()
    assert where.startswith("  where: on CPU"), where  # no GPU here: resources.gpus: auto
    trials = expand_grid(load_spec(spec))
    cells: dict[str, dict] = defaultdict(lambda: {"seeds": [], "passes": set(), "variant": set()})
    for line in lines:
        m = LINE.match(line)
        assert m, line
        index, passes, name, seed = m.groups()
        trial = trials[int(index)]
        assert name == config_name(trial) and int(seed) == trial["seed"], line
        cells[trial["cell"]]["seeds"].append(int(seed))
        cells[trial["cell"]]["passes"].add(passes)
        cells[trial["cell"]]["variant"].add(trial["variant"])
    return head, dict(cells)


def _fields(cell: str) -> dict[str, str]:
    """``task=a;method=b;attack=X+Y;eps=5`` -> fields."""
    return dict(part.split("=", 1) for part in cell.split(";"))


def _counted_passes(fields: dict[str, str], data) -> tuple[int, int, int]:
    """Forward and backward passes of one real training step, and the method's group count."""
    task = tasks.get(fields["task"])
    cfg = TrialConfig(
        fields["task"],
        method=fields["method"],
        attack=tuple(fields["attack"].split("+")) if "attack" in fields else (),
        eps=float(fields["eps"]) if "eps" in fields else None,
        p=float(fields["p"]) if "p" in fields else None,
        k=int(fields["k"]) if "k" in fields else None,
        groups=fields.get("groups"),
    )
    torch.manual_seed(0)
    model = task.build_model(data)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    method, _, _ = _build_method(cfg, task, model, optimizer)
    counts = {"forward": 0, "backward": 0}

    def count(name):
        return lambda *_: counts.__setitem__(name, counts[name] + 1)

    hooks = [
        model.register_forward_hook(count("forward")),
        model.register_full_backward_pre_hook(count("backward")),
    ]
    x, y = next(iter(data.batches("train", 32, seed=0)))
    try:
        optimizer.zero_grad()
        method.backward(x, y, F.cross_entropy)
        optimizer.step()
    finally:
        for h in hooks:
            h.remove()
    return counts["forward"], counts["backward"], len(getattr(method, "groups", []))


@pytest.fixture(scope="module")
def digits():
    return tasks.get("digits-lenet5").load(DataOptions(train_size=200))


def test_dry_run_lists_groupings_by_k_and_the_passes_one_real_step_costs(capsys, digits):
    head, cells = _dry_run(capsys)
    assert head == "extension: grid, 21 trials (7 cells x 3 seeds), max val_acc"
    assert len(cells) == 7 and all(sorted(c["seeds"]) == [0, 1, 2] for c in cells.values())
    fields = {cell: _fields(cell) for cell in cells}
    baseline = [c for c, f in fields.items() if f["method"] == "standard"]
    attacks = [c for c, f in fields.items() if f["method"] == "dropattack"]
    assert len(baseline) == 1 and cells[baseline[0]]["variant"] == {"baseline"}
    grid = {(fields[c].get("groups", "paper"), int(fields[c]["k"])) for c in attacks}
    assert grid == {(g, k) for g in ("paper", "per_target", "joint") for k in (1, 3)}
    assert all(fields[c]["task"] == "digits-lenet5" for c in cells)
    assert {fields[c]["attack"] for c in attacks} == {"Input+Conv.1.w+Conv.2.w"}
    by_config = {}
    for cell, seen in cells.items():
        assert len(seen["passes"]) == 1, cell  # every seed of a cell costs the same
        listed = int(next(iter(seen["passes"])))
        forward, backward, groups = _counted_passes(fields[cell], digits)
        assert forward == backward == listed, cell
        if fields[cell]["method"] == "dropattack":
            k = int(fields[cell]["k"])
            assert listed == 1 + k * groups, cell
            by_config[(fields[cell].get("groups", "paper"), k)] = (listed, groups)
        else:
            assert listed == 1
    # the three groupings differ in cost: G = 1 (joint) < 2 (paper: input, weights) < 3 tensors
    assert {g: by_config[(g, 1)][1] for g in ("joint", "paper", "per_target")} == {
        "joint": 1,
        "paper": 2,
        "per_target": 3,
    }


def test_the_spec_runs_at_paper_scale_with_the_task_and_its_attack_set(capsys):
    """A copy of the spec on imdb-lstm: the same groupings, priced on the LSTM's tensors."""
    spec = load_spec("extension")
    data = spec.model_dump(mode="json")
    data["defaults"] = {"task": "imdb-lstm"}
    data["trials"][1]["attack"] = ["Embedding", "Lstm.ih.w", "Lstm.hh.w"]
    copy = parse_spec(data, "imdb-extension.yaml")
    trials = expand_grid(copy)
    assert len(trials) == 21 and {t["task"] for t in trials} == {"imdb-lstm"}
    passes = {(t["groups"], t["k"]): t["passes"] for t in trials if t["method"] == "dropattack"}
    assert passes == {
        ("paper", 1): 3,
        ("paper", 3): 7,
        ("per_target", 1): 4,
        ("per_target", 3): 10,
        ("joint", 1): 2,
        ("joint", 3): 4,
    }
    assert {t["passes"] for t in trials if t["method"] == "standard"} == {1}


def test_groups_is_a_readable_param_of_every_dropattack_trial():
    from sweeps.execution.trainable import trial_params

    trials = expand_grid(load_spec("extension"))
    seen = set()
    for t in trials:
        params = trial_params(t)
        if t["method"] == "dropattack":
            seen.add((params["groups"], params["k"]))
            assert params["passes"] == t["passes"]
        else:
            assert "groups" not in params and params["passes"] == 1
    assert len(seen) == 6


def test_step_is_a_readable_param_of_every_dropattack_trial():
    from sweeps.execution.trainable import trial_params

    steps = {}
    for t in expand_grid(load_spec("fidelity-table3")):
        params = trial_params(t)
        if t["method"] == "dropattack":
            steps.setdefault(params["step"], set()).add(params["k"])
        else:
            assert "step" not in params
    assert steps == {"paper": {1, 3}, "notebook": {1, 3}}
