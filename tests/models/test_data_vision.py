"""Image data: scikit-learn digits, and MNIST / CIFAR-10 files written in their real formats."""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.data import DataError, DataOptions, load, read_cifar_batch
from models.data.vision import digits_arrays


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """MNIST's IDX format: big-endian magic 2051/2049, dimensions, then uint8 data."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes()
    )
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes()
    )


def make_mnist(root: Path, n_train: int = 60, n_test: int = 12, bad_label: bool = False):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    train_y = np.arange(n_train) % 10
    if bad_label:
        train_y[5] = 11
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    write_idx(root / "MNIST" / "raw", "train", train, train_y)
    write_idx(root / "MNIST" / "raw", "t10k", test, np.arange(n_test) % 10)
    return train, test


def write_cifar(folder: Path, per_batch: int = 10) -> dict[str, np.ndarray]:
    """CIFAR-10's Python release: pickled dicts with uint8 'data' (N, 3072) and 'labels'."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch = {"batch_label": name, "labels": list(rng.integers(0, 10, per_batch)), "data": data}
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f)
        out[name] = data
    return out


def test_digits_are_real_upsampled_and_split_80_10_10():
    data = load("digits")
    assert data.sizes == {"train": 1439, "val": 179, "test": 179}
    assert data.train.x.shape == (1439, 1, 28, 28)
    assert sorted(set(data.train.y.tolist())) == list(range(10))
    x = data.transform(data.train.x)
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    again = load("digits")
    torch.testing.assert_close(again.test.x, data.test.x)


def test_digits_file_reader_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.datasets").load_digits()
    images, labels = digits_arrays()
    np.testing.assert_array_equal(images, sk.images)
    np.testing.assert_array_equal(labels, sk.target)
    assert labels.dtype == np.int64


def test_mnist_reads_idx_files_through_torchvision(tmp_path):
    train, test = make_mnist(tmp_path)
    data = load("mnist", DataOptions(data_dir=str(tmp_path)))
    assert data.sizes == {"train": 50, "val": 10, "test": 12}  # 60 in Table 1's 5:1, fixed test
    assert data.split == "proportional+fixed test"
    torch.testing.assert_close(data.test.x[:, 0], torch.from_numpy(test))
    assert data.test.y.tolist() == [i % 10 for i in range(12)]
    pool = {tuple(r.flatten().tolist()[:20]) for r in torch.cat([data.train.x, data.val.x])}
    assert pool == {tuple(r.flatten().tolist()[:20]) for r in torch.from_numpy(train)}
    batches = data.batches("train", 8, seed=2)
    first = torch.from_numpy(batches.batch_indices(0)[0])
    x, y = next(iter(batches))
    torch.testing.assert_close(x, (data.train.x[first].float() / 255 - 0.1307) / 0.3081)
    assert torch.equal(y, data.train.y[first])


def test_mnist_missing_files_and_bad_labels_are_named(tmp_path):
    with pytest.raises(DataError, match=r"MNIST/raw lacks train-images-idx3-ubyte.*--download"):
        load("mnist", DataOptions(data_dir=str(tmp_path)))
    make_mnist(tmp_path, bad_label=True)
    with pytest.raises(DataError, match="train: label 11 at index 5 is outside 0..9"):
        load("mnist", DataOptions(data_dir=str(tmp_path)))


def test_mnist_train_size_subsets_nest(tmp_path):
    make_mnist(tmp_path)
    small = load("mnist", DataOptions(data_dir=str(tmp_path), train_size=10))
    large = load("mnist", DataOptions(data_dir=str(tmp_path), train_size=30))
    torch.testing.assert_close(large.train.x[:10], small.train.x)


def test_cifar10_reads_the_pickle_batches(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    data = load("cifar10", DataOptions(data_dir=str(tmp_path)))
    assert data.sizes == {"train": 40, "val": 10, "test": 10}  # 50 in Table 1's 4:1
    torch.testing.assert_close(
        data.test.x, torch.from_numpy(written["test_batch"].reshape(10, 3, 32, 32))
    )
    x, y = next(iter(data.batches("test", 4)))
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (data.test.x[:4].float() / 255 - mean) / std)
    assert y.dtype == torch.long


def test_cifar10_bad_or_missing_batches_are_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    with pytest.raises(DataError, match="lacks data_batch_1.*--download"):
        load("cifar10", DataOptions(data_dir=str(tmp_path)))
    write_cifar(folder)
    with (folder / "data_batch_3").open("wb") as f:
        pickle.dump({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}, f)
    with pytest.raises(DataError, match=r"data_batch_3: field 'data' is uint8 \(4, 100\)"):
        load("cifar10", DataOptions(data_dir=str(tmp_path)))
    with (folder / "data_batch_3").open("wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, f)
    with pytest.raises(DataError, match="label 10 at index 1 is outside 0..9"):
        read_cifar_batch(folder / "data_batch_3")
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a readable CIFAR-10 pickle batch"):
        read_cifar_batch(folder / "data_batch_3")


def py2_cifar_batch(data: np.ndarray, labels: list[int], label: str) -> bytes:
    """A batch byte for byte as the official release wrote it: Python 2 ``cPickle`` protocol 2,
    ``str`` keys, the array through ``numpy.core.multiarray._reconstruct`` with its pixels as
    one Python 2 string."""

    def text(value: str | bytes) -> bytes:  # a Python 2 str: SHORT_BINSTRING or BINSTRING
        raw = value if isinstance(value, bytes) else value.encode()
        return (
            b"U" + bytes([len(raw)]) + raw
            if len(raw) < 256
            else b"T" + struct.pack("<i", len(raw)) + raw
        )

    def integer(n: int) -> bytes:
        return b"K" + bytes([n]) if n < 256 else b"M" + struct.pack("<H", n)

    n = data.shape[0]
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + integer(0) + b"\x85"
        + text("b") + b"\x87R(" + integer(1) + integer(n) + integer(3072) + b"\x86"
        + b"cnumpy\ndtype\n" + text("u1") + integer(0) + integer(1) + b"\x87R("
        + integer(3) + text("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff" + integer(0)
        + b"tb\x89" + text(data.tobytes()) + b"tb"
    )  # fmt: skip
    names = b"".join(text(f"image_{i}.png") for i in range(n))
    return (
        b"\x80\x02}(" + text("data") + array
        + text("labels") + b"](" + b"".join(integer(v) for v in labels) + b"e"
        + text("batch_label") + text(label) + text("filenames") + b"](" + names + b"eu."
    )  # fmt: skip


def test_cifar10_reads_the_official_python2_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(2)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        written[name] = rng.integers(0, 256, (10, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, 10)]
        (folder / name).write_bytes(py2_cifar_batch(written[name], labels, f"batch {name}"))
    data = load("cifar10", DataOptions(data_dir=str(tmp_path)))
    assert data.sizes == {"train": 40, "val": 10, "test": 10}
    torch.testing.assert_close(
        data.test.x, torch.from_numpy(written["test_batch"].reshape(10, 3, 32, 32))
    )


class _RunsCode:
    """Pickles as a call to ``exec`` that creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').close()",))


@pytest.mark.parametrize("planted", ["builtins.exec", "os.system"])
def test_cifar10_refuses_a_pickle_that_would_run_code(tmp_path, planted):
    """A planted batch in a shared data folder: refused with the file's name, nothing runs."""
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    marker = tmp_path / "ran"
    if planted == "builtins.exec":
        payload = pickle.dumps({"data": _RunsCode(marker), "labels": [0]})
    else:
        payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    pickle.loads(payload)  # the payload is live: plain pickle runs it
    assert marker.exists()
    marker.unlink()
    (folder / "data_batch_2").write_bytes(payload)
    with pytest.raises(DataError) as info:
        load("cifar10", DataOptions(data_dir=str(tmp_path)))
    message = str(info.value)
    assert message.startswith(f"{folder / 'data_batch_2'}: ")
    assert f"refused global {planted}" in message
    assert not marker.exists()


def test_image_tasks_need_a_local_folder():
    with pytest.raises(DataError, match="needs a local folder"):
        load("mnist", DataOptions(data_dir="hf"))


class _DtypeState:
    """Pickles as ``numpy.dtype(code)`` whose BUILD state holds ``fields`` that are no dtypes:
    numpy's ``__setstate__`` takes it (a crash, or object flags back on a ``V8`` dtype)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        fields = {"a": (12345, 0), "b": ("not a dtype", 4)}
        return (np.dtype, (self.code, False, True), (3, "|", None, ("a", "b"), fields, 8, 1, 63))


class _BuildOnDict:
    def __reduce__(self):
        return (dict, (), {"__class__": "x"})


CRAFTED = {
    "void-dtype-fields": lambda: {"data": _DtypeState("V8"), "labels": [0]},
    "u1-dtype-fields": lambda: {"data": _DtypeState("u1"), "labels": [0]},
    "object-array": lambda: {"data": np.array([object()], dtype=object), "labels": [0]},
    "build-on-dict": lambda: {"data": _BuildOnDict(), "labels": [0]},
}


@pytest.mark.parametrize("crafted", sorted(CRAFTED))
def test_cifar10_crafted_numpy_state_is_a_one_line_data_error(tmp_path, crafted):
    """No route from a batch file to anything but plain arrays: numpy's own unpickling code
    never sees the file's dtype or array states, so a crafted state gives one line, no crash."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(CRAFTED[crafted](), protocol=2))
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from models.data import DataError, read_cifar_batch\n"
        "try:\n"
        "    read_cifar_batch(Path(sys.argv[1]))\n"
        "except DataError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    print('loaded')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: not a readable CIFAR-10"), lines
