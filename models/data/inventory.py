"""What a dataset load will read, found without reading it, and checked against the manifest.

:func:`needs` answers, offline and in milliseconds, which files a loader would open for a
dataset under a data root (or why it cannot load); :func:`check_files` compares files with the
sizes and SHA-256 checksums ``dropattack data fetch`` recorded in ``manifest.json``. The
commands use them before they start anything: ``dropattack data list`` and ``check``, and the
checks ``plan``, ``sweep`` and ``submit`` run before calibrating or queueing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from models.data.errors import DataError
from models.data.fetch import file_sha256, read_manifest
from models.data.paths import no_data_message, resolve_root
from models.data.sources import GLOVE_FILE
from models.data.text import TEXT_DATASETS, text_files
from models.data.vision import CIFAR_DIR, CIFAR_TEST, CIFAR_TRAIN, MNIST_FILES

__all__ = ["Needs", "check_files", "glove_file", "needs"]


@dataclass
class Needs:
    """What loading one dataset from one data root reads.

    Attributes:
        dataset: the dataset's name.
        root: the data root as resolved (``None`` when none is, or for Hugging Face).
        where: where it reads from, in words.
        files: the files it will read (a ``save_to_disk`` folder's files for such folders).
        problem: why it cannot load (one line naming the fix), or ``None``.
        checked: whether the files could be looked at offline (not for Hugging Face).
    """

    dataset: str
    root: Path | None
    where: str
    files: list[Path] = field(default_factory=list)
    problem: str | None = None
    checked: bool = True


def needs(dataset: str, data_dir: str | os.PathLike | None) -> Needs:
    """Which files loading ``dataset`` from ``data_dir`` reads (resolved as the loaders do)."""
    if dataset == "digits":
        return Needs(dataset, None, "scikit-learn's bundled digits (no download)")
    try:
        root = resolve_root(data_dir)
    except DataError as e:
        return Needs(dataset, None, str(data_dir), problem=f"{dataset}: {e}")
    text = TEXT_DATASETS.get(dataset)
    if root.hf:
        if text is not None and (root.hf_id or text.hf_id):
            return Needs(dataset, None, root.describe(), checked=False)
        return Needs(
            dataset,
            None,
            root.describe(),
            problem=f"{dataset}: not on Hugging Face datasets; pass --data-dir DIR with its "
            f"files (`dropattack data fetch {dataset} --to DIR`)",
        )
    if root.path is None:
        hf_id = text.hf_id if text else None
        return Needs(dataset, None, root.describe(), problem=no_data_message(dataset, hf_id))
    fix = f"`dropattack data fetch {dataset} --to {root.path}`"
    if text is not None:
        folder, found = text_files(text, root.path)
        if found is None:
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            return Needs(dataset, root.path, f"{folder} (datasets save_to_disk)", files)
        if not found:
            return Needs(
                dataset,
                root.path,
                str(folder),
                problem=f"{dataset}: no CSV files in {folder} ({root.origin}); expected "
                f"{', '.join(n[0] for n in text.files.values())}; run {fix}",
            )
        return Needs(dataset, root.path, str(folder), list(found.values()))
    if dataset == "mnist":
        folder = root.path / "MNIST" / "raw"
        names = MNIST_FILES
    elif dataset == "cifar10":
        folder = root.path / CIFAR_DIR
        names = (*CIFAR_TRAIN, CIFAR_TEST)
    else:
        raise ValueError(f"dataset: unknown {dataset!r}")
    files = [folder / n for n in names]
    missing = [p.name for p in files if not p.is_file()]
    problem = None
    if missing:
        problem = f"{dataset}: {folder} ({root.origin}) lacks {', '.join(missing)}; run {fix}"
    return Needs(dataset, root.path, str(folder), files, problem)


def glove_file(root: Path | None) -> Path | None:
    """The data root's GloVe file (``vectors: glove``) when it is there."""
    path = root / GLOVE_FILE if root is not None else None
    return path if path is not None and path.is_file() else None


def check_files(root: Path, files: list[Path], *, checksums: bool = True) -> list[str]:
    """Problems of ``files`` against ``root``'s manifest: missing, another size, another
    SHA-256 (with ``checksums``). Files the manifest does not list are checked for presence."""
    manifest = read_manifest(root)
    problems = []
    for path in files:
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            continue
        entry = manifest.get(rel)
        if entry is None:
            continue
        size = path.stat().st_size
        if size != entry.get("size"):
            problems.append(f"{path}: {size} bytes, the manifest says {entry.get('size')}")
        elif checksums and file_sha256(path) != entry.get("sha256"):
            problems.append(f"{path}: SHA-256 differs from the manifest's")
    return problems
