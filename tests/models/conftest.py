"""Shared fixtures: vocabulary caches go to a per-session temporary folder, never to ~/.cache."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dropattack-cache")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, session_cache):
    monkeypatch.setenv("DROPATTACK_CACHE", str(session_cache))
    monkeypatch.delenv("DROPATTACK_DATA", raising=False)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "imdb" / "Train2500.csv").is_file():
        pytest.skip(f"{SHARED_DATA} not found: the shared real data samples are absent")
    return SHARED_DATA
