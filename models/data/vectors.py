"""Pretrained word vectors in GloVe's text format (``word v1 v2 ... vd`` per line).

The paper initialises the embedding with GloVe (``glove.6B.300d.txt``, fine-tuned); the user
names the file (``dropattack train --vectors PATH``, ``$DROPATTACK_VECTORS`` or a spec's
``vectors``), or ``glove``: the data root's ``glove/glove.6B.300d.txt`` (what ``dropattack data
fetch glove`` writes) when it is there, else random embeddings. Words the file lacks get N(0, 1)
vectors, as the authors' ``unk_init=torch.Tensor.normal_``; the padding row is zero. Without a
file the embedding keeps PyTorch's random initialisation. Every text trial records its
embedding start (:func:`embedding_init`: ``glove``, ``pretrained`` or ``random``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from models.data.errors import DataError
from models.data.sources import GLOVE_FILE

__all__ = ["GLOVE", "embedding_init", "load_vectors", "resolve_vectors"]

#: The ``vectors`` value meaning the data root's GloVe file when present.
GLOVE = "glove"


def resolve_vectors(vectors: str | Path | None, root: Path | None) -> Path | None:
    """The vectors file to load: ``None`` (random), a path, or ``glove`` under ``root``."""
    if not vectors:
        return None
    if str(vectors) == GLOVE:
        path = root / GLOVE_FILE if root is not None else None
        return path if path is not None and path.is_file() else None
    return Path(vectors).expanduser()


def embedding_init(path: Path | None) -> str:
    """How an embedding starts: ``glove`` (a GloVe file), ``pretrained`` (another), ``random``."""
    if path is None:
        return "random"
    return GLOVE if path.name.lower().startswith("glove") else "pretrained"


def load_vectors(
    path: str | Path, words: Sequence[str], *, seed: int = 0, padding_idx: int = 0
) -> tuple[torch.Tensor, int]:
    """An embedding matrix for ``words`` (row i = vector of ``words[i]``).

    Returns:
        The ``(len(words), dim)`` float32 matrix and how many words the file had.

    Raises:
        DataError: the file is missing, empty, not UTF-8, or a line has the wrong number of
            values (named by line number).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"vectors: file {path} does not exist (expected GloVe text format)")
    index = {w: i for i, w in enumerate(words) if w}
    found: dict[int, np.ndarray] = {}
    dim = None
    try:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if dim is None:
                    dim = len(parts) - 1
                    if dim < 1:
                        raise DataError(
                            f"vectors: {path}:{lineno}: expected 'word v1 ... vd', "
                            f"got {line[:80]!r}"
                        )
                if len(parts) < dim + 1:
                    raise DataError(
                        f"vectors: {path}:{lineno}: expected a word and {dim} values "
                        f"(the first line's dimension), got {len(parts) - 1} values"
                    )
                word = " ".join(parts[:-dim])  # a few GloVe releases have words with spaces
                i = index.get(word)
                if i is None or i in found:
                    continue
                try:
                    found[i] = np.asarray(parts[-dim:], dtype=np.float32)
                except ValueError:
                    raise DataError(
                        f"vectors: {path}:{lineno}: non-numeric value in the vector of {word!r}"
                    ) from None
    except UnicodeDecodeError as e:
        raise DataError(f"vectors: {path}: not UTF-8 text ({e})") from None
    if dim is None:
        raise DataError(f"vectors: {path} is empty (expected GloVe text format)")
    gen = torch.Generator().manual_seed(seed)
    matrix = torch.randn(len(words), dim, generator=gen)
    if found:
        rows = torch.tensor(list(found), dtype=torch.long)
        matrix[rows] = torch.from_numpy(np.stack(list(found.values())))
    matrix[padding_idx] = 0.0
    return matrix, len(found)
