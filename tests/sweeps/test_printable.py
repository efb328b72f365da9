"""MLflow-sourced strings printed on a terminal: escape sequences shown, never obeyed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sweeps.records.listing import TEST_METRIC, TrialRow, listing_lines
from sweeps.records.printable import printable
from sweeps.report.figures import task_suffix

ATTACKS = [
    "\x1b]0;owned\x07",  # set the window title
    "\x1b[2J\x1b[H",  # clear the screen
    "ok\rFAILED",  # overwrite the line
    "\x9b31m",  # a C1 CSI
    "abc\u202edcba",  # right-to-left override
]


@pytest.mark.parametrize("text", ATTACKS)
def test_control_characters_are_escaped(text):
    shown = printable(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in shown)
    assert "\\x" in shown or "\\u" in shown


def test_plain_text_is_unchanged():
    assert printable("dropattack p=0.3 eps=1 ÄÖü 日本") == "dropattack p=0.3 eps=1 ÄÖü 日本"


def test_runs_listing_escapes_names_and_errors():
    metrics = {"val_acc": 0.9, TEST_METRIC: 0.8, "train_seconds": 1.0, "setup_seconds": 0.1}
    rows = [
        TrialRow("r1", "\x1b[2Jname", "FAILED", "0", "c", metrics, error="boom\x1b]0;x\x07"),
    ]
    sweep = SimpleNamespace(
        selection_metric="val_acc",
        other_parents=[],
        experiment="exp\x1b[31m",
        parent=SimpleNamespace(run_id="p1"),
    )
    lines = listing_lines(sweep, rows)
    assert all("\x1b" not in ln and "\x07" not in ln for ln in lines), lines
    assert "\\x1b[2Jname" in lines[-1] and "boom\\x1b]0;x\\x07" in lines[-1]


@pytest.mark.parametrize("task", ["../../x", "a/b", "..", "x\x1b", "/etc/passwd", ".hidden"])
def test_figure_file_names_from_mlflow_task_values_stay_in_the_folder(task):
    suffix = task_suffix(task, True)
    assert suffix.startswith("-task-") and "/" not in suffix and ".." not in suffix
    assert task_suffix("digits-lenet5", True) == "-digits-lenet5"
    assert task_suffix(task, False) == ""
