"""Text datasets: the authors' CSV files or Hugging Face ``datasets``, tokenised and split.

CSV layout (the authors' repository): header ``text,label`` (IMDB, AG News) or
``eid,text,label`` (PHEME); labels are integers ``0..classes-1``. Per dataset folder
(``<data dir>/imdb``, ``pheme``, ``agnews``, or the data dir itself) the loader looks for one
file per role, first name found wins:

========  ==========================================  ====================  ===================
dataset   train                                       validation            test
========  ==========================================  ====================  ===================
imdb      Train.csv, train.csv, Train2500.csv,        Valid.csv, valid.csv  Test.csv, test.csv
          Train1000.csv, Train500.csv
pheme     2018_train.csv, train.csv                   2018_val.csv, val.csv 2018_test.csv, ...
agnews    train_ag1.csv, train.csv                    val_ag1.csv, val.csv  test_ag1.csv, ...
========  ==========================================  ====================  ===================

Splits: with all three files (or dataset splits), they are used as given. With a test set
and training data but not both of the others, the training data (with a validation file, if
any) is split into training and validation (seeded) and the test set is kept. Otherwise (the
offline samples have no training file) everything found is pooled and split three ways.
Seeded splits have Table 1's sizes when the pool has exactly that many examples (IMDB
40,000/5,000/5,000 from Hugging Face's 25,000 + 25,000; AG News 110,000/10,000 from its
120,000 training examples, with its 7,600 test examples) and Table 1's proportions otherwise.

A folder written by ``datasets``' ``save_to_disk`` (``dataset_dict.json``) in the dataset
folder is read with ``load_from_disk``; ``--data-dir hf`` loads the dataset id from the
Hugging Face cache or hub (``HF_DATASETS_OFFLINE=1`` keeps it offline). Of IMDB's Hugging
Face splits, ``train`` and ``test`` are pooled; the unlabelled ``unsupervised`` split has no
labels to train or evaluate on and is not read.
"""

from __future__ import annotations

import csv
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.data.batches import Split
from models.data.errors import DataError
from models.data.paths import DataRoot, cache_dirs, no_data_message, resolve_root
from models.data.splits import nested_subset, split_pool
from models.data.taskdata import DataOptions, TaskData
from models.data.tokencache import tokenise
from models.data.vectors import embedding_init, load_vectors, resolve_vectors
from models.data.vocab import PAD_ID

__all__ = [
    "TEXT_DATASETS",
    "TextDataset",
    "TextTable",
    "load_text",
    "quiet_hub_retries",
    "read_csv",
    "text_files",
]

ROLES = ("train", "val", "test")


@dataclass(frozen=True)
class TextDataset:
    """A text dataset: its file layout, classes, Table 1 sizes and Hugging Face source."""

    name: str
    folder: str
    columns: tuple[str, ...]
    num_classes: int
    files: dict[str, tuple[str, ...]]
    paper_sizes: tuple[int, int, int]
    hf_id: str | None = None
    hf_pool: tuple[str, ...] = ()
    hf_test: str | None = None


@dataclass
class TextTable:
    """Texts and integer labels read from one file or dataset split."""

    source: str
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


TEXT_DATASETS = {
    "imdb": TextDataset(
        "imdb",
        "imdb",
        ("text", "label"),
        2,
        {
            "train": ("Train.csv", "train.csv", "Train2500.csv", "Train1000.csv", "Train500.csv"),
            "val": ("Valid.csv", "valid.csv", "val.csv"),
            "test": ("Test.csv", "test.csv"),
        },
        (40_000, 5_000, 5_000),
        hf_id="stanfordnlp/imdb",
        hf_pool=("train", "test"),
    ),
    "pheme": TextDataset(
        "pheme",
        "pheme",
        ("eid", "text", "label"),
        2,
        {
            "train": ("2018_train.csv", "train.csv"),
            "val": ("2018_val.csv", "val.csv"),
            "test": ("2018_test.csv", "test.csv"),
        },
        (5_145, 643, 637),
    ),
    "agnews": TextDataset(
        "agnews",
        "agnews",
        ("text", "label"),
        4,
        {
            "train": ("train_ag1.csv", "train.csv"),
            "val": ("val_ag1.csv", "val.csv"),
            "test": ("test_ag1.csv", "test.csv"),
        },
        (110_000, 10_000, 7_600),
        hf_id="fancyzhx/ag_news",
        hf_pool=("train",),
        hf_test="test",
    ),
}


def read_csv(path: Path, columns: Sequence[str], num_classes: int) -> TextTable:
    """Read one CSV in the authors' layout, checking every row.

    Raises:
        DataError: missing file, wrong header, a row with missing or extra fields, an empty
            text, or a label that is not an integer in ``0..num_classes-1`` (file and line named).
    """
    if not path.is_file():
        raise DataError(f"{path}: file does not exist")
    csv.field_size_limit(sys.maxsize)
    table = TextTable(str(path))
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header] != list(columns):
                raise DataError(
                    f"{path}: columns {header}; expected {list(columns)} (the authors' layout)"
                )
            names = [h.strip() for h in header]
            text_col, label_col = names.index("text"), names.index("label")
            for row in reader:
                line = reader.line_num
                if len(row) != len(columns):
                    raise DataError(
                        f"{path}:{line}: {len(row)} fields; "
                        f"expected {len(columns)} ({', '.join(columns)})"
                    )
                table.texts.append(_check_text(row[text_col], f"{path}:{line}"))
                table.labels.append(_check_label(row[label_col], num_classes, f"{path}:{line}"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV ({e})") from None
    if not table.labels:
        raise DataError(f"{path}: no rows after the header")
    return table


def _check_text(text: object, where: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: field 'text' is empty; expected a non-empty text")
    return text


_LABEL = re.compile(r"-?[0-9]{1,9}")  # ASCII digits only: str.isdigit() accepts '²'


def _check_label(value: object, num_classes: int, where: str) -> int:
    label = None
    if isinstance(value, str) and _LABEL.fullmatch(value.strip()):
        label = int(value.strip())
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        label = int(value)
    if label is None or not 0 <= label < num_classes:
        raise DataError(
            f"{where}: field 'label' is {value!r}; expected an integer in 0..{num_classes - 1}"
        )
    return label


def find_tables(spec: TextDataset, root: DataRoot) -> tuple[dict[str, TextTable], Path | None]:
    """The dataset's tables by role (``train``/``val``/``test``/``pool``), and their folder.

    Raises:
        DataError: nothing found (the message lists where and what was looked for).
    """
    if root.hf:
        return _hf_tables(spec, root.hf_id or spec.hf_id), None
    if root.path is None:
        raise DataError(no_data_message(spec.name, spec.hf_id))
    folder, found = text_files(spec, root.path)
    if found is None:
        return _saved_tables(spec, folder), folder
    if found:
        return {r: read_csv(p, spec.columns, spec.num_classes) for r, p in found.items()}, folder
    looked = ", ".join(n for names in spec.files.values() for n in names)
    raise DataError(
        f"{spec.name}: no data in {root.path / spec.folder} or {root.path} ({root.origin}); "
        f"expected the authors' CSV files ({looked}) or a datasets save_to_disk folder "
        f"(`dropattack data fetch {spec.name} --to DIR` writes them; docs/data.md)"
        + (f", or --data-dir hf to load {spec.hf_id} from Hugging Face" if spec.hf_id else "")
    )


def text_files(spec: TextDataset, path: Path) -> tuple[Path, dict[str, Path] | None]:
    """The folder a text dataset is read from under data root ``path`` and its files by role.

    ``None`` for the files: the folder is a ``datasets`` ``save_to_disk`` folder. ``{}``:
    nothing found (the folder returned is the dataset's own, ``path/<folder>``).
    """
    for folder in (path / spec.folder, path):
        if (folder / "dataset_dict.json").is_file():
            return folder, None
        found = {}
        for role in ROLES:
            for name in spec.files[role]:
                if (folder / name).is_file():
                    found[role] = folder / name
                    break
        if found:
            return folder, found
    return path / spec.folder, {}


def _hf_tables(spec: TextDataset, hf_id: str | None) -> dict[str, TextTable]:
    if hf_id is None:
        raise DataError(
            f"{spec.name}: not on Hugging Face datasets; "
            "pass --data-dir with the authors' CSV files"
        )
    import datasets  # heavy; only this path needs it

    try:
        with quiet_hub_retries():
            ds = datasets.load_dataset(hf_id)
    except Exception as e:  # datasets raises many types for offline/missing/unreachable
        raise DataError(
            f"{spec.name}: could not load {hf_id!r} with Hugging Face datasets "
            f"(not in the local cache and the hub unreachable or offline?): {e}; without the "
            f"hub, fetch the files with `dropattack data fetch {spec.name} --to DIR` and pass "
            "--data-dir DIR (docs/data.md)"
        ) from None
    return _dict_tables(spec, ds, hf_id)


@contextmanager
def quiet_hub_retries() -> Iterator[None]:
    """Keep the Hugging Face hub client's retry warnings (two lines a retry, five retries
    when the hub is unreachable) off stderr: the failure is reported once, as a DataError."""
    hub = logging.getLogger("huggingface_hub")
    level = hub.level
    hub.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub.setLevel(level)


def _saved_tables(spec: TextDataset, folder: Path) -> dict[str, TextTable]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(folder))
    except Exception as e:  # corrupt or incompatible save
        raise DataError(f"{folder}: not a readable datasets save_to_disk folder: {e}") from None
    return _dict_tables(spec, ds, str(folder))


def _dict_tables(spec: TextDataset, ds, origin: str) -> dict[str, TextTable]:
    names = list(ds.keys())
    if all(r in names for r in ROLES):
        roles = {r: r for r in ROLES}
    elif spec.hf_pool and all(s in names for s in spec.hf_pool):
        roles = {f"pool{i}": s for i, s in enumerate(spec.hf_pool)}
        if spec.hf_test and spec.hf_test in names:
            roles["test"] = spec.hf_test
    else:
        raise DataError(
            f"{origin}: splits {names}; expected {list(ROLES)}"
            + (f" or {list(spec.hf_pool)}" if spec.hf_pool else "")
        )
    out = {}
    for role, split in roles.items():
        part = ds[split]
        missing = [c for c in ("text", "label") if c not in part.column_names]
        if missing:
            raise DataError(
                f"{origin} split {split!r}: columns {part.column_names}; "
                "expected 'text' and 'label'"
            )
        table = TextTable(f"{origin}[{split}]")
        for i, (text, label) in enumerate(zip(part["text"], part["label"], strict=True)):
            where = f"{origin}[{split}] row {i}"
            table.texts.append(_check_text(text, where))
            table.labels.append(_check_label(label, spec.num_classes, where))
        if not table.labels:
            raise DataError(f"{origin} split {split!r}: no rows")
        out[role] = table
    return out


def load_text(name: str, options: DataOptions) -> TaskData:
    """Load text dataset ``name``: read, tokenise (cached vocabulary), split, subset.

    Raises:
        DataError: missing or malformed data, or a ``train_size`` the data cannot give.
    """
    spec = TEXT_DATASETS[name]
    root = resolve_root(options.data_dir)
    tables, folder = find_tables(spec, root)
    order = [r for r in tables if r != "test"] + (["test"] if "test" in tables else [])
    texts = [t for r in order for t in tables[r].texts]
    labels = np.array([y for r in order for y in tables[r].labels], dtype=np.int64)
    tok = tokenise(texts, options.max_vocab, options.max_len, cache_dirs(folder))
    vocab, ids, lengths = tok.vocab, tok.ids, tok.lengths
    offsets = np.cumsum([0] + [len(tables[r]) for r in order])
    rows = {r: np.arange(a, b) for r, a, b in zip(order, offsets[:-1], offsets[1:], strict=True)}
    parts, mode = _split_rows(spec, rows, options.split_seed)
    parts["train"] = nested_subset(parts["train"], options.train_size, spec.name)
    every = Split(torch.from_numpy(ids), torch.from_numpy(labels), torch.from_numpy(lengths))
    model_kwargs: dict = {"vocab_size": len(vocab), "padding_idx": PAD_ID}
    info = {
        "vocab_size": len(vocab),
        "vocab_cache": str(tok.cache) if tok.cache else None,
        "vocab_cache_hit": tok.hit,
        "empty_after_tokenising": int((lengths == 0).sum()),
        "at_max_len": int((lengths == options.max_len).sum()),
        "data_root": root.describe(),
    }
    vectors = resolve_vectors(options.vectors, root.path)
    info["embedding_init"] = embedding_init(vectors)
    if vectors is not None:
        matrix, covered = load_vectors(vectors, vocab.words, padding_idx=PAD_ID)
        model_kwargs["pretrained"] = matrix
        info.update(vectors=str(vectors), vectors_found=covered)
    return TaskData(
        train=every.subset(parts["train"]),
        val=every.subset(parts["val"]),
        test=every.subset(parts["test"]),
        num_classes=spec.num_classes,
        split=mode,
        source="; ".join(tables[r].source for r in order),
        model_kwargs=model_kwargs,
        info=info,
        transform=_to_long,
    )


def _split_rows(
    spec: TextDataset, rows: dict[str, np.ndarray], seed: int
) -> tuple[dict[str, np.ndarray], str]:
    """Train/val/test row indices by the rules of the module docstring."""
    if all(r in rows for r in ROLES):
        return {r: rows[r] for r in ROLES}, "files"
    train, val, test = spec.paper_sizes
    if "test" in rows and any(r in rows for r in ("train", "pool0")):
        pool = np.concatenate([rows[r] for r in rows if r != "test"])
        (tr, va), mode = split_pool(len(pool), (train, val), seed, spec.name)
        return {"train": pool[tr], "val": pool[va], "test": rows["test"]}, f"{mode}+fixed test"
    pool = np.concatenate(list(rows.values()))
    (tr, va, te), mode = split_pool(len(pool), (train, val, test), seed, spec.name)
    return {"train": pool[tr], "val": pool[va], "test": pool[te]}, mode


def _to_long(x: torch.Tensor) -> torch.Tensor:
    return x.long()
