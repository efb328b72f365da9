"""Where each dataset comes from: public URLs, what is unpacked from them and where it goes.

``dropattack data fetch`` downloads these into a data root in the layout the loaders read
(see docs/data.md). Items:

- ``samples``: the small real samples the README and ``docs/examples`` run on, the authors'
  published CSV files (IMDB 2,500 reviews, PHEME validation and test, AG News validation), from
  their repository pinned to one commit, with pinned SHA-256 checksums.
- ``imdb``: the Stanford Large Movie Review Dataset (50,000 labelled reviews), written as
  ``imdb/Train.csv``, ``Valid.csv``, ``Test.csv`` (40,000 / 5,000 / 5,000, Table 1's sizes, a
  seeded split of the 50,000 reviews in file-name order).
- ``pheme``, ``agnews``: the authors' CSV files (``2018_{train,val,test}.csv``;
  ``{train,val,test}_ag1.csv``, the training file unzipped), from the same commit.
- ``mnist``: the IDX files torchvision reads, gunzipped into ``MNIST/raw``.
- ``cifar10``: the Python release, unpacked into ``cifar-10-batches-py``.
- ``glove``: ``glove.6B.300d.txt`` from Stanford's ``glove.6B.zip`` into ``glove/``.

A mirror (``--mirror URL`` or ``$DROPATTACK_DATA_MIRROR``) serves each file at the source URL's
host and path below its base, as ``wget -x URL`` lays them out:
``<mirror>/raw.githubusercontent.com/nishiwen1214/DropAttack/<commit>/dataset/...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "AUTHORS_COMMIT",
    "AUTHORS_REPO",
    "GLOVE_FILE",
    "ITEMS",
    "Item",
    "Source",
    "item_names",
    "mirrored",
]

AUTHORS_REPO = "nishiwen1214/DropAttack"
#: The authors' repository at the commit whose CSV files the samples' checksums pin.
AUTHORS_COMMIT = "fe65b4701877fafec5ef745ab0381ef81a24b9c7"
_RAW = f"https://raw.githubusercontent.com/{AUTHORS_REPO}/{AUTHORS_COMMIT}/dataset"
#: Where ``vectors: glove`` looks, relative to the data root.
GLOVE_FILE = "glove/glove.6B.300d.txt"


@dataclass(frozen=True)
class Source:
    """One file to download and what to make of it.

    Attributes:
        url: its public URL.
        unpack: ``copy`` (``dest`` is the file), ``gunzip`` (``dest`` the file),
            ``unzip`` (``member`` of the zip to ``dest``), ``untar`` (the members under
            ``member``/ into the root), ``aclimdb`` (the Stanford IMDB archive to the three
            CSV files of ``imdb/``).
        dest: where it goes, relative to the data root (a file or a folder).
        sha256: the downloaded file's checksum where it is pinned.
        member: the member of an archive that is kept.
    """

    url: str
    unpack: str
    dest: str
    sha256: str | None = None
    member: str | None = None


@dataclass(frozen=True)
class Item:
    """What ``dropattack data fetch NAME`` fetches: a dataset, the samples or GloVe."""

    name: str
    about: str
    sources: tuple[Source, ...]


ITEMS: dict[str, Item] = {
    item.name: item
    for item in (
        Item(
            "samples",
            "the authors' small CSV files the README and docs/examples use",
            (
                Source(
                    f"{_RAW}/IMDB/Train2500.csv",
                    "copy",
                    "imdb/Train2500.csv",
                    "2733fcafd15b21823fecef731ec93afe9d60061184265b26d9eb45d01f9a7f9e",
                ),
                Source(
                    f"{_RAW}/PHEME/2018_val.csv",
                    "copy",
                    "pheme/2018_val.csv",
                    "7f2fdc88b6622f25bc4572345e5cdf3a1b8424e2d9fc6726187cf2c63c69dfff",
                ),
                Source(
                    f"{_RAW}/PHEME/2018_test.csv",
                    "copy",
                    "pheme/2018_test.csv",
                    "c3f45c2c6e716608c8d64e405ffa0f552fc36e7589ffb64ff9150fca3288ba6c",
                ),
                Source(
                    f"{_RAW}/AGnews/val_ag1.csv",
                    "copy",
                    "agnews/val_ag1.csv",
                    "989956a60730abccd06bba99b04dd73d0260567912f98daf1d00a92c57809e2a",
                ),
            ),
        ),
        Item(
            "imdb",
            "Stanford's Large Movie Review Dataset as Train/Valid/Test.csv (40,000/5,000/5,000)",
            (
                Source(
                    "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                    "aclimdb",
                    "imdb",
                ),
            ),
        ),
        Item(
            "pheme",
            "the authors' PHEME CSV files (2018_train/val/test.csv)",
            (
                Source(f"{_RAW}/PHEME/2018_train.csv", "copy", "pheme/2018_train.csv"),
                Source(
                    f"{_RAW}/PHEME/2018_val.csv",
                    "copy",
                    "pheme/2018_val.csv",
                    "7f2fdc88b6622f25bc4572345e5cdf3a1b8424e2d9fc6726187cf2c63c69dfff",
                ),
                Source(
                    f"{_RAW}/PHEME/2018_test.csv",
                    "copy",
                    "pheme/2018_test.csv",
                    "c3f45c2c6e716608c8d64e405ffa0f552fc36e7589ffb64ff9150fca3288ba6c",
                ),
            ),
        ),
        Item(
            "agnews",
            "the authors' AG News CSV files (train/val/test_ag1.csv)",
            (
                Source(
                    f"{_RAW}/AGnews/train_ag1.csv.zip",
                    "unzip",
                    "agnews/train_ag1.csv",
                    member="train_ag1.csv",
                ),
                Source(
                    f"{_RAW}/AGnews/val_ag1.csv",
                    "copy",
                    "agnews/val_ag1.csv",
                    "989956a60730abccd06bba99b04dd73d0260567912f98daf1d00a92c57809e2a",
                ),
                Source(
                    f"{_RAW}/AGnews/test_ag1.csv",
                    "copy",
                    "agnews/test_ag1.csv",
                    "a9b22acaa59121d99b983002d75592b5a727612a38e8ca4bbeda640499c0f3a1",
                ),
            ),
        ),
        Item(
            "mnist",
            "MNIST's IDX files as torchvision reads them (MNIST/raw)",
            tuple(
                Source(
                    f"https://ossci-datasets.s3.amazonaws.com/mnist/{name}.gz",
                    "gunzip",
                    f"MNIST/raw/{name}",
                )
                for name in (
                    "train-images-idx3-ubyte",
                    "train-labels-idx1-ubyte",
                    "t10k-images-idx3-ubyte",
                    "t10k-labels-idx1-ubyte",
                )
            ),
        ),
        Item(
            "cifar10",
            "CIFAR-10's Python release (cifar-10-batches-py)",
            (
                Source(
                    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    "untar",
                    ".",
                    member="cifar-10-batches-py",
                ),
            ),
        ),
        Item(
            "glove",
            "the paper's word vectors, glove.6B.300d.txt (from glove.6B.zip, 822 MB)",
            (
                Source(
                    "https://nlp.stanford.edu/data/glove.6B.zip",
                    "unzip",
                    GLOVE_FILE,
                    member="glove.6B.300d.txt",
                ),
            ),
        ),
    )
}


def item_names() -> list[str]:
    """The names ``fetch`` takes besides task names."""
    return list(ITEMS)


def mirrored(url: str, mirror: str | None) -> str:
    """``url`` itself, or its host and path below ``mirror``."""
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"
