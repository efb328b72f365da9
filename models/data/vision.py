"""Image datasets: MNIST and CIFAR-10 from a local root (torchvision formats), scikit-learn digits.

- MNIST: torchvision's ``MNIST`` reads ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}
  -ubyte``; 50,000/10,000 training/validation (seeded) from its 60,000 training images, its
  10,000 test images as test (Table 1). Normalised with mean 0.1307, std 0.3081.
- CIFAR-10: ``<root>/cifar-10-batches-py/data_batch_{1..5}`` and ``test_batch`` (the Python
  pickle release); 40,000/10,000 from the 50,000 training images, 10,000 test. Read here so
  files of any size load (torchvision's reader insists on the release's checksums); torchvision
  downloads them when asked. The pickles are read by :mod:`models.data.cifar_pickle`, a
  pure-Python unpickler that yields only dicts, lists, strings, numbers and numpy arrays made
  from raw bytes with dtypes from a fixed list: the data folder is shared and replayed by
  ``landscape`` and ``confirm``, and a planted pickle must not run code or crash the reader.
  Normalised per channel with the usual mean (0.4914, 0.4822, 0.4465) and std (0.2470,
  0.2435, 0.2616); no augmentation.
- digits: scikit-learn's bundled 8x8 digits (1,797 real images, no download), upsampled
  bilinearly to 28x28 so LeNet-5 sees MNIST's geometry, split 80/10/10 (seeded), normalised with
  the training split's mean and std.

``download=True`` (``dropattack train --download``) lets torchvision fetch MNIST or CIFAR-10
into the root; nothing is downloaded otherwise. Images stay uint8 in memory and are normalised
per batch.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.data.batches import Split
from models.data.cifar_pickle import load_batch
from models.data.errors import DataError
from models.data.paths import no_data_message, resolve_root
from models.data.splits import nested_subset, split_pool
from models.data.taskdata import DataOptions, TaskData

__all__ = [
    "Normalize",
    "digits_arrays",
    "load_cifar10",
    "load_digits",
    "load_mnist",
    "read_cifar_batch",
]

DIGITS_CSV = Path("datasets", "data", "digits.csv.gz")
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"


class Normalize:
    """uint8 (or [0, 1] float) images ``(N, C, H, W)`` -> ``(x / scale - mean) / std``."""

    def __init__(self, mean: list[float], std: list[float], scale: float = 255.0) -> None:
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.scale = scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() / self.scale - self.mean) / self.std


def _assemble(
    name: str,
    pool: Split,
    test: Split | None,
    sizes: tuple[int, ...],
    options: DataOptions,
    source: str,
    transform: Normalize | None,
) -> TaskData:
    if test is None:
        (tr, va, te), mode = split_pool(len(pool), sizes, options.split_seed, name)
        test = pool.subset(te)
    else:
        (tr, va), mode = split_pool(len(pool), sizes[:2], options.split_seed, name)
        mode += "+fixed test"
    tr = nested_subset(tr, options.train_size, name)
    return TaskData(
        train=pool.subset(tr),
        val=pool.subset(va),
        test=test,
        num_classes=10,
        split=mode,
        source=source,
        transform=transform,
    )


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (images ``(1797, 8, 8)`` float64 in 0..16, labels int64).

    Read straight from the ``digits.csv.gz`` that scikit-learn ships (what its
    ``load_digits`` parses), without importing scikit-learn: that import costs about a second
    per process, more than reading the file. Falls back to ``load_digits`` if the file moved.
    """
    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or ()) if spec else []
    path = next((Path(f) / DIGITS_CSV for f in folders if (Path(f) / DIGITS_CSV).is_file()), None)
    if path is None:
        from sklearn.datasets import load_digits as sk_digits

        bunch = sk_digits()
        return bunch.images, bunch.target.astype(np.int64)
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def load_digits(options: DataOptions) -> TaskData:
    """scikit-learn's 8x8 digits at 28x28, split 80/10/10 (see the module docstring)."""
    pixels, labels = digits_arrays()
    images = torch.from_numpy(pixels.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    pool = Split(x, torch.from_numpy(labels))
    data = _assemble("digits", pool, None, (8, 1, 1), options, "sklearn.datasets.load_digits", None)
    mean, std = data.train.x.mean().item(), data.train.x.std().item()
    data.transform = Normalize([mean], [std], scale=1.0)
    return data


def load_mnist(options: DataOptions) -> TaskData:
    """MNIST from ``<root>/MNIST/raw`` via torchvision (see the module docstring)."""
    from torchvision.datasets import MNIST

    root = _vision_root(options, "MNIST")
    raw = root / "MNIST" / "raw"
    missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
    if missing and not options.download:
        raise DataError(
            f"mnist: {raw} lacks {', '.join(missing)} (IDX files); point --data-dir at the "
            f"folder holding MNIST/raw, or add --download to fetch MNIST there"
        )
    try:
        train = MNIST(str(root), train=True, download=options.download)
        test = MNIST(str(root), train=False, download=options.download)
    except (RuntimeError, ValueError, AssertionError) as e:  # torchvision's IDX parse errors
        raise DataError(f"mnist: could not read the IDX files in {raw}: {e}") from None
    pool = _image_split(train.data.unsqueeze(1), train.targets, f"{raw} train")
    fixed = _image_split(test.data.unsqueeze(1), test.targets, f"{raw} t10k")
    return _assemble(
        "mnist", pool, fixed, (50_000, 10_000), options, str(raw), Normalize([0.1307], [0.3081])
    )


def load_cifar10(options: DataOptions) -> TaskData:
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` (see the module docstring)."""
    root = _vision_root(options, "CIFAR-10")
    folder = root / CIFAR_DIR
    missing = [f for f in (*CIFAR_TRAIN, CIFAR_TEST) if not (folder / f).is_file()]
    if missing and options.download:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)
        missing = [f for f in (*CIFAR_TRAIN, CIFAR_TEST) if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"cifar10: {folder} lacks {', '.join(missing)} (the Python pickle batches); point "
            f"--data-dir at the folder holding {CIFAR_DIR}, or add --download to fetch it there"
        )
    parts = [read_cifar_batch(folder / f) for f in CIFAR_TRAIN]
    pool = Split(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    test = Split(*read_cifar_batch(folder / CIFAR_TEST))
    norm = Normalize([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
    return _assemble("cifar10", pool, test, (40_000, 10_000), options, str(folder), norm)


def read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 pickle batch -> uint8 images ``(N, 3, 32, 32)`` and int64 labels.

    Raises:
        DataError: not a CIFAR-10 batch (keys, shapes, dtype or labels wrong).
    """
    try:
        batch = load_batch(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            KeyError, IndexError, RecursionError, MemoryError) as e:  # fmt: skip
        raise DataError(f"{path}: not a readable CIFAR-10 pickle batch: {e}") from None
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path}: keys {keys}; expected a dict with 'data' and 'labels'")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"{path}: field 'data' is {data.dtype} {data.shape}; expected uint8 (N, 3072)"
        )
    if labels.shape != (data.shape[0],):
        raise DataError(
            f"{path}: field 'labels' has {labels.size} entries; expected {data.shape[0]}"
        )
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return x, _check_labels(torch.from_numpy(labels.astype(np.int64)), f"{path} field 'labels'")


def _image_split(x: torch.Tensor, y: torch.Tensor, where: str) -> Split:
    return Split(x, _check_labels(y.long(), where))


def _check_labels(y: torch.Tensor, where: str) -> torch.Tensor:
    bad = ((y < 0) | (y >= 10)).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{where}: label {int(y[i])} at index {i} is outside 0..9 ({len(bad)} such labels)"
        )
    return y


def _vision_root(options: DataOptions, name: str) -> Path:
    root = resolve_root(options.data_dir)
    if root.path is None and not root.hf:
        raise DataError(no_data_message(name.lower().replace("-", "")))
    if root.hf or root.path is None:
        raise DataError(
            f"{name}: needs a local folder (--data-dir DIR or DROPATTACK_DATA), "
            f"got {root.describe()}"
        )
    return root.path
