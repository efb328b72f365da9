"""Search spaces: grid expansion (order, keys, what is crossed) and Optuna define-by-run."""

from __future__ import annotations

import math
import pickle
import textwrap

import optuna
import pytest

from sweeps.specs.load import load_spec
from sweeps.specs.space import DefineByRun, cell_key, describe_space, expand_grid, make_trial


def spec_from(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return load_spec(path)


def test_cell_key_has_the_contract_form():
    trial = make_trial(
        {"task": "imdb-lstm", "attack": ["Embedding", "Lstm.ih.w"], "eps": 7, "p": 0.7}, 3, 0
    )
    assert trial["cell"] == (
        "task=imdb-lstm;method=dropattack;attack=Embedding+Lstm.ih.w;eps=7;p=0.7;k=1"
    )
    assert trial["key"] == trial["cell"] + ";seed=3"
    assert trial["attacked"] == ["embedding.weight", "rnn.weight_ih_l0"]
    assert cell_key({**trial, "seed": 99}) == trial["cell"]  # the seed is not in the cell


def test_method_without_targets_has_no_attack_fields():
    trial = make_trial({"task": "digits-lenet5", "method": "l2", "hp": {"lam": 1e-4}}, 0, 0)
    assert trial["attack"] is None and trial["eps"] is None and trial["p"] is None
    assert trial["cell"] == "task=digits-lenet5;method=l2;lam=0.0001"


def test_dropattack_without_attack_targets_the_tasks_input():
    assert make_trial({"task": "imdb-lstm"}, 0, 0)["attack"] == ["Embedding"]
    assert make_trial({"task": "digits-lenet5"}, 0, 0)["attacked"] == ["input"]


def test_changed_defaults_enter_the_cell_key():
    trial = make_trial({"task": "imdb-lstm", "train_size": 500, "groups": "joint"}, 0, 0)
    assert trial["cell"].endswith(";groups=joint;train_size=500")


def test_grid_order_is_entries_then_axes_then_seeds(tmp_path):
    spec = spec_from(
        tmp_path,
        """
        name: g
        defaults: {task: digits-lenet5}
        trials:
          - {method: standard, variant: baseline}
          - {method: dropattack, variant: "da-{eps}-{p}"}
        space: {eps: [1, 5], p: [0.3, 0.7]}
        seeds: [0, 1]
        """,
    )
    trials = expand_grid(spec)
    # the baseline takes neither eps nor p: it is not crossed with them
    assert [(t["variant"], t["seed"]) for t in trials[:2]] == [("baseline", 0), ("baseline", 1)]
    rest = [(t["eps"], t["p"], t["seed"]) for t in trials[2:]]
    assert rest == [
        (1, 0.3, 0), (1, 0.3, 1), (1, 0.7, 0), (1, 0.7, 1),
        (5, 0.3, 0), (5, 0.3, 1), (5, 0.7, 0), (5, 0.7, 1),
    ]  # fmt: skip
    assert trials[2]["variant"] == "da-1-0.3"
    assert expand_grid(spec) == trials  # deterministic


def test_an_entry_fixing_an_axis_is_not_crossed_with_it(tmp_path):
    spec = spec_from(
        tmp_path,
        """
        name: g
        space: {task: [digits-lenet5, imdb-lstm]}
        trials:
          - {method: standard}
          - {method: dropattack, task: imdb-lstm, attack: "Embedding;Lstm.ih.w"}
        """,
    )
    trials = expand_grid(spec)
    assert [(t["task"], t["method"]) for t in trials] == [
        ("digits-lenet5", "standard"),
        ("imdb-lstm", "standard"),
        ("imdb-lstm", "dropattack"),
    ]


def test_attack_axis_per_task(tmp_path):
    spec = spec_from(
        tmp_path,
        """
        name: g
        space:
          task: [digits-lenet5, imdb-lstm]
          attack: {digits-lenet5: [Input, "Input;Conv.1.w"], imdb-lstm: [Embedding]}
        """,
    )
    pairs = [(t["task"], ";".join(t["attack"])) for t in expand_grid(spec)]
    assert pairs == [
        ("digits-lenet5", "Input"),
        ("digits-lenet5", "Input;Conv.1.w"),
        ("imdb-lstm", "Embedding"),
    ]


SEARCH = """
name: s
defaults: {method: dropattack, epochs: 1}
space:
  task: [digits-lenet5, imdb-lstm]
  attack:
    digits-lenet5: [Input, "Input;Conv.1.w"]
    imdb-lstm: [Embedding, "Embedding;Lstm.ih.w"]
  eps: {low: 0.01, high: 9, log: true}
  p: {low: 0.0, high: 1.0}
  k: {low: 1, high: 5}
seeds: [7]
search: {algorithm: tpe, num_samples: 20}
"""


def test_define_by_run_samples_a_conditional_space(tmp_path):
    space = DefineByRun(spec_from(tmp_path, SEARCH))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_tasks = set()
    for _ in range(20):
        ot = study.ask()
        trial = space(ot)["trial"]
        task = trial["task"]
        seen_tasks.add(task)
        # the attack parameter exists for the drawn task only
        assert set(ot.params) == {"task", f"attack@{task}", "eps", "p", "k"}
        allowed = {"digits-lenet5": {"Input", "Input;Conv.1.w"}}.get(
            task, {"Embedding", "Embedding;Lstm.ih.w"}
        )
        assert ";".join(trial["attack"]) in allowed
        assert 0.01 <= trial["eps"] <= 9 and 0 <= trial["p"] <= 1
        assert isinstance(trial["k"], int) and 1 <= trial["k"] <= 5
        assert trial["seed"] == 7 and trial["epochs"] == 1
        assert trial["key"].endswith(f";seed=7;sample={ot.number}")
        study.tell(ot, trial["eps"])
    assert seen_tasks == {"digits-lenet5", "imdb-lstm"}
    dist = study.trials[0].distributions["eps"]
    assert dist.log and math.isclose(dist.low, 0.01)


def test_define_by_run_pickles_for_rays_checkpoints(tmp_path):
    space = DefineByRun(spec_from(tmp_path, SEARCH))
    again = pickle.loads(pickle.dumps(space))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    a = space(study.ask())["trial"]
    study2 = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    assert again(study2.ask())["trial"] == a


def test_describe_space(tmp_path):
    lines = describe_space(spec_from(tmp_path, SEARCH))
    assert "eps: [0.01, 9] (log)" in lines
    assert "attack | task=imdb-lstm: Embedding | Embedding;Lstm.ih.w" in lines


@pytest.mark.parametrize("name", ["quickstart", "table5"])
def test_shipped_grid_keys_are_unique_per_seed(name):
    trials = expand_grid(load_spec(name))
    cells = {t["cell"] for t in trials}
    assert len(trials) == len(cells) * len(load_spec(name).seeds)


def test_step_enters_cell_key_name_and_passes_only_when_not_the_paper_default(tmp_path):
    from sweeps.specs.names import config_name

    paper = make_trial({"task": "imdb-lstm", "k": 3, "step": "paper"}, 0, 0)
    notebook = make_trial({"task": "imdb-lstm", "k": 3, "step": "notebook"}, 0, 0)
    unset = make_trial({"task": "imdb-lstm", "k": 3}, 0, 0)
    assert paper["cell"] == unset["cell"] and paper["step"] == unset["step"] == "paper"
    assert notebook["cell"] == unset["cell"] + ";step=notebook"
    assert "step=notebook" in config_name(notebook) and "step" not in config_name(paper)
    assert notebook["passes"] == paper["passes"] == 1 + 3
    assert make_trial({"task": "imdb-lstm", "method": "standard"}, 0, 0)["step"] is None
    spec = spec_from(
        tmp_path,
        """
        name: s
        defaults: {task: imdb-lstm}
        space: {step: [paper, notebook]}
        """,
    )
    assert [t["step"] for t in expand_grid(spec)] == ["paper", "notebook"]


def test_the_fidelity_spec_pairs_both_steps_at_k_1_and_3():
    trials = expand_grid(load_spec("fidelity-table3"))
    assert len(trials) == 30 and {t["train_size"] for t in trials} == {500}
    arms = {(t["method"], t["k"], t["step"]) for t in trials}
    assert arms == {("standard", None, None)} | {
        ("dropattack", k, s) for k in (1, 3) for s in ("paper", "notebook")
    }
    assert all(t["p"] == 0.7 and t["eps"] == 5 for t in trials if t["method"] == "dropattack")
    assert not any(t.get("data_dir") for t in trials)  # the data root comes from outside
