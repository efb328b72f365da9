"""Word-level tokenisation with Hugging Face ``tokenizers``, close to the authors' pipeline.

The authors lowercase, split with NLTK's ``word_tokenize``, drop punctuation tokens and
English stop words, keep up to 250,000 words and fix every text at 256 tokens. Here:

- lowercase (Python's ``str.lower`` before the tokenizer: ``tokenizers``' ``Lowercase``
  normaliser tracks per-character alignments and doubled the encoding time); pre-tokeniser:
  split on runs of non-word characters, which are removed (so punctuation never becomes a
  token; "don't" gives "don", "t");
- vocabulary: a ``WordLevelTrainer`` counts every word; stop words (scikit-learn's English
  list, no NLTK download) are set aside and the ``max_size`` most frequent remaining words
  (ties alphabetical) get ids ``2..``, after ``[PAD]`` = 0 and ``[UNK]`` = 1;
- encoding: stop words keep ids of their own past the embedding's rows, so one vectorised
  pass over the tokenizer's output drops them *before* truncating to ``max_len`` and padding
  with ``[PAD]``, as the authors' pipeline does.

The vocabulary is built from every text the task loads (train, validation and test, as the
authors' ``build_vocab(train, valid, test)``); :mod:`models.data.tokencache` caches it, keyed by
:func:`cache_key`, a hash of those texts and of this configuration.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer

__all__ = [
    "PAD",
    "PAD_ID",
    "UNK",
    "UNK_ID",
    "Vocabulary",
    "cache_key",
    "stop_words",
    "texts_digest",
]

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
SPLIT_PATTERN = r"[\W_]+"
FORMAT_VERSION = 1


STOP_WORDS_FILE = Path("feature_extraction", "_stop_words.py")


@cache
def stop_words() -> tuple[str, ...]:
    """scikit-learn's English stop words, sorted.

    Read from the module file scikit-learn ships (one ``frozenset`` literal) without importing
    scikit-learn, whose import pulls SciPy and pandas and costs about a second in every trial
    process; falls back to the import if the file moved.
    """
    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or ()) if spec else []
    path = next(
        (Path(f) / STOP_WORDS_FILE for f in folders if (Path(f) / STOP_WORDS_FILE).is_file()), None
    )
    words = None
    if path is not None:
        module_spec = importlib.util.spec_from_file_location("_sklearn_stop_words", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        words = getattr(module, "ENGLISH_STOP_WORDS", None)
    if words is None:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS as words
    return tuple(sorted(words))


class Vocabulary:
    """A trained word-level tokenizer: ``size`` embedding rows, stop words dropped on encode."""

    def __init__(self, tokenizer: Tokenizer, size: int) -> None:
        self.tokenizer = tokenizer
        self.size = size

    def __len__(self) -> int:
        return self.size

    @property
    def words(self) -> list[str]:
        """Token of each embedding row, by id (``[PAD]``, ``[UNK]``, then by frequency)."""
        vocab = self.tokenizer.get_vocab()
        out = [""] * self.size
        for word, i in vocab.items():
            if i < self.size:
                out[i] = word
        return out

    @classmethod
    def build(cls, texts: Sequence[str], max_size: int = 250_000) -> Vocabulary:
        """Count words in ``texts`` and keep the ``max_size`` most frequent non-stop words."""
        if max_size < 1:
            raise ValueError(f"max_vocab: expected a positive integer, got {max_size!r}")
        counter = _base_tokenizer(WordLevel(unk_token=UNK))
        trainer = WordLevelTrainer(
            vocab_size=2**31 - 1, min_frequency=1, special_tokens=[PAD, UNK], show_progress=False
        )
        counter.train_from_iterator(_lower(texts), trainer=trainer, length=len(texts))
        ranked = sorted(
            (i, w) for w, i in counter.get_vocab().items() if w not in (PAD, UNK)
        )  # trainer ids run by frequency, then alphabetically
        stop = set(stop_words())
        kept = [w for _, w in ranked if w not in stop][:max_size]
        vocab = {PAD: PAD_ID, UNK: UNK_ID}
        vocab.update((w, i) for i, w in enumerate(kept, start=2))
        size = len(vocab)
        vocab.update((w, size + i) for i, w in enumerate(stop_words()))
        return cls(_base_tokenizer(WordLevel(vocab, unk_token=UNK)), size)

    def encode(self, texts: Sequence[str], max_len: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Token ids ``(len(texts), max_len)`` (int32, right-padded) and token counts.

        Counts can be 0 for a text made only of stop words and punctuation; the text is kept
        (an all-padding row) and the models read it as one padding token.
        """
        if max_len < 1:
            raise ValueError(f"max_len: expected a positive integer, got {max_len!r}")
        encodings = self.tokenizer.encode_batch_fast(_lower(texts), add_special_tokens=False)
        ids = np.full((len(encodings), max_len), PAD_ID, dtype=np.int32)
        lengths = np.zeros(len(encodings), dtype=np.int64)
        for row, enc in enumerate(encodings):
            tokens = np.asarray(enc.ids, dtype=np.int32)
            tokens = tokens[tokens < self.size][:max_len]
            ids[row, : len(tokens)] = tokens
            lengths[row] = len(tokens)
        return ids, lengths

    def to_json(self) -> str:
        return json.dumps({"size": self.size, "tokenizer": json.loads(self.tokenizer.to_str())})

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        data = json.loads(text)
        return cls(Tokenizer.from_str(json.dumps(data["tokenizer"])), int(data["size"]))


def _lower(texts: Sequence[str]) -> list[str]:
    return [t.lower() for t in texts]


def _base_tokenizer(model: WordLevel) -> Tokenizer:
    """Word splitting and lookup; input must already be lowercase (see the module docstring)."""
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="removed")
    return tok


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 of the texts, in order: what a cached vocabulary was built from."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def cache_key(digest: str, max_size: int) -> str:
    """Key of the vocabulary built from texts with SHA-256 ``digest`` under this configuration."""
    config = {
        "format": FORMAT_VERSION,
        "texts": digest,
        "max_size": max_size,
        "split": SPLIT_PATTERN,
        "lowercase": "str.lower",
        "stop_words": hashlib.sha256("\n".join(stop_words()).encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]
