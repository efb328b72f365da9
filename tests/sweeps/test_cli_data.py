"""``dropattack data list|fetch|check`` against a real HTTP server on 127.0.0.1 standing in for
the public sources (a mirror laid out as ``wget -x`` does), with real files built from the shared
samples; and against a port nobody listens on, as a machine without network sees the sources."""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import json
import socket
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from models.data import DataOptions, load
from models.data.sources import ITEMS
from sweeps.cli import main

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def mirror(tmp_path):
    """(base URL, folder): a real HTTP server serving ``folder`` on 127.0.0.1."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(_Quiet, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


def _put(folder: Path, url: str, data: bytes) -> None:
    """Place ``data`` where a mirror serves ``url`` (host and path under the mirror)."""
    parts = urlsplit(url)
    dest = folder / parts.netloc / parts.path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)


@pytest.fixture
def samples() -> Path:
    if not (SHARED_DATA / "imdb" / "Train2500.csv").is_file():
        pytest.skip(f"{SHARED_DATA} not found: the shared real data samples are absent")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _no_default_data(monkeypatch, tmp_path):
    """A fresh clone: no $DROPATTACK_DATA, no sample folder beside the checkout."""
    monkeypatch.delenv("DROPATTACK_DATA", raising=False)
    monkeypatch.delenv("DROPATTACK_DATA_MIRROR", raising=False)
    monkeypatch.setenv("DROPATTACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("models.data.paths.SAMPLE_DIR", tmp_path / "no-such-folder")


def _serve_samples(folder: Path, samples: Path) -> None:
    for source in ITEMS["samples"].sources:
        _put(folder, source.url, (samples / source.dest).read_bytes())


def _one_error_line(capsys) -> str:
    """The error, one line (progress lines, one per download, may come before it)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("dropattack data: error: ")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    return errors[0]


def test_fetch_samples_writes_the_layout_and_a_manifest_check_verifies(
    mirror, samples, tmp_path, capsys
):
    base, folder = mirror
    _serve_samples(folder, samples)
    out = tmp_path / "data"
    assert main(["data", "fetch", "samples", "--to", str(out), "--mirror", base]) == 0
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    for source in ITEMS["samples"].sources:
        written = out / source.dest
        assert written.read_bytes() == (samples / source.dest).read_bytes()
        assert manifest[source.dest]["sha256"] == source.sha256
        assert manifest[source.dest]["size"] == written.stat().st_size
    capsys.readouterr()
    assert main(["data", "check", "--data-dir", str(out)]) == 0
    checked = capsys.readouterr().out
    assert "imdb-lstm: 1 files" in checked and "agnews-bigru" in checked
    # the loader reads what was fetched
    data = load("imdb", DataOptions(data_dir=str(out), train_size=100))
    assert data.info["embedding_init"] == "random"
    assert str(out) in data.source
    # a changed file fails the check, in one line naming it
    csv_path = out / "agnews" / "val_ag1.csv"
    raw = bytearray(csv_path.read_bytes())
    raw[-2] = ord("3") if raw[-2] != ord("3") else ord("2")
    csv_path.write_bytes(bytes(raw))
    assert main(["data", "check", "--data-dir", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "val_ag1.csv: SHA-256 differs" in line
    csv_path.write_bytes(bytes(raw[:-5]))
    assert main(["data", "check", "--data-dir", str(out), "agnews-bigru"]) == 2
    assert "bytes, the manifest says" in _one_error_line(capsys)


def test_check_names_a_task_whose_data_is_missing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["data", "check", "--data-dir", str(empty), "imdb-lstm"]) == 2
    line = _one_error_line(capsys)
    assert "imdb: no CSV files in" in line and "dropattack data fetch imdb" in line
    assert main(["data", "check", "--data-dir", str(empty)]) == 2
    assert "no task's data is there" in _one_error_line(capsys)


def test_a_pinned_checksum_that_differs_is_refused(mirror, samples, tmp_path, capsys):
    base, folder = mirror
    _serve_samples(folder, samples)
    source = ITEMS["samples"].sources[0]
    _put(folder, source.url, (samples / source.dest).read_bytes() + b"x,0\n")
    assert main(["data", "fetch", "samples", "--to", str(tmp_path / "d"), "--mirror", base]) == 2
    line = _one_error_line(capsys)
    assert f"expected {source.sha256}" in line
    assert not (tmp_path / "d" / source.dest).exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_without_network_fails_in_one_line_naming_the_copy(tmp_path, capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    out = tmp_path / "data"
    assert main(["data", "fetch", "imdb-lstm", "--to", str(out), "--mirror", url]) == 2
    line = _one_error_line(capsys)
    assert "cannot reach" in line and "no network" in line
    assert "copy DIR to" in line and "dropattack data fetch imdb --to DIR" in line
    assert not (out / "imdb").exists() and not (out / "manifest.json").exists()


def test_fetch_refuses_a_bad_mirror_or_target_in_one_line_naming_it(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as e:
        main(["data", "fetch", "samples", "--to", str(tmp_path / "d"), "--mirror", "notaurl"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    assert "argument --mirror: expected an http://, https:// or file:// URL" in err[0]
    with pytest.raises(SystemExit) as e:
        main(["data", "fetch", "samples", "--to", "/proc/dropattack-data"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "argument --to: cannot create" in err[0]
    monkeypatch.setenv("DROPATTACK_DATA_MIRROR", "mirror.example/data")
    assert main(["data", "fetch", "samples", "--to", str(tmp_path / "d")]) == 2
    line = _one_error_line(capsys)
    assert "DROPATTACK_DATA_MIRROR: expected an http://, https:// or file:// URL" in line
    assert not (tmp_path / "d" / "imdb").exists()


def test_fetch_through_the_mirror_variable(mirror, samples, tmp_path, monkeypatch):
    base, folder = mirror
    _serve_samples(folder, samples)
    monkeypatch.setenv("DROPATTACK_DATA_MIRROR", base)
    assert main(["data", "fetch", "samples", "--to", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "imdb" / "Train2500.csv").is_file()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_imdb_archive_becomes_train_valid_test_csv(mirror, samples, tmp_path):
    base, folder = mirror
    with (samples / "imdb" / "Train2500.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:100]
    members = {}
    for i, row in enumerate(rows):
        split = "train" if i % 2 else "test"
        polarity = "pos" if row["label"] == "1" else "neg"
        members[f"aclImdb/{split}/{polarity}/{i}_7.txt"] = row["text"].encode()
    members["aclImdb/train/unsup/0_0.txt"] = b"unlabelled, not read"
    members["aclImdb/README"] = b"readme"
    _put(folder, ITEMS["imdb"].sources[0].url, _tar(members))
    out = tmp_path / "data"
    assert main(["data", "fetch", "imdb", "--to", str(out), "--mirror", base]) == 0
    sizes = {}
    for name in ("Train.csv", "Valid.csv", "Test.csv"):
        with (out / "imdb" / name).open(newline="", encoding="utf-8") as f:
            read = list(csv.DictReader(f))
        sizes[name] = len(read)
        assert all(r["label"] in ("0", "1") for r in read)
    assert sizes == {"Train.csv": 80, "Valid.csv": 10, "Test.csv": 10}
    texts = {r["text"] for r in rows}
    with (out / "imdb" / "Test.csv").open(newline="", encoding="utf-8") as f:
        assert {r["text"] for r in csv.DictReader(f)} <= texts
    first = (out / "imdb" / "Train.csv").read_bytes()
    assert main(["data", "fetch", "imdb", "--to", str(out), "--mirror", base]) == 0
    assert (out / "imdb" / "Train.csv").read_bytes() == first  # the split is seeded
    data = load("imdb", DataOptions(data_dir=str(out)))
    assert data.split == "files" and data.sizes == {"train": 80, "val": 10, "test": 10}


def test_glove_mnist_and_cifar_unpack_safely(mirror, tmp_path):
    base, folder = mirror
    glove = b"the 0.1 0.2 0.3\nmovie 0.4 0.5 0.6\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("glove.6B.50d.txt", b"the 1\n")
        z.writestr("glove.6B.300d.txt", glove)
    _put(folder, ITEMS["glove"].sources[0].url, buf.getvalue())
    for source in ITEMS["mnist"].sources:
        _put(folder, source.url, gzip.compress(source.dest.encode()))
    cifar = {f"cifar-10-batches-py/data_batch_{i}": b"batch" for i in range(1, 6)}
    cifar["cifar-10-batches-py/test_batch"] = b"test"
    cifar["../escaped"] = b"must not be written"
    cifar["other/file"] = b"not kept"
    _put(folder, ITEMS["cifar10"].sources[0].url, _tar(cifar))
    out = tmp_path / "data"
    assert (
        main(["data", "fetch", "glove", "mnist", "cifar10", "--to", str(out), "--mirror", base])
        == 0
    )
    assert (out / "glove" / "glove.6B.300d.txt").read_bytes() == glove
    raw = out / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    assert raw.read_bytes() == b"MNIST/raw/t10k-labels-idx1-ubyte"
    assert (out / "cifar-10-batches-py" / "test_batch").read_bytes() == b"test"
    assert not (tmp_path / "escaped").exists() and not (out / "other").exists()
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert manifest["glove/glove.6B.300d.txt"]["sha256"] == hashlib.sha256(glove).hexdigest()
    assert set(manifest) == {
        "glove/glove.6B.300d.txt",
        *(s.dest for s in ITEMS["mnist"].sources),
        *cifar.keys() - {"../escaped", "other/file"},
    }


def test_list_says_where_each_task_reads_and_what_is_there(mirror, samples, tmp_path, capsys):
    base, folder = mirror
    _serve_samples(folder, samples)
    out = tmp_path / "data"
    assert main(["data", "fetch", "samples", "--to", str(out), "--mirror", base]) == 0
    capsys.readouterr()
    assert main(["data", "list", "--data-dir", str(out), "--json"]) == 0
    rows = {r["task"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["imdb-lstm"]["present"] and rows["imdb-lstm"]["files"] == [
        str(out / "imdb" / "Train2500.csv")
    ]
    assert not rows["mnist-lenet5"]["present"] and rows["mnist-lenet5"]["fetch"] == "mnist"
    assert rows["digits-lenet5"]["present"] and rows["imdb-lstm"]["glove"] is None
    assert main(["data", "list"]) == 0  # a fresh clone: nothing named
    text = capsys.readouterr().out
    assert "imdb-lstm" in text and "missing" in text and "fetch imdb" in text


def test_fetch_refuses_an_unknown_name_in_one_line(tmp_path, capsys):
    assert main(["data", "fetch", "imbd", "--to", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert "unknown 'imbd'" in line and "imdb-lstm" in line and "glove" in line


def test_vectors_glove_uses_the_roots_glove_file_when_present(mirror, samples, tmp_path):
    base, folder = mirror
    _serve_samples(folder, samples)
    out = tmp_path / "data"
    assert main(["data", "fetch", "samples", "--to", str(out), "--mirror", base]) == 0
    options = DataOptions(data_dir=str(out), train_size=100, vectors="glove")
    random_start = load("pheme", options)
    assert random_start.info["embedding_init"] == "random"
    assert "pretrained" not in random_start.model_kwargs
    (out / "glove").mkdir()
    (out / "glove" / "glove.6B.300d.txt").write_text("police 0.5 0.25\nzzqxv 1 2\n")
    glove = load("pheme", options)
    assert glove.info["embedding_init"] == "glove"
    matrix = glove.model_kwargs["pretrained"]
    assert matrix.shape[1] == 2 and glove.info["vectors_found"] == 1


def test_train_says_how_the_embedding_started(mirror, samples, tmp_path, capsys):
    base, folder = mirror
    _serve_samples(folder, samples)
    out = tmp_path / "data"
    assert main(["data", "fetch", "samples", "--to", str(out), "--mirror", base]) == 0
    (out / "glove").mkdir()
    (out / "glove" / "glove.6B.300d.txt").write_text("the 0.5 0.25 1\n")
    capsys.readouterr()
    argv = ["train", "pheme-bilstm", "--method", "standard", "--epochs", "1", "--threads", "1"]
    argv += ["--train-size", "64", "--model-arg", "hidden=4", "--data-dir", str(out)]
    assert main([*argv, "--vectors", "glove"]) == 0
    assert "embedding glove (paper: GloVe)" in capsys.readouterr().out
    assert main(argv) == 0
    assert "embedding random (paper: GloVe)" in capsys.readouterr().out


def test_a_git_lfs_pointer_is_not_taken_for_the_file(mirror, tmp_path, capsys):
    base, folder = mirror
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 10\n"
    _put(folder, ITEMS["pheme"].sources[0].url, pointer)
    assert main(["data", "fetch", "pheme", "--to", str(tmp_path / "d"), "--mirror", base]) == 2
    assert "is a Git LFS pointer, not the file" in _one_error_line(capsys)
    assert not (tmp_path / "d" / "pheme" / "2018_train.csv").exists()
