"""Print the project's requirements from ``pyproject.toml``: its dependencies plus the named
optional groups (``python docker/requirements.py server``). The Dockerfile installs them
before copying the code, so a code change does not reinstall every dependency."""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib


def requirements(pyproject: Path, groups: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [g for g in groups if g not in optional]
    if unknown:
        raise SystemExit(f"{pyproject}: no optional-dependencies group {', '.join(unknown)}")
    return list(project["dependencies"]) + [r for g in groups for r in optional[g]]


if __name__ == "__main__":
    print("\n".join(requirements(Path("pyproject.toml"), sys.argv[1:])))
