"""The stop-word list is scikit-learn's, read without importing scikit-learn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from models.data.vocab import stop_words

ROOT = Path(__file__).resolve().parents[2]


def test_stop_words_equal_scikit_learns_list():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    assert stop_words() == tuple(sorted(ENGLISH_STOP_WORDS))


def test_reading_stop_words_does_not_import_scikit_learn():
    code = (
        "import sys; from models.data.vocab import stop_words; n = len(stop_words()); "
        "print(n, sorted(m for m in ('sklearn', 'scipy', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split(maxsplit=1) == ["318", "[]\n"], out.stdout
