"""Tasks from the user's code: ``task: "package.module:factory"`` with ``task_args``.

The spec errors are checked in-process (a module written to a temporary folder, which is the
current folder); the example ``docs/examples/own-task`` runs end to end as a user would run
it: copied to a folder outside the repository, ``dropattack sweep``, ``report`` and
``confirm`` as commands in that folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from sweeps import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "own-task"
DROPATTACK = Path(sys.executable).parent / "dropattack"

MODULE = textwrap.dedent(
    '''
    """Factories for the spec checks: one good, one that raises, one that returns no task."""
    import torch
    from torch import nn

    from models.interface import SimpleTask, tensor_data


    def _load(options):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(60, 4, generator=g)
        return tensor_data(x, (x[:, 0] > 0).long(), options)


    def make(width=8, metrics=("acc", "f1")):
        return SimpleTask(
            name="toy",
            load_data=_load,
            model_builder=lambda data, **kw: nn.Sequential(
                nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 2)
            ),
            metrics=tuple(metrics),
            epochs=1,
        )


    def boom(**kwargs):
        raise RuntimeError("no data here")


    def wrong():
        return 42


    def fragile():
        """Loads where the spec is checked; raises on a cluster's worker (an actor)."""
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_actor_id():
            raise RuntimeError("no data on this node")
        return make()
    '''
)


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "usertasks_spec.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    # A spec's folder joins sys.path for the process; an earlier test's folder, first on it,
    # would give this test that test's module of the same name.
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop("usertasks_spec", None)
    yield tmp_path
    sys.modules.pop("usertasks_spec", None)


def _error(capsys, folder: Path, spec: str) -> tuple[int, str]:
    path = folder / "spec.yaml"
    path.write_text(spec)
    code = cli.main(["sweep", str(path), "--dry-run"])
    out, err = capsys.readouterr()
    return code, err


def test_a_good_factory_expands_with_its_args_in_the_cell(user_dir, capsys):
    spec = (
        "name: toy\ndefaults: {task: 'usertasks_spec:make', task_args: {width: 6}}\n"
        "space: {attack: [[input], ['0.*'], ['2.weight']]}\n"
    )
    code, err = _error(capsys, user_dir, spec)
    assert code == 0, err
    from sweeps.specs.load import load_spec
    from sweeps.specs.space import expand_grid

    trials = expand_grid(load_spec(str(user_dir / "spec.yaml")))
    assert [t["attacked"] for t in trials] == [["input"], ["0.weight", "0.bias"], ["2.weight"]]
    assert all(t["task_args"] == {"width": 6} for t in trials)
    assert 'task_args={"width": 6}' in trials[0]["cell"]


@pytest.mark.parametrize(
    ("defaults", "extra", "field", "words"),
    [
        ("task: 'nosuch_pkg.mod:make'", "", "defaults.task", "cannot import 'nosuch_pkg.mod'"),
        ("task: 'usertasks_spec:nothing'", "", "defaults.task", "has no 'nothing'"),
        ("task: 'usertasks_spec:boom'", "", "defaults.task_args", "raised RuntimeError"),
        ("task: 'usertasks_spec:wrong'", "", "defaults.task", "returned int, expected"),
        (
            "task: 'usertasks_spec:make'",
            "space: {attack: [['encoder.*.weight']]}\n",
            "space.attack[0]",
            "'encoder.*.weight' matches no parameter",
        ),
        (
            "task: 'usertasks_spec:make', task_args: {metrics: [acc]}",
            "search: {metric: val_f1}\n",
            "search.metric",
            "does not produce val_f1",
        ),
    ],
)
def test_bad_user_task_is_one_line_naming_the_field(
    user_dir, capsys, defaults, extra, field, words
):
    code, err = _error(capsys, user_dir, f"name: toy\ndefaults: {{{defaults}}}\n{extra}")
    assert code == 2
    assert err.count("\n") == 1, err
    assert f"spec.yaml: {field}: " in err and words in err, err


def test_a_driver_joining_a_cluster_ships_the_user_tasks_modules(user_dir, monkeypatch):
    """What ``sweep --address`` and ``plan --address`` give a cluster's trials: the modules
    of the user's tasks (a package folder, a single file), no built-in one; through Ray
    Client also Tune's settings; nothing for a Ray of its own or in a submitted job."""
    from sweeps.cluster import connect
    from sweeps.specs.load import load_spec

    (user_dir / "shipped_pkg" / "sub").mkdir(parents=True)
    (user_dir / "shipped_pkg" / "__init__.py").write_text("")
    (user_dir / "shipped_pkg" / "sub" / "__init__.py").write_text("")
    (user_dir / "shipped_pkg" / "sub" / "tasks.py").write_text(MODULE)
    for name in ("shipped_pkg", "shipped_pkg.sub", "shipped_pkg.sub.tasks"):
        monkeypatch.delitem(sys.modules, name, raising=False)  # gone again afterwards
    monkeypatch.delenv(connect.JOB_CONFIG_ENV, raising=False)
    path = user_dir / "spec.yaml"
    path.write_text(
        "name: ship\ndefaults: {task: 'shipped_pkg.sub.tasks:make'}\ntrials:\n"
        "  - {method: standard}\n  - {task: 'usertasks_spec:make', method: standard}\n"
        "  - {task: digits-lenet5, method: standard}\n"
    )
    spec = load_spec(str(path))
    here = user_dir.resolve()
    env = connect.runtime_env("10.0.0.5:6379", spec)
    assert env["py_modules"] == [str(here / "shipped_pkg"), str(here / "usertasks_spec.py")]
    assert "env_vars" not in env and ".[eE][nN][vV]" in env["excludes"]  # no secrets
    monkeypatch.setenv("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    client = connect.runtime_env("ray://10.0.0.5:10001", spec)
    assert client["py_modules"] == env["py_modules"]
    assert client["env_vars"]["TUNE_DISABLE_STRICT_METRIC_CHECKING"] == "1"
    assert connect.runtime_env(None, spec) is None and connect.runtime_env("local", spec) is None
    path.write_text("name: builtin\ndefaults: {task: digits-lenet5}\n")
    assert connect.runtime_env("10.0.0.5:6379", load_spec(str(path))) is None
    monkeypatch.setenv(connect.JOB_CONFIG_ENV, "{}")
    assert connect.runtime_env("auto", spec) is None


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("DROPATTACK_THREADS", "1")
    env["RAY_ADDRESS"] = "local"  # a Ray of its own, not one another program started here
    return subprocess.run(
        [str(DROPATTACK), *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_the_example_sweeps_reports_and_confirms_from_a_folder_of_its_own(tmp_path):
    folder = tmp_path / "own-task"
    shutil.copytree(EXAMPLE, folder)
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    spec["defaults"]["task_args"] = {"hidden": 16, "epochs": 3}
    spec["space"].update(eps=[0.5, 2], p=[0.5])
    spec["seeds"] = [0, 1]
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))

    swept = _run(["sweep", "spec.yaml", "--no-live"], folder)
    assert swept.returncode == 0, swept.stderr[-3000:]
    # read back from another folder, where the user's module does not import
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = ["--runs-dir", str(folder / "runs")]
    reported = _run(["report", "own-task", *store, "--format", "md,json"], elsewhere)
    assert reported.returncode == 0, reported.stderr[-3000:]
    listed = _run(["runs", "own-task", *store, "--json"], elsewhere)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert len(json.loads(listed.stdout)["runs"]) == 10
    out = folder / "runs" / "reports" / "own-task"
    data = json.loads(next(out.glob("*.json")).read_text())
    assert data["paper_table"] == ""
    md = next(out.glob("*.md")).read_text()
    lines = md.splitlines()
    headers = [h for h, rule in zip(lines, lines[1:], strict=False) if rule.startswith("|---")]
    assert "Paper table: none" in md and "Effects: each configuration against its baseline" in md
    assert headers and not [h for h in headers if "paper" in h.lower()], headers
    (task,) = data["tasks"] if isinstance(data["tasks"], list) else data["tasks"].values()
    assert task["comparisons"] == 4
    assert task["baseline"]["method"] == "standard"  # the user's own baseline

    confirmed = _run(["confirm", "own-task", "--seeds", "2", *store, "--no-live"], folder)
    assert confirmed.returncode == 0, confirmed.stderr[-3000:]

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("own-task")
    runs = client.search_runs([exp.experiment_id], "tags.`dropattack.role` = 'trial'")
    assert len(runs) == 10 and all(r.info.status == "FINISHED" for r in runs)
    params = runs[0].data.params
    assert params["task"] == "own_task.task:make"
    assert json.loads(params["task_args"]) == {"epochs": 3, "hidden": 16}
    assert params["task_factory"] == "own_task.task:make"
    # the hash of the module that holds the factory, not of its package's __init__.py
    digest = hashlib.sha256((folder / "own_task" / "task.py").read_bytes()).hexdigest()
    assert params["task_version"] == f"sha256:{digest[:12]}"
    attacked = {r.data.params.get("attacked") for r in runs}
    assert {"input", "encoder.0.weight,encoder.3.weight"} <= attacked
    confirm_exp = client.get_experiment_by_name("own-task-confirm")
    assert confirm_exp is not None
    again = client.search_runs([confirm_exp.experiment_id], "tags.`dropattack.role` = 'trial'")
    assert again and {r.data.params["task_args"] for r in again} == {params["task_args"]}

    # the landscape rebuilds the user's model from the run's task and task_args
    trained = next(r for r in runs if r.data.params["method"] == "dropattack")
    drawn = _run(
        ["landscape", trained.info.run_id, "--grid", "3", "--samples", "32", "--no-log",
         *store, "--out", str(tmp_path / "land")],
        folder,
    )  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert f"{trained.info.run_id}: own_task.task:make dropattack: 32 of the" in drawn.stdout
    land = json.loads((tmp_path / "land" / "landscape.json").read_text())
    surface = land["runs"][trained.info.run_id]
    assert surface["samples"] == 32 and len(surface["loss"]) == 3
    assert all(math.isfinite(v) for row in surface["loss"] for v in row)


def _installed(tmp_path: Path) -> dict[str, str]:
    """A real installed distribution (a ``*.dist-info`` folder on PYTHONPATH) that registers
    a task under ``dropattack.tasks``; the environment of a process that sees it."""
    site = tmp_path / "site"
    (site / "toy_tasks").mkdir(parents=True)
    (site / "toy_tasks" / "__init__.py").write_text(MODULE)
    info = site / "toy_tasks-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-tasks\nVersion: 0.3\n")
    (info / "top_level.txt").write_text("toy_tasks\n")
    (info / "entry_points.txt").write_text(
        "[dropattack.tasks]\ntoy-ep = toy_tasks:make\nbroken-ep = toy_tasks:wrong\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "PYTHONPATH": str(site)}


def test_an_installed_task_is_listed_beside_the_built_in_ones(tmp_path):
    env = _installed(tmp_path)
    listed = subprocess.run(
        [str(DROPATTACK), "tasks", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr
    tasks = {d.get("name", d["task"]): d for d in json.loads(listed.stdout)}
    assert {"imdb-lstm", "digits-lenet5", "toy-ep", "broken-ep"} <= set(tasks)
    toy = tasks["toy-ep"]
    assert toy["source"] == "toy_tasks:make" and toy["task_version"] == "toy-tasks 0.3"
    assert toy["parameters"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert toy["input_alias"] == "input" and toy["perturbs"] == "input"
    assert "returned int" in tasks["broken-ep"]["error"]

    spec = tmp_path / "spec.yaml"
    spec.write_text("name: ep\ndefaults: {task: toy-ep}\nspace: {attack: [['0.*']]}\n")
    dry = subprocess.run(
        [str(DROPATTACK), "sweep", str(spec), "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stderr
    assert "toy-ep dropattack 0.*" in dry.stdout


@pytest.mark.slow
def test_a_factory_that_raises_in_a_trial_fails_that_trial_and_the_sweep_goes_on(tmp_path):
    (tmp_path / "usertasks_spec.py").write_text(MODULE)
    (tmp_path / "spec.yaml").write_text(
        "name: fragile\ntrials:\n"
        "  - {task: 'usertasks_spec:fragile', method: standard}\n"
        "  - {task: 'usertasks_spec:make', method: standard}\n"
        "seeds: [0]\nresources: {max_concurrent: 1}\n"
    )
    swept = _run(["sweep", "spec.yaml", "--no-live"], tmp_path)
    assert "1 done" in swept.stdout + swept.stderr and "1 failed" in swept.stdout + swept.stderr

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("fragile")
    runs = client.search_runs([exp.experiment_id], "tags.`dropattack.role` = 'trial'")
    status = {r.data.params["task"]: r.info.status for r in runs}
    assert status == {"usertasks_spec:fragile": "FAILED", "usertasks_spec:make": "FINISHED"}
    (failed,) = [r for r in runs if r.info.status == "FAILED"]
    assert "no data on this node" in failed.data.tags["dropattack.error"]
