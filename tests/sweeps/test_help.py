"""``--help`` is instant: no command's help imports torch, Ray or MLflow (checked in a fresh
interpreter's ``sys.modules``), and it says what the command does by default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "ray", "mlflow")
PROBE = """
import contextlib, io, sys
from sweeps import cli
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        cli.main([{command!r}, "--help"])
    except SystemExit:
        pass
print(",".join(m for m in {heavy!r} if m in sys.modules))
print(out.getvalue())
"""


def _help(command: str) -> tuple[list[str], str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(command=command, heavy=HEAVY)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first, _, text = proc.stdout.partition("\n")
    return [m for m in first.split(",") if m], text


@pytest.mark.parametrize("command", ["train", "report", "plan", "landscape", "sweep", "submit"])
def test_help_imports_no_torch_ray_or_mlflow(command: str) -> None:
    assert command in COMMANDS
    heavy, text = _help(command)
    assert heavy == [], f"dropattack {command} --help imported {heavy}"
    assert f"usage: dropattack {command}" in text


def test_report_help_says_json_is_always_written() -> None:
    _, text = _help("report")
    assert "report.json is always written too" in " ".join(text.split())
