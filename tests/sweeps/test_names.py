"""One readable trial name: the quickstart's trials, method hyperparameters, folder names."""

from __future__ import annotations

from sweeps.specs.load import load_spec
from sweeps.specs.names import config_name, folder_name, trial_name
from sweeps.specs.space import expand_grid


def test_quickstart_trials_are_named_task_variant_attack_values_seed():
    trials = expand_grid(load_spec("quickstart"))
    names = [trial_name(t) for t in trials]
    assert names[0] == "digits-lenet5 baseline s0"
    assert "digits-lenet5 dropattack_ih Input+Conv.1.w eps=5 p=0.3 k=1 s1" in names
    assert len(set(names)) == len(trials)  # every trial of the grid has its own name


def test_method_without_variant_hyperparameters_and_train_size():
    trial = {"task": "imdb-textrnn", "method": "l2", "hp": {"lam": 1e-4}, "seed": 2}
    assert trial_name(trial) == "imdb-textrnn l2 lam=0.0001 s2"
    sized = {"task": "t", "method": "dropattack", "attack": ["Embedding"], "eps": 1.0,
             "p": 0.7, "k": 1, "train_size": 500, "seed": 0}  # fmt: skip
    assert config_name(sized) == "t dropattack Embedding eps=1 p=0.7 k=1 train_size=500"


def test_folder_names_are_the_trial_name_unique_and_short():
    trials = expand_grid(load_spec("quickstart"))
    folders = [folder_name(t, f"abc_{i:05d}") for i, t in enumerate(trials)]
    # the one name, between Tune's index and trial id: nothing a file system allows is changed
    assert folders[7] == f"t7_{trial_name(trials[7])}_abc_00007"
    assert (
        folders[7] == "t7_digits-lenet5 dropattack_ih Input+Conv.1.w eps=5 p=0.3 k=1 s1_abc_00007"
    )
    assert len(set(folders)) == len(folders)
    long = {**trials[7], "attack": ["Lstm.ih.w/*"] * 40, "hp": {"x y": 'a:b"c|d'}}
    name = folder_name(long, "abc_00001")
    assert len(name) <= 160 and name.endswith("_abc_00001")
    assert not set('/\\:*?"<>|') & set(name)
    assert name.startswith("t7_digits-lenet5 dropattack_ih Lstm.ih.w__+Lstm.ih.w__+")
    assert folder_name({}, "abc_00002") == "t_abc_00002"


def test_a_variant_that_repeats_the_attack_set_is_not_repeated():
    """Appendix Tables 5-9 label rows by their attack set: the name says it once."""
    trials = expand_grid(load_spec("table5"))
    names = {config_name(t) for t in trials}
    assert "imdb-lstm dropattack Embedding+Fc.w eps=5 p=0.5 k=1" in names
    assert "imdb-lstm baseline" in names
    assert not any("Embedding Embedding" in n or "Fc.w Embedding" in n for n in names)
    assert len(names) == len({t["cell"] for t in trials})  # still one name per configuration


def test_dropattack_train_names_its_mlflow_run_the_same_way(tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    from sweeps.cli import main

    monkeypatch.chdir(tmp_path)  # a sqlite store keeps artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["train", "digits-lenet5", "--epochs", "1", "--train-size", "100", "--p", "0.3"]
    assert main([*argv, "--seed", "1", "--mlflow-uri", uri, "--experiment", "names"]) == 0
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("names").experiment_id])
    # the task's input target, the method's own eps and k, the p given, the training-set size
    assert run.info.run_name == "digits-lenet5 dropattack Input eps=5 p=0.3 k=1 train_size=100 s1"


def test_table3_names_keep_the_method_and_say_the_size_once():
    """Table 3 labels rows by their training size: the name says the method, and the size
    once (``imdb-lstm standard train_size=100``), not ``imdb-lstm 100 train_size=100``."""
    trials = expand_grid(load_spec("table3"))
    names = {config_name(t) for t in trials}
    assert "imdb-lstm standard train_size=100" in names
    assert "imdb-lstm dropattack Embedding+Lstm.ih.w eps=5 p=0.7 k=3 train_size=100" in names
    assert not any(n.split()[1].isdigit() for n in names)
    assert len(names) == len({t["cell"] for t in trials})
