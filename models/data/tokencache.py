"""A cache of tokenised text: the vocabulary (tokenizer JSON) and the encoded ids, by hash.

Tokenising IMDB's 50,000 reviews takes seconds that every trial of a sweep would repeat, so the
result is saved beside the data (or in the user cache, see :func:`models.data.paths.cache_dirs`)
as ``vocab-<key>.json`` and ``ids-<key>-<max_len>.npz``, where ``key`` hashes the texts and the
tokeniser configuration (:func:`models.data.vocab.cache_key`). Any change to the texts gives a
new key; a corrupt entry is rebuilt and overwritten.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data.vocab import Vocabulary, cache_key, texts_digest

__all__ = ["Tokenised", "tokenise"]


@dataclass
class Tokenised:
    """Texts as ids ``(N, max_len)`` (int32, right-padded) and token counts, with their vocabulary.

    ``cache`` is the vocabulary's cache file (``None`` if no folder was writable); ``hit`` says
    whether vocabulary and ids came from the cache.
    """

    vocab: Vocabulary
    ids: np.ndarray
    lengths: np.ndarray
    cache: Path | None
    hit: bool


def tokenise(texts: Sequence[str], max_size: int, max_len: int, dirs: Sequence[Path]) -> Tokenised:
    """Vocabulary and ids of ``texts``: from the first cache folder that has them, else built."""
    key = cache_key(texts_digest(texts), max_size)
    vocab_name, ids_name = f"vocab-{key}.json", f"ids-{key}-{max_len}.npz"
    for folder in dirs:
        try:
            vocab = Vocabulary.from_json((folder / vocab_name).read_text(encoding="utf-8"))
            with np.load(folder / ids_name, allow_pickle=False) as saved:
                ids, lengths = saved["ids"], saved["lengths"]
        except (OSError, ValueError, KeyError):
            continue  # absent or corrupt: try the next folder, else rebuild
        if ids.shape == (len(texts), max_len) and lengths.shape == (len(texts),):
            return Tokenised(vocab, ids, lengths, folder / vocab_name, True)
    vocab = Vocabulary.build(texts, max_size)
    ids, lengths = vocab.encode(texts, max_len)
    for folder in dirs:
        saved_vocab = _write_atomic(folder, vocab_name, lambda f: f.write(vocab.to_json().encode()))
        if saved_vocab is not None:
            _write_atomic(folder, ids_name, lambda f: np.savez(f, ids=ids, lengths=lengths))
            return Tokenised(vocab, ids, lengths, saved_vocab, False)
    return Tokenised(vocab, ids, lengths, None, False)


def _write_atomic(folder: Path, name: str, write: Callable) -> Path | None:
    """Write through a temporary file and rename, so readers never see half a file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return None
    return folder / name
