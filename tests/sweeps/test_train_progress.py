"""``dropattack train`` on a terminal: a bar within each epoch, then the epoch line; nothing
extra with ``--json`` or into a pipe. Runs the CLI in a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Whole trainings in subprocesses on a pseudo-terminal: not the inner loop (make test-fast).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TRAIN = ["train", "digits-lenet5", "--epochs", "2", "--train-size", "400", "--batch-size", "8"]
HEAVY = ("ray", "mlflow", "optuna", "pydantic")
# Runs the CLI, then says which heavy modules the run imported (on stderr, not the terminal).
PROG = (
    "import sys; from sweeps.cli import main; rc = main(sys.argv[1:]); "
    f"print('IMPORTED', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr); "
    "sys.exit(rc)"
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    env["DROPATTACK_THREADS"] = "1"
    return env


def run_in_terminal(*argv: str, prog: str = PROG) -> tuple[int, str, str]:
    """stdout on a pseudo-terminal (what a user's shell gives), stderr on a pipe."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", prog, *argv],
        cwd=REPO, stdout=follower, stderr=subprocess.PIPE, env=_env(),
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=300)
    os.close(leader)
    return rc, b"".join(chunks).decode(errors="replace"), err


def test_a_bar_within_each_epoch_on_a_terminal_then_the_epoch_line():
    rc, out, err = run_in_terminal(*TRAIN)
    assert rc == 0, err[-3000:]
    text = ANSI.sub("", out).replace("\r", "\n")
    # the bar: epoch, batches done of 50 (400 / 8), examples per second, the ETA
    bars = re.findall(r"epoch ([12])/2 .*?(\d+)/50 batches +([\d,]+) ex/s +ETA", text)
    assert {b[0] for b in bars} == {"1", "2"}, text[-2000:]
    assert any(int(b[1]) < 50 for b in bars)  # seen while the epoch ran, not only at its end
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    epoch_lines = [line for line in lines if line.startswith("epoch 1/2  train_loss")]
    assert epoch_lines and lines[-1].startswith("test_acc ")
    assert "IMPORTED []" in err  # torch and tokenizers alone: no Ray, MLflow, Optuna, pydantic


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal-json", "pipe"])
def test_no_bar_with_json_or_off_a_terminal(terminal):
    argv = [*TRAIN[:-2], "--batch-size", "32", *(["--json"] if terminal else [])]
    if terminal:
        rc, out, err = run_in_terminal(*argv)
    else:
        proc = subprocess.run(
            [sys.executable, "-c", PROG, *argv],
            cwd=REPO, capture_output=True, text=True, env=_env(), timeout=300,
        )  # fmt: skip
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    assert rc == 0, err[-3000:]
    assert "ex/s" not in out and "\x1b[" not in out
    lines = out.replace("\r\n", "\n").strip().splitlines()
    assert [line[:9] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"]
    # with --json the record, else the summary: what ran, the data, the test metrics
    assert len(lines) == (3 if terminal else 5), lines


def test_without_rich_a_terminal_gets_the_epoch_lines_only():
    # the GPU image has no rich: ``import rich`` fails there as it does here
    rc, out, err = run_in_terminal(*TRAIN, prog="import sys; sys.modules['rich'] = None; " + PROG)
    assert rc == 0, err[-3000:]
    assert "ex/s" not in out and "batches" not in out
    lines = [line for line in out.replace("\r\n", "\n").splitlines() if line.strip()]
    assert [line[:9] for line in lines] == [
        "epoch 1/2",
        "epoch 2/2",
        "ran digit",
        "data skle",
        "test_acc ",
    ]
