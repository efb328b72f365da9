"""Dependency floors and image pins sit past published security advisories.

Each entry names an advisory and the first release that fixes it; a floor in pyproject.toml
(or the MinIO pin in docker-compose.yml) below it would let an install pick a vulnerable one.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
#: package -> (advisory, first fixed release)
FIXED = {
    "mlflow": [
        ("GHSA-5cvj-7rg6-jggj", "2.22.4"),
        ("GHSA-r23q-823p-vmf7", "3.8.1"),
    ],
    "cryptography": [("GHSA-537c-gmf6-5ccf", "48.0.1")],
    "ray": [("token authentication (RAY_AUTH_MODE=token)", "2.52")],
}
#: MinIO's privilege escalation GHSA-jjjj-jwhf-8rgr, fixed in this release.
MINIO_FIXED = "RELEASE.2025-10-15T17-29-55Z"


def _floors() -> dict[str, list[Version]]:
    """Each requirement string of pyproject.toml (dependencies and extras) -> its floors."""
    text = (ROOT / "pyproject.toml").read_text()
    found: dict[str, list[Version]] = {}
    for quoted in re.findall(r'"([^"\n]+)"', text):
        try:
            req = Requirement(quoted)
        except InvalidRequirement:
            continue
        lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
        found.setdefault(req.name.lower(), []).append(max(lows) if lows else Version("0"))
    return found


def test_every_floor_is_past_its_advisories():
    floors = _floors()
    for name, advisories in FIXED.items():
        assert name in floors, f"{name} is not a dependency any more: update FIXED"
        for floor in floors[name]:
            for advisory, fixed in advisories:
                assert floor >= Version(fixed), f"{name}>={floor} admits {advisory} (< {fixed})"


def test_minio_pin_is_past_its_advisory():
    compose = (ROOT / "docker-compose.yml").read_text()
    pins = re.findall(r"quay\.io/minio/minio:(RELEASE\.[0-9TZ-]+)", compose)
    assert pins, "no MinIO pin in docker-compose.yml"
    for pin in pins:
        assert pin >= MINIO_FIXED, f"MinIO {pin} predates GHSA-jjjj-jwhf-8rgr ({MINIO_FIXED})"
