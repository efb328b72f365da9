"""docs/spec.md is the spec model's reference: generated from it, and equal to it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sweeps.specs import reference
from sweeps.specs.spec import Range, Resources, Search, SeedRounds, Spec, TrialFields

ROOT = Path(__file__).resolve().parents[2]


def test_docs_spec_md_is_the_generated_reference() -> None:
    text = reference.DOC.read_text(encoding="utf-8")
    assert text == reference.render(), "docs/spec.md is stale: python -m sweeps.specs.reference"


def test_every_field_is_listed_and_explained() -> None:
    text = reference.render()
    for section, model in (("spec", Spec), ("trial", TrialFields), ("search", Search),
                           ("resources", Resources), ("range", Range),
                           ("seeds", SeedRounds)):  # fmt: skip
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            assert re.search(rf"^\| `{name}` \|", text, re.M), name
            assert reference.MEANING.get(f"{section}.{name}"), f"{section}.{name} unexplained"
    assert "## paper_table" in text and "baseline rule" in text


def test_the_check_fails_on_a_stale_file(tmp_path: Path, monkeypatch) -> None:
    stale = tmp_path / "spec.md"
    stale.write_text(reference.render().replace("`gpus`", "`gpu`"))
    monkeypatch.setattr(reference, "DOC", stale)
    assert reference.main(["--check"]) == 1
    assert reference.main([]) == 0 and reference.main(["--check"]) == 0


def test_python_dash_m_checks_the_shipped_file() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps.specs.reference", "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
