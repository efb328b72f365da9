"""Where data is looked for: ``--data-dir``, ``$DROPATTACK_DATA``, the offline sample, or the hub.

Resolution order of the data root:

1. the ``data_dir`` argument (``dropattack train --data-dir DIR``);
2. the ``DROPATTACK_DATA`` environment variable;
3. ``../shared/data`` beside the repository checkout, when present: the real samples of the
   authors' files (IMDB 2,500 reviews, PHEME validation/test, AG News validation), the
   offline default for text tasks;
4. none: a task that needs data fails at once with :func:`no_data_message`, which names the
   fix (``dropattack data fetch``, ``--data-dir``); nothing is downloaded unasked.

``data_dir="hf"`` (or ``"hf:<dataset id>"``) asks for Hugging Face ``datasets`` (its local
cache, or the hub unless ``HF_DATASETS_OFFLINE=1``).
Caches (vocabularies) go beside the data when that folder is writable, else to
``$DROPATTACK_CACHE`` (default ``~/.cache/dropattack``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from models.data.errors import DataError

__all__ = ["DATA_ENV", "DataRoot", "SAMPLE_DIR", "cache_dirs", "no_data_message", "resolve_root"]

#: The environment variable naming the data root when no flag or spec does.
DATA_ENV = "DROPATTACK_DATA"

SAMPLE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HF_PREFIX = "hf"


@dataclass(frozen=True)
class DataRoot:
    """A resolved data root: a folder, or Hugging Face (``hf_id`` overrides the dataset's id)."""

    path: Path | None
    hf: bool = False
    hf_id: str | None = None
    origin: str = ""

    def describe(self) -> str:
        if self.hf:
            return f"Hugging Face datasets{f' ({self.hf_id})' if self.hf_id else ''}"
        if self.path is None:
            return self.origin
        return f"{self.path} ({self.origin})"


def resolve_root(data_dir: str | os.PathLike | None) -> DataRoot:
    """Resolve the data root (see the module docstring).

    Raises:
        DataError: an explicitly named folder does not exist.
    """
    if data_dir is not None:
        text = os.fspath(data_dir)
        if text == HF_PREFIX or text.startswith(HF_PREFIX + ":"):
            hf_id = text.partition(":")[2] or None
            return DataRoot(None, hf=True, hf_id=hf_id, origin="--data-dir")
        return DataRoot(_existing(Path(text).expanduser(), "--data-dir"), origin="--data-dir")
    env = os.environ.get(DATA_ENV)
    if env:
        return DataRoot(_existing(Path(env).expanduser(), DATA_ENV), origin=DATA_ENV)
    if SAMPLE_DIR.is_dir():
        return DataRoot(SAMPLE_DIR, origin="offline sample ../shared/data")
    return DataRoot(None, origin="no data folder")


def no_data_message(dataset: str, hf_id: str | None = None) -> str:
    """One line for a dataset with no data folder named: how to get one and name it."""
    return (
        f"{dataset}: no data folder (no --data-dir, spec data_dir or ${DATA_ENV}); fetch it "
        f"with `dropattack data fetch {dataset} --to DIR` (docs/data.md) and pass --data-dir DIR"
        + (" (or --data-dir hf for Hugging Face datasets)" if hf_id else "")
    )


def _existing(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{what}: data folder {path} does not exist or is not a folder")
    return path


def cache_dirs(beside: Path | None) -> list[Path]:
    """Folders to cache in, preferred first: ``beside/.dropattack-cache`` then the user cache.

    A data folder without write permission bits (the read-only ``../shared`` samples) is
    skipped even when the process could write there anyway (root).
    """
    user = Path(os.environ.get("DROPATTACK_CACHE") or Path.home() / ".cache" / "dropattack")
    out = []
    if beside is not None and _writable(beside):
        out.append(beside / ".dropattack-cache")
    out.append(user.expanduser())
    return out


def _writable(folder: Path) -> bool:
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(folder, os.W_OK)
