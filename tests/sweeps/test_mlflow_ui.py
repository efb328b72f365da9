"""The MLflow UI in a real browser over a real quickstart sweep.

A real ``mlflow server`` on 127.0.0.1 takes the quickstart sweep (a real local Ray); headless
Chromium, driven through the DevTools protocol, opens the experiment's address as the
service prints it and then the comparison view of its runs, and the test reads what the
pages render: the parent run, its nested child runs, and their eps, p and attack params.

``DROPATTACK_UI_SCREENSHOT=docs/mlflow-compare.png`` also writes the comparison view's
screenshot there (the one the README shows).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from sweeps.execution.driver import SweepOptions, run_sweep
from sweeps.records.tracking import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    TAG,
    UI_WORKFLOW_STORAGE_KEY,
    compare_url,
)
from sweeps.specs.load import load_spec
from sweeps.specs.names import folder_name, trial_name
from sweeps.specs.space import expand_grid
from tests.browser import Browser

#: The expander of a parent run's row in the runs table (MLflow 3's run-name cell).
EXPANDER = 'button[data-component-id*="runnamecellrenderer"]'
#: Every table row of the page as [label, cell, cell, ...] (the comparison view's layout).
ROWS = (
    "[...document.querySelectorAll('tr')].map(tr => [...tr.children].map(c => c.innerText.trim()))"
)


@pytest.fixture(scope="module")
def sweep(ray_local, mlflow_server, tmp_path_factory):
    """The quickstart sweep (10 trials under one parent run) logged to the server."""
    spec = load_spec("quickstart")
    client = MlflowClient(mlflow_server.uri)
    # the spec's own name where the session's server has no such experiment yet
    taken = client.get_experiment_by_name(spec.name) is not None
    result = run_sweep(
        spec,
        SweepOptions(
            mlflow_uri=mlflow_server.uri,
            experiment=f"{spec.name}-{uuid.uuid4().hex[:6]}" if taken else spec.name,
            runs_dir=tmp_path_factory.mktemp("ui-runs"),
            live=False,
        ),
    )
    assert result.counts["done"] == 10, result.counts
    runs = client.search_runs([result.experiment_id], order_by=["attributes.start_time ASC"])
    children = [r for r in runs if r.data.tags.get(TAG["parent"]) == result.parent_run_id]
    parent = client.get_run(result.parent_run_id)
    assert len(children) == 10
    return result, parent, children, expand_grid(spec)


@pytest.fixture
def browser(chromium, tmp_path):
    with Browser(chromium, tmp_path / "profile", width=1500, height=1350) as b:
        yield b


def test_the_printed_experiment_address_opens_on_its_runs_parent_then_nested_children(
    sweep, browser
):
    result, parent, children, trials = sweep
    names = sorted(trial_name(t) for t in trials)
    assert sorted(r.info.run_name for r in children) == names  # one name in MLflow too
    browser.goto(result.ui_url)
    text = browser.wait_for_text("11 matching runs", parent.info.run_name)
    assert browser.eval("document.title").startswith("Runs - Experiment")
    assert "Traces" not in browser.eval("document.title")
    # the children are nested under the parent: hidden until its row is expanded
    assert not [n for n in names if n in text]
    browser.wait_for(f"!!document.querySelector({json.dumps(EXPANDER)})", what="the expander")
    browser.eval(f"document.querySelector({json.dumps(EXPANDER)}).click()")
    text = browser.wait_for_text(*names)
    assert text.index(parent.info.run_name) < min(text.index(n) for n in names)


def test_the_plain_address_opens_on_the_runs_once_the_browser_is_in_model_training_mode(
    sweep, browser
):
    """MLflow 3.17 lands on what the browser's GenAI / Model training switch says (it ignores
    the experiment's ``mlflow.experimentKind`` tag there): flipped once, the plain address
    of the experiment opens on its runs too, as the README says."""
    result, parent, _, _ = sweep
    plain = f"{result.tracking_uri}/#/experiments/{result.experiment_id}"
    client = MlflowClient(result.tracking_uri)
    assert client.get_experiment(result.experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    browser.goto(plain)
    browser.wait_for(f"document.title.includes('Experiment {result.experiment_id}')")
    switch = (
        "[...document.querySelectorAll('[role=button]')]"
        ".find(e => e.innerText.trim() === 'Model training')"
    )
    browser.wait_for(f"!!{switch}", what="the sidebar's Model training switch")
    browser.eval(f"{switch}.click()")
    browser.wait_for(  # the choice the README names, as the UI stores it (JSON)
        f"localStorage.getItem({json.dumps(UI_WORKFLOW_STORAGE_KEY)}) === "
        "JSON.stringify('machine_learning')",
        what=f"localStorage {UI_WORKFLOW_STORAGE_KEY}",
    )
    browser.goto("about:blank")
    browser.goto(plain)
    browser.wait_for_text("11 matching runs", parent.info.run_name)
    assert browser.eval("document.title").startswith("Runs - Experiment")


def test_the_compare_view_shows_the_parent_the_children_and_their_eps_p_and_attack(
    sweep, browser, tmp_path
):
    result, parent, children, _ = sweep
    runs = [parent, *children]
    browser.goto(
        compare_url(result.tracking_uri, result.experiment_id, [r.info.run_id for r in runs])
    )
    browser.wait_for_text("Comparing 11 Runs", "Parameters", "eps")
    rows: dict[str, list[str]] = {}
    for row in browser.eval(ROWS):
        if row and row[0] not in rows:  # params come before metrics and tags
            rows[row[0]] = row[1:]
    columns = {run_id: i for i, run_id in enumerate(rows["Run ID:"])}
    assert set(columns) == {r.info.run_id for r in runs}
    for run in runs:
        i = columns[run.info.run_id]
        assert rows["Run Name:"][i] == run.info.run_name
        params = run.data.params
        for name in ("eps", "p", "attack"):
            assert rows[name][i] == params.get(name, ""), (name, run.info.run_name)
    shown = {
        (rows["eps"][columns[r.info.run_id]], rows["p"][columns[r.info.run_id]])
        for r in children
        if r.data.params["method"] == "dropattack"
    }
    assert shown == {("1", "0.3"), ("1", "0.7"), ("5", "0.3"), ("5", "0.7")}
    assert {rows["attack"][columns[r.info.run_id]] for r in children} == {"", "Input;Conv.1.w"}
    assert rows["Run Name:"][columns[parent.info.run_id]] == "quickstart"

    shot = compare_screenshot(browser, result, children, tmp_path / "compare.png")
    pixels = _pixels(shot)
    assert pixels.shape[1] == 1500 and pixels.std() > 20  # a rendered page, not a blank one
    if os.environ.get("DROPATTACK_UI_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["DROPATTACK_UI_SCREENSHOT"])


def compare_screenshot(browser: Browser, result, children, path: Path) -> Path:
    """The comparison view of the seed-0 trials, as docs/mlflow-compare.png shows it: the
    assistant panel closed, the plots folded, parameters and metrics that differ."""
    picked = [r.info.run_id for r in children if r.data.params["seed"] == "0"]
    browser.goto(compare_url(result.tracking_uri, result.experiment_id, picked))
    browser.wait_for_text(f"Comparing {len(picked)} Runs", "Parameters", "Metrics")
    browser.eval(
        """(() => {
        const click = e => e && e.click();
        click(document.querySelector('button[aria-label="Close"]'));
        click([...document.querySelectorAll('[role=button]')]
            .find(e => e.innerText.trim() === 'Visualizations'));
        click(document.querySelector('button[aria-label="Parameters - Show diff only"]'));
        click(document.querySelector('button[aria-label="Metrics - Show diff only"]'));
    })()"""
    )
    browser.wait_for(
        "!document.querySelector('button[aria-label=\"Close\"]')", what="the assistant closed"
    )
    return browser.screenshot(path)


def test_trial_runs_carry_system_metrics(sweep):
    pytest.importorskip("psutil", reason="psutil is a dependency: pip install -e . to add it")
    _, _, children, _ = sweep
    for run in children:
        metrics = run.data.metrics
        assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100
        assert metrics["system/system_memory_usage_megabytes"] > 0


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=float)


def test_ray_trial_folders_carry_the_same_names(sweep):
    result, _, children, trials = sweep
    folders = sorted(p.name for p in Path(result.ray_path).iterdir() if p.is_dir())
    ids = {r.data.tags[TAG["trial_id"]] for r in children}
    expected = sorted(
        folder_name(t, next(i for i in ids if i.endswith(f"_{t['index']:05d}"))) for t in trials
    )
    assert folders == expected
    assert "t7_digits-lenet5 dropattack_ih Input+Conv.1.w eps=5 p=0.3 k=1 s1_" in " ".join(folders)
