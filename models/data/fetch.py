"""Download datasets from their public sources into a data root, with a checksum manifest.

:func:`fetch` downloads each :class:`~models.data.sources.Source` of the named items, checks
a pinned SHA-256 where there is one, unpacks it into the layout the loaders read and records
every file written in ``<root>/manifest.json`` (size and SHA-256), which
:func:`models.data.inventory.check_files` verifies offline. Without network it fails in one
line that says how to copy the files by hand.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from models.data.errors import DataError
from models.data.sources import ITEMS, Source, mirrored

__all__ = [
    "MANIFEST",
    "MIRROR_ENV",
    "MIRROR_SCHEMES",
    "FetchError",
    "fetch",
    "file_sha256",
    "read_manifest",
]

MANIFEST = "manifest.json"
MIRROR_ENV = "DROPATTACK_DATA_MIRROR"
#: The URL schemes a mirror may use (``urllib`` reads them all).
MIRROR_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 20
_TIMEOUT = 30.0
_IMDB_SIZES = (40_000, 5_000, 5_000)
_IMDB_SEED = 0
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


class FetchError(DataError):
    """A source that cannot be reached or does not hold what was expected."""


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(root: Path) -> dict[str, dict]:
    """``{relative path: {size, sha256, item, source}}`` from ``root/manifest.json`` ({} if none).

    Raises:
        DataError: the manifest is not the JSON :func:`fetch` writes.
    """
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not isinstance(files, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise DataError(f'{path}: not a data manifest (expected {{"files": {{...}}}})') from None
    return files


def fetch(
    items: Iterable[str],
    to: str | os.PathLike,
    *,
    mirror: str | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """Download ``items`` (names of :data:`~models.data.sources.ITEMS`) into ``to``.

    ``mirror`` (default ``$DROPATTACK_DATA_MIRROR``) replaces the sources' hosts. Returns
    the manifest entries written.

    Raises:
        FetchError: a source unreachable (no network), answering an error, or a download
            whose checksum or content is not what was expected.
        ValueError: an unknown item.
    """
    names = list(dict.fromkeys(items))
    unknown = [n for n in names if n not in ITEMS]
    if unknown:
        raise ValueError(f"data: unknown item {unknown[0]!r}; expected one of {', '.join(ITEMS)}")
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or None
        if mirror is not None and urlsplit(mirror).scheme not in MIRROR_SCHEMES:
            raise FetchError(
                f"{MIRROR_ENV}: expected an http://, https:// or file:// URL, got {mirror!r}"
            )
    root = Path(to).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root)
    written: dict[str, dict] = {}
    for name in names:
        for source in ITEMS[name].sources:
            url = mirrored(source.url, mirror)
            if say:
                say(f"{name}: {url}")
            with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
                download = Path(tmp) / "download"
                digest = _download(url, download, name, root)
                with download.open("rb") as f:
                    if f.read(len(_LFS_POINTER)) == _LFS_POINTER:
                        raise FetchError(
                            f"{name}: {url} is a Git LFS pointer, not the file; download it "
                            "from the repository's page and place it as docs/data.md shows"
                        )
                if source.sha256 and digest != source.sha256:
                    raise FetchError(
                        f"{name}: {url} has SHA-256 {digest}, expected {source.sha256} "
                        "(a changed or corrupt file)"
                    )
                for rel in _unpack(source, download, root, url):
                    path = root / rel
                    entry = {
                        "size": path.stat().st_size,
                        "sha256": file_sha256(path),
                        "item": name,
                        "source": source.url,
                    }
                    written[rel] = manifest[rel] = entry
            _write_manifest(root, manifest)
    return written


def _write_manifest(root: Path, files: dict[str, dict]) -> None:
    text = json.dumps({"files": dict(sorted(files.items()))}, indent=1) + "\n"
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(root / MANIFEST)


def _download(url: str, dest: Path, name: str, root: Path) -> str:
    """Stream ``url`` to ``dest``; its SHA-256."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response, dest.open("wb") as f:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                f.write(chunk)
    except urllib.error.HTTPError as e:
        raise FetchError(f"{name}: {url} answered HTTP {e.code} {e.reason}") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as e:
        reason = getattr(e, "reason", None) or e
        raise FetchError(
            f"{name}: cannot reach {url} ({reason}): no network here? On a machine with "
            f"internet run `dropattack data fetch {name} --to DIR`, copy DIR to {root} "
            "(scp, rsync), and check it with `dropattack data check --data-dir "
            f"{root}` (docs/data.md)"
        ) from None
    return digest.hexdigest()


def _unpack(source: Source, download: Path, root: Path, url: str) -> list[str]:
    """Place ``download`` as ``source`` says; the relative paths written."""
    kind = source.unpack
    try:
        if kind == "copy":
            return [_place(download, root, source.dest)]
        if kind == "gunzip":
            return [_write_stream(gzip.open(download, "rb"), root, source.dest)]
        if kind == "unzip":
            with zipfile.ZipFile(download) as z:
                member = _zip_member(z, source.member or "", url)
                return [_write_stream(z.open(member), root, source.dest)]
        if kind == "untar":
            return _untar(download, root, source.member or "", url)
        if kind == "aclimdb":
            return _aclimdb(download, root, source.dest, url)
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as e:
        raise FetchError(f"{url}: not the archive expected ({e})") from None
    raise ValueError(f"unknown unpack kind {kind!r}")


def _place(file: Path, root: Path, rel: str) -> str:
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(file), dest)
    return rel


def _write_stream(stream: io.BufferedIOBase, root: Path, rel: str) -> str:
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with stream, part.open("wb") as f:
        shutil.copyfileobj(stream, f, _CHUNK)
    part.replace(dest)
    return rel


def _zip_member(z: zipfile.ZipFile, name: str, url: str) -> str:
    for member in z.namelist():
        if PurePosixPath(member).name == name:
            return member
    raise FetchError(f"{url}: the zip holds no {name}")


def _safe_parts(name: str) -> tuple[str, ...] | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        return None
    return path.parts


def _untar(download: Path, root: Path, folder: str, url: str) -> list[str]:
    """The regular files under ``folder/`` of a tar archive, nothing else (no links)."""
    out = []
    with tarfile.open(download, "r:*") as tar:
        for member in tar:
            parts = _safe_parts(member.name)
            if not member.isfile() or not parts or parts[0] != folder:
                continue
            rel = "/".join(parts)
            out.append(_write_stream(tar.extractfile(member), root, rel))
    if not out:
        raise FetchError(f"{url}: the archive holds no files under {folder}/")
    return out


_ACL = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")


def _aclimdb(download: Path, root: Path, folder: str, url: str) -> list[str]:
    """Stanford's archive -> ``Train.csv``, ``Valid.csv``, ``Test.csv`` (``text,label``).

    The 50,000 labelled reviews (``pos`` 1, ``neg`` 0), in file-name order, are shuffled with
    a fixed seed and cut at Table 1's 40,000 / 5,000 / 5,000 (proportionally for a smaller
    archive).
    """
    rows: list[tuple[str, str, int]] = []
    with tarfile.open(download, "r:*") as tar:
        for member in tar:
            m = _ACL.search(member.name)
            if not member.isfile() or not m:
                continue
            text = tar.extractfile(member).read().decode("utf-8")
            rows.append((member.name, text, 1 if m.group(2) == "pos" else 0))
    if len(rows) < 3:
        raise FetchError(f"{url}: expected aclImdb/{{train,test}}/{{pos,neg}}/*.txt reviews")
    rows.sort()
    random.Random(_IMDB_SEED).shuffle(rows)
    total = sum(_IMDB_SIZES)
    n_val = max(1, len(rows) * _IMDB_SIZES[1] // total)
    n_test = max(1, len(rows) * _IMDB_SIZES[2] // total)
    cut = len(rows) - n_val - n_test
    out = []
    for name, part in (
        ("Train.csv", rows[:cut]),
        ("Valid.csv", rows[cut : cut + n_val]),
        ("Test.csv", rows[cut + n_val :]),
    ):
        rel = f"{folder}/{name}"
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows((text, label) for _, text, label in part)
        out.append(rel)
    return out
