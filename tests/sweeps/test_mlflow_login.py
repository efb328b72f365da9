"""A forwarded MLflow login reaches MLflow's requests but never the process environment,
which other processes of a shared uid read from /proc/PID/environ and children inherit."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from sweeps.records import credentials

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import base64, os, subprocess, sys
from mlflow.tracking.request_header.registry import resolve_request_headers
from sweeps.records.tracking import client_for
client_for("http://127.0.0.1:9")
print("ENV_USER", os.environ.get("MLFLOW_TRACKING_USERNAME"))
child = subprocess.run(["cat", "/proc/self/environ"], capture_output=True).stdout
print("CHILD_HAS_PASSWORD", sys.argv[1].encode() in child)
auth = resolve_request_headers()["Authorization"]
print("HEADER", base64.b64decode(auth.removeprefix("Basic ")).decode())
"""


def test_forwarded_login_is_a_header_not_an_environment_variable():
    token, password = secrets.token_urlsafe(32), "fw-" + secrets.token_hex(8)
    sealed = credentials.seal(
        {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": password}, token
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "RAY_AUTH_TOKEN": token,
        credentials.SEALED_ENV: sealed,
        "MLFLOW_TRACKING_USERNAME": "node-sweep-account",  # the node's own, replaced
        "MLFLOW_TRACKING_PASSWORD": "node-pw",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, password], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ENV_USER None" in done.stdout, done.stdout
    assert "CHILD_HAS_PASSWORD False" in done.stdout, done.stdout
    assert f"HEADER alice:{password}" in done.stdout, done.stdout
