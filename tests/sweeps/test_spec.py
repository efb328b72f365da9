"""Spec validation: shipped specs load; bad specs fail naming file, field and allowed values."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest

from sweeps.specs.load import load_spec
from sweeps.specs.space import expand_grid
from sweeps.specs.spec import SPEC_DIR, SpecError, spec_names

SHARED = Path(__file__).resolve().parents[3] / "shared" / "paper"

GOOD = """
name: tiny
defaults: {task: digits-lenet5, method: dropattack, attack: [Input], epochs: 1}
space: {eps: [1, 5], p: [0.5]}
seeds: [0, 1]
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value)


EXPECTED_TRIALS = {
    "quickstart": 10,
    "table2": 275,
    "table3": 80,
    "table4": 125,
    "table5": 75,
    "table6": 70,
    "table7": 70,
    "table8": 70,
    "table9": 70,
    "table10": 215,  # 245 cells x seeds, less the p = 0 row's 30 identical trainings
    "figure2": 6,
    "extension": 21,
}


def test_every_paper_experiment_has_a_spec():
    assert set(spec_names()) == set(EXPECTED_TRIALS) | {"search", "fidelity-table3"}


@pytest.mark.parametrize("name", sorted(EXPECTED_TRIALS))
def test_shipped_grid_specs_load_with_the_expected_trial_count(name):
    spec = load_spec(name)
    trials = expand_grid(spec)
    assert len(trials) == EXPECTED_TRIALS[name]
    assert spec.paper_table == name
    assert len({t["key"] for t in trials}) == len(trials)
    assert [t["index"] for t in trials] == list(range(len(trials)))


def test_table2_rows_are_every_method_on_every_task():
    trials = expand_grid(load_spec("table2"))
    variants = {(t["task"], t["variant"]) for t in trials}
    tasks = {t["task"] for t in trials}
    expected = [
        "baseline", "l1", "l2", "dropout", "fgsm", "fgm", "pgd", "freeat", "freelb",
        "dropattack_i", "dropattack_ih",
    ]  # fmt: skip
    assert variants == {(task, v) for task in tasks for v in expected}
    assert len(tasks) == 5
    pgd = next(t for t in trials if t["variant"] == "pgd")
    assert pgd["k"] == 3 and pgd["p"] is None  # pgd takes k, not p


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/paper (the paper's tables) is absent")
@pytest.mark.parametrize("table", [5, 6, 7, 8, 9])
def test_appendix_table_specs_have_the_paper_rows(table):
    text = (SHARED / "tables5to9_targets.csv").read_text().splitlines()
    rows = [r for r in csv.DictReader(text) if int(r["table"]) == table]
    trials = expand_grid(load_spec(f"table{table}"))
    seed0 = [t for t in trials if t["seed"] == 0]
    assert len(seed0) == len(rows)
    for row, trial in zip(rows, seed0, strict=True):
        if not row["targets"]:
            assert trial["method"] == "standard" and trial["variant"] == "baseline"
            continue
        assert trial["attack"] == row["targets"].split(";")
        assert trial["eps"] == float(row["eps"]) and trial["p"] == float(row["p"])


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/paper (the paper's tables) is absent")
def test_table10_is_the_papers_7x7_grid():
    text = (SHARED / "table10_eps_p.csv").read_text().splitlines()
    eps = {float(h.removeprefix("eps_")) for h in next(csv.reader(text))[1:]}
    ps = {float(r["p"]) for r in csv.DictReader(text)}
    trials = expand_grid(load_spec("table10"), merge=False)
    assert {(t["eps"], t["p"]) for t in trials} == {(e, p) for e in eps for p in ps}
    assert {t["seed"] for t in trials} == set(range(5))


def test_search_spec_is_tpe_with_a_conditional_attack_space():
    spec = load_spec("search")
    assert spec.search.algorithm == "tpe" and spec.search.scheduler == "asha"
    axes = spec.axes()
    assert axes["eps"].low == 0.01 and axes["eps"].high == 9 and axes["eps"].log
    assert isinstance(axes["attack"], dict) and "imdb-lstm" in axes["attack"]


def test_a_name_finds_the_shipped_file_and_a_path_its_file(tmp_path):
    assert load_spec("quickstart").source == str(SPEC_DIR / "quickstart.yaml")
    path = write(tmp_path, GOOD)
    spec = load_spec(path)
    assert spec.name == "tiny" and spec.source == str(path)


def test_spec_hash_ignores_layout_but_not_content(tmp_path):
    a = load_spec(write(tmp_path, GOOD, "a.yaml"))
    b = load_spec(write(tmp_path, "# a comment\n" + GOOD.replace("[1, 5]", "[1,   5]"), "b.yaml"))
    c = load_spec(write(tmp_path, GOOD.replace("[1, 5]", "[1, 6]"), "c.yaml"))
    assert a.hash == b.hash != c.hash


def test_unknown_spec_name_lists_the_shipped_ones():
    with pytest.raises(SpecError, match=r"unknown spec 'nope'.*quickstart.*table10"):
        load_spec("nope")


def test_missing_file():
    with pytest.raises(SpecError, match=r"missing\.yaml: no such spec file"):
        load_spec("missing.yaml")


def test_invalid_yaml_names_the_line(tmp_path):
    msg = error_of(write(tmp_path, "name: x\nspace: {eps: [1, 2\n"))
    assert "spec.yaml" in msg and "line" in msg and "invalid YAML" in msg


def test_good_spec_loads(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.defaults.task == "digits-lenet5" and spec.defaults.attack == ("Input",)
    assert [(t["eps"], t["seed"]) for t in expand_grid(spec)] == [(1, 0), (1, 1), (5, 0), (5, 1)]


@pytest.mark.parametrize(
    ("old", "new", "field", "allowed"),
    [
        ("task: digits-lenet5", "task: nosuchtask", "defaults.task", "expected one of imdb-lstm"),
        ("[Input]", "[Conv.9.w]", "defaults.attack", "valid aliases: Input, Conv.1.w"),
        ("method: dropattack", "method: dropatack", "defaults.method", "expected one of standard"),
        ("epochs: 1", "epochs: 0", "defaults.epochs", "expected an integer >= 1, got 0"),
        ("epochs: 1", "colour: red", "defaults", "unknown field(s) colour; allowed: task, method"),
        ("task: digits-lenet5, ", "", "defaults.task", "no task: set defaults.task, space.task"),
    ],
)
def test_bad_defaults(tmp_path, old, new, field, allowed):
    msg = error_of(write(tmp_path, GOOD.replace(old, new)))
    assert f"spec.yaml: {field}: " in msg, msg
    assert allowed in msg, msg


@pytest.mark.parametrize(
    ("space", "field", "expected"),
    [
        ("{eps: [1, -1], p: [0.5]}", "space.eps[1]", "expected eps >= 0, got -1"),
        ("{eps: [1], p: [0.5, 1.5]}", "space.p[1]", "expected 0 <= p <= 1, got 1.5"),
        ("{eps: [], p: [0.5]}", "space.eps", "empty axis: the grid has no point"),
        ("{eps: [1, 1], p: [0.5]}", "space.eps[1]", "listed twice"),
        ("{eps: {low: 0.1, high: 9}}", "space.eps", "a grid needs a list of values"),
        ("{epz: [1]}", "space.epz", "unknown axis; allowed: task, method, attack, eps"),
        ("{attack: [[Input], [Bogus]]}", "space.attack[1]", "unknown alias or parameter 'Bogus'"),
        ("{task: [digits-lenet5, nope]}", "space.task[1]", "unknown task 'nope'"),
    ],
)
def test_bad_space(tmp_path, space, field, expected):
    text = GOOD.replace("space: {eps: [1, 5], p: [0.5]}", f"space: {space}")
    msg = error_of(write(tmp_path, text))
    assert f"{field}: " in msg and expected in msg, msg


def test_every_error_is_reported_at_once(tmp_path):
    text = GOOD.replace("seeds: [0, 1]", "seeds: []\nresources: {cpus: 0}")
    path = write(tmp_path, text)
    lines = error_of(path).splitlines()
    assert lines[0] == f"2 errors in {path}:"
    assert [line.split(": ")[:2] for line in lines[1:]] == [
        [str(path), "seeds"],
        [str(path), "resources.cpus"],
    ]  # each on its own line, with the file and the field path
    text = GOOD.replace("p: [0.5]", "p: [2]").replace("digits-lenet5", "nope")
    lines = error_of(write(tmp_path, text)).splitlines()
    assert lines[0].startswith("2 errors in ")
    assert sorted(line.split(": ")[1] for line in lines[1:]) == ["defaults.task", "space.p[0]"]
    # a field that fails validation does not hide the errors the later checks find
    text = GOOD.replace("seeds: [0, 1]", "seeds: [0, 1]\nresources: {cpus: 0}").replace(
        "p: [0.5]", "p: [0.5], bogus: [1]"
    )
    lines = error_of(write(tmp_path, text)).splitlines()
    assert sorted(line.split(": ")[1] for line in lines[1:]) == ["resources.cpus", "space.bogus"]


@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        ("search: {algorithm: bayes}", "search.algorithm", "'grid', 'tpe' or 'random'"),
        ("search: {scheduler: hyperband}", "search.scheduler", "'none' or 'asha'"),
        ("search: {metric: test_acc}", "search.metric", "'val_acc' or 'val_f1'"),
        ("search: {num_samples: 3}", "search.num_samples", "a grid runs each cell once"),
        ("search: {algorithm: tpe}", "search.num_samples", "tpe search needs num_samples"),
        ("resources: {gpus: 1.5}", "resources.gpus", "a fraction <= 1 or a whole number"),
        ("resources: {cpus: 0}", "resources.cpus", "a number of CPUs > 0 or auto"),
        ("resources: {cpus: many}", "resources.cpus", "expected a number or auto, got 'many'"),
        ("resources: {gpus: -1}", "resources.gpus", "a number of GPUs >= 0 or auto"),
        ("paper_table: table11", "paper_table", "expected one of '', 'table2'"),
    ],
)
def test_bad_search_and_resources(tmp_path, extra, field, expected):
    msg = error_of(write(tmp_path, GOOD + extra + "\n"))
    assert f"{field}: " in msg and expected in msg, msg


def test_method_specific_fields(tmp_path):
    text = """
    name: m
    defaults: {task: digits-lenet5}
    trials:
      - {method: standard, attack: [Input]}
      - {method: l1, hp: {lamda: 0.1}}
    """
    msg = error_of(write(tmp_path, text))
    assert "trials[0].attack: method 'standard' takes no attack targets" in msg
    assert "trials[1].hp.lamda: method 'l1' takes no 'lamda'; it takes: lam" in msg


def test_repeated_cell_is_refused(tmp_path):
    text = """
    name: dup
    defaults: {task: digits-lenet5}
    trials:
      - {method: dropattack, eps: 5}
      - {method: dropattack, eps: 5.0, variant: again}
    """
    msg = error_of(write(tmp_path, text))
    assert "trials[1]: repeats the trial" in msg and "of trials[0]" in msg


def test_unknown_variant_placeholder(tmp_path):
    text = GOOD.replace("epochs: 1}", "epochs: 1, variant: '{size}'}")
    msg = error_of(write(tmp_path, text))
    assert "defaults.variant: cannot fill '{size}'" in msg and "train_size" in msg


def test_sampled_search_rules(tmp_path):
    text = """
    name: s
    defaults: {task: digits-lenet5}
    space: {eps: {low: 0, high: 9, log: true}}
    trials: [{method: standard}]
    seeds: [0, 1]
    search: {algorithm: tpe, num_samples: 4}
    """
    msg = error_of(write(tmp_path, text))
    assert "space.eps: log: a log range needs low > 0" in msg
    assert "trials: explicit trials are for grid searches" in msg
    assert "seeds: tpe search trains each sampled configuration once" in msg


def test_per_task_attack_sets_must_match_the_tasks(tmp_path):
    text = """
    name: s
    space:
      task: [digits-lenet5]
      attack: {digits-lenet5: [Input], imdb-lstm: [Embedding]}
      eps: {low: 0.1, high: 9, log: true}
    search: {algorithm: tpe, num_samples: 2}
    """
    msg = error_of(write(tmp_path, text))
    assert "space.attack.imdb-lstm: task 'imdb-lstm' is not run by this spec" in msg


def test_a_typo_in_defaults_blames_the_typo_alone(tmp_path):
    """``epoch: 1`` beside ``task``: the unknown key, not a missing task in every entry."""
    text = textwrap.dedent(
        """
        name: typo
        defaults: {task: digits-lenet5, epoch: 1}
        trials:
          - {method: standard}
          - {method: dropattack, epohcs: 2}
        resources: {cpus: 1, gpu: 1}
        """
    )
    lines = error_of(write(tmp_path, text)).splitlines()
    assert lines[0].startswith("3 errors in "), lines
    assert [line.split(": ")[1] for line in lines[1:]] == ["defaults", "trials[1]", "resources"]
    assert "unknown field(s) epoch;" in lines[1] and "task" not in lines[1].split(";")[0]
    assert not any("no task" in line for line in lines)
    # the rest is still checked: a bad value beside the typo is reported too
    bad = text.replace("digits-lenet5", "nope")
    lines = error_of(write(tmp_path, bad)).splitlines()
    assert any(line.split(": ")[1] == "defaults.task" for line in lines[1:]), lines


def test_seeds_until_decided_runs_the_initial_seeds_and_is_another_spec(tmp_path):
    rounds = load_spec(
        write(
            tmp_path, GOOD.replace("seeds: [0, 1]", "seeds: {initial: 3, max: 12, until: decided}")
        )
    )
    assert rounds.seeds == [0, 1, 2]
    assert (rounds.seed_rounds.initial, rounds.seed_rounds.max) == (3, 12)
    assert len(expand_grid(rounds)) == 2 * 3
    plain = load_spec(write(tmp_path, GOOD.replace("seeds: [0, 1]", "seeds: 3"), "plain.yaml"))
    assert plain.seed_rounds is None and plain.seeds == rounds.seeds
    assert plain.hash != rounds.hash
    again = load_spec(write(tmp_path, rounds.to_yaml(), "again.yaml"))
    assert again.hash == rounds.hash and again.seed_rounds == rounds.seed_rounds


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [
        ("{initial: 1, max: 4}", "initial: Input should be greater than or equal to 2"),
        ("{initial: 3, max: 2}", "max: expected initial (3) <= max <= 1000, got 2"),
        ("{initial: 3, max: 6, until: forever}", "until: Input should be 'decided'"),
        ("{initial: 3, max: 6, step: 2}", "unknown field(s) step"),
    ],
)
def test_bad_seed_rounds_are_one_line(tmp_path, seeds, expected):
    msg = error_of(write(tmp_path, GOOD.replace("seeds: [0, 1]", f"seeds: {seeds}")))
    assert msg.count("\n") == 0 and ": seeds: " in msg and expected in msg, msg
