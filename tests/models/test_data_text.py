"""Text data: the authors' CSV files, splits, subsets, tokenisation, caching, HF datasets, GloVe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.data import DataError, DataOptions, Vocabulary, load, load_vectors, read_csv
from models.data.text import quiet_hub_retries
from models.data.vocab import PAD_ID, UNK_ID

REPO = Path(__file__).resolve().parents[2]


def write_csv(path: Path, rows: list[tuple], header: str = "text,label") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header] + [
        ",".join(f'"{v}"' if isinstance(v, str) else str(v) for v in r) for r in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def synthetic(n: int, classes: int = 2, start: int = 0) -> list[tuple[str, int]]:
    """Texts whose words carry the label, so the rows are distinguishable."""
    return [
        (f"Sample {i} speaks of topic{(i % classes)} and word{i % 37}.", i % classes)
        for i in range(start, start + n)
    ]


# --- the real files ----------------------------------------------------------------------


def test_real_csv_files_read_with_their_sizes_and_classes(shared_data):
    imdb = read_csv(shared_data / "imdb" / "Train2500.csv", ("text", "label"), 2)
    assert len(imdb) == 2500 and sorted(set(imdb.labels)) == [0, 1]
    val = read_csv(shared_data / "pheme" / "2018_val.csv", ("eid", "text", "label"), 2)
    test = read_csv(shared_data / "pheme" / "2018_test.csv", ("eid", "text", "label"), 2)
    assert (len(val), len(test)) == (637, 643)
    ag = read_csv(shared_data / "agnews" / "val_ag1.csv", ("text", "label"), 4)
    assert len(ag) == 10_000 and sorted(set(ag.labels)) == [0, 1, 2, 3]


def test_offline_samples_load_with_proportional_seeded_splits(shared_data):
    imdb = load("imdb", DataOptions())  # no data dir: the offline sample
    assert imdb.sizes == {"train": 2000, "val": 250, "test": 250}
    assert imdb.split == "proportional"
    assert imdb.source.endswith("Train2500.csv")
    assert imdb.train.x.shape == (2000, 256) and imdb.train.x.dtype == torch.int32
    pheme = load("pheme", DataOptions(data_dir=str(shared_data)))
    assert sum(pheme.sizes.values()) == 637 + 643  # no training file: both files pooled
    assert pheme.sizes["val"] == 1280 * 643 // 6425
    assert pheme.num_classes == 2


def test_train_size_gives_nested_seeded_subsets(shared_data):
    small = load("imdb", DataOptions(train_size=100))
    large = load("imdb", DataOptions(train_size=500))
    assert small.sizes["train"] == 100 and large.sizes["train"] == 500
    torch.testing.assert_close(large.train.x[:100], small.train.x)
    torch.testing.assert_close(large.val.x, small.val.x)  # validation/test do not move
    other_seed = load("imdb", DataOptions(train_size=100, split_seed=1))
    assert not torch.equal(other_seed.train.x, small.train.x)
    with pytest.raises(DataError, match="train_size: 40000 exceeds the 2000 training examples"):
        load("imdb", DataOptions(train_size=40_000))
    with pytest.raises(DataError, match="positive integer"):
        load("imdb", DataOptions(train_size=0))


# --- splits ------------------------------------------------------------------------------


def test_full_size_pool_gets_table_1_sizes_exactly(tmp_path):
    n = 5_145 + 643 + 637
    write_csv(
        tmp_path / "pheme" / "2018_val.csv",
        [(i, t, y) for i, (t, y) in enumerate(synthetic(3000))],
        "eid,text,label",
    )
    rows = [(i, t, y) for i, (t, y) in enumerate(synthetic(n - 3000, start=3000))]
    write_csv(tmp_path / "pheme" / "2018_test.csv", rows, "eid,text,label")
    data = load("pheme", DataOptions(data_dir=str(tmp_path)))
    assert data.split == "paper"
    assert data.sizes == {"train": 5_145, "val": 643, "test": 637}


def test_three_files_are_used_as_given(tmp_path):
    folder = tmp_path / "imdb"
    write_csv(folder / "Train.csv", synthetic(30))
    write_csv(folder / "Valid.csv", synthetic(7, start=30))
    write_csv(folder / "Test.csv", synthetic(9, start=37))
    data = load("imdb", DataOptions(data_dir=str(tmp_path)))
    assert data.split == "files" and data.sizes == {"train": 30, "val": 7, "test": 9}
    assert data.train.y.tolist() == [y for _, y in synthetic(30)]


def test_a_test_file_is_kept_and_validation_split_off_training(tmp_path):
    write_csv(tmp_path / "agnews" / "train_ag1.csv", synthetic(110, classes=4))
    write_csv(tmp_path / "agnews" / "test_ag1.csv", synthetic(13, classes=4, start=500))
    data = load("agnews", DataOptions(data_dir=str(tmp_path / "agnews")))
    assert data.split == "proportional+fixed test"
    assert data.sizes == {"train": 101, "val": 9, "test": 13}  # 110 * 10,000 / 120,000 = 9


def test_splits_are_seeded_and_disjoint(tmp_path):
    write_csv(tmp_path / "imdb" / "Train500.csv", synthetic(200))
    a = load("imdb", DataOptions(data_dir=str(tmp_path)))
    b = load("imdb", DataOptions(data_dir=str(tmp_path)))
    torch.testing.assert_close(a.train.x, b.train.x)
    rows = [tuple(r.tolist()) for part in (a.train, a.val, a.test) for r in part.x]
    assert len(set(rows)) == 200  # every synthetic text is distinct: no row in two splits


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "review,sentiment\nfine,1\n",
            r"columns \['review', 'sentiment'\]; expected \['text', 'label'\]",
        ),
        ("text,label\ngood,1\nbad,2\n", r":3: field 'label' is '2'; expected an integer in 0..1"),
        ("text,label\ngood,1\nbad,x\n", r":3: field 'label' is 'x'; expected an integer"),
        ("text,label\ngood,1\n  ,0\n", r":3: field 'text' is empty"),
        ("text,label\ngood,1,extra\n", r":2: 3 fields; expected 2 \(text, label\)"),
        ("text,label\n", "no rows after the header"),
        ("", r"columns None; expected"),
    ],
)
def test_bad_csv_is_an_error_naming_file_row_and_field(tmp_path, content, message):
    path = tmp_path / "imdb" / "Train.csv"
    path.parent.mkdir()
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as e:
        load("imdb", DataOptions(data_dir=str(tmp_path)))
    assert str(path) in str(e.value)


def test_pheme_needs_its_eid_column(tmp_path):
    write_csv(tmp_path / "pheme" / "2018_val.csv", synthetic(5))
    with pytest.raises(DataError, match=r"expected \['eid', 'text', 'label'\]"):
        load("pheme", DataOptions(data_dir=str(tmp_path)))


def test_missing_folder_and_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match="data folder .*nowhere does not exist"):
        load("imdb", DataOptions(data_dir=str(tmp_path / "nowhere")))
    with pytest.raises(DataError, match=r"no data in .*imdb.*Train.csv.*--data-dir hf"):
        load("imdb", DataOptions(data_dir=str(tmp_path)))
    with pytest.raises(DataError, match="does not exist"):
        read_csv(tmp_path / "x.csv", ("text", "label"), 2)
    with pytest.raises(ValueError, match="unknown 'yelp'"):
        load("yelp")


def test_too_few_rows_to_split_is_an_error(tmp_path):
    write_csv(tmp_path / "imdb" / "Train500.csv", synthetic(5))
    with pytest.raises(DataError, match="5 examples are too few to split"):
        load("imdb", DataOptions(data_dir=str(tmp_path)))


# --- tokenisation ------------------------------------------------------------------------


def test_tokeniser_lowercases_and_drops_punctuation_and_stop_words():
    texts = ["The MOVIE was great!!! Great, great acting.", "A movie about nothing; it's dull."]
    vocab = Vocabulary.build(texts)
    words = vocab.words
    assert words[:2] == ["[PAD]", "[UNK]"]
    assert words[2:5] == ["great", "movie", "acting"]  # by frequency, then alphabetically
    assert not {"the", "was", "a", "about", "nothing", "it"} & set(words)  # sklearn stop words
    ids, lengths = vocab.encode(texts + ["unseen words here"], max_len=6)
    assert [words[i] for i in ids[0][: lengths[0]]] == [
        "movie",
        "great",
        "great",
        "great",
        "acting",
    ]
    assert ids[0][5] == PAD_ID and lengths.tolist() == [5, 3, 2]
    assert ids[2][:2].tolist() == [UNK_ID, UNK_ID]


def test_truncation_happens_after_stop_word_removal_and_empty_rows_are_kept():
    text = " ".join(["the"] * 300 + [f"w{i}" for i in range(300)])
    vocab = Vocabulary.build([text, "the of and"])
    ids, lengths = vocab.encode([text, "the of and"], max_len=256)
    assert lengths.tolist() == [256, 0]
    assert vocab.words[ids[0][0]] == "w0" and vocab.words[ids[0][255]] == "w255"
    assert (ids[1] == PAD_ID).all()


def test_vocabulary_is_capped_at_max_size():
    vocab = Vocabulary.build(["alpha alpha alpha beta beta gamma delta"], max_size=2)
    assert vocab.words == ["[PAD]", "[UNK]", "alpha", "beta"]
    ids, _ = vocab.encode(["gamma beta"], max_len=3)
    assert ids[0].tolist() == [UNK_ID, 3, PAD_ID]


def test_vocabulary_is_cached_beside_writable_data_and_rebuilt_when_data_change(tmp_path):
    write_csv(tmp_path / "imdb" / "Train500.csv", synthetic(60))
    first = load("imdb", DataOptions(data_dir=str(tmp_path)))
    cache = Path(first.info["vocab_cache"])
    assert cache.parent == tmp_path / "imdb" / ".dropattack-cache" and cache.is_file()
    assert first.info["vocab_cache_hit"] is False
    (ids_file,) = cache.parent.glob("ids-*-256.npz")
    again = load("imdb", DataOptions(data_dir=str(tmp_path)))
    assert again.info["vocab_cache_hit"] is True and again.info["vocab_cache"] == str(cache)
    torch.testing.assert_close(again.train.x, first.train.x)
    ids_file.write_bytes(b"corrupt")
    rebuilt = load("imdb", DataOptions(data_dir=str(tmp_path)))
    assert rebuilt.info["vocab_cache_hit"] is False
    torch.testing.assert_close(rebuilt.train.x, first.train.x)
    assert np.load(ids_file)["ids"].shape == (60, 256)  # rewritten
    write_csv(tmp_path / "imdb" / "Train500.csv", synthetic(61))
    changed = load("imdb", DataOptions(data_dir=str(tmp_path)))
    assert changed.info["vocab_cache_hit"] is False and changed.info["vocab_cache"] != str(cache)


def test_read_only_data_folders_are_left_alone(tmp_path, session_cache):
    folder = tmp_path / "imdb"
    write_csv(folder / "Train500.csv", synthetic(40))
    folder.chmod(0o555)
    try:
        data = load("imdb", DataOptions(data_dir=str(tmp_path)))
    finally:
        folder.chmod(0o755)
    assert Path(data.info["vocab_cache"]).parent == session_cache
    assert not (folder / ".dropattack-cache").exists()


def test_text_batches_are_long_ids_bucketed_by_length_when_asked(tmp_path):
    rows = [(" ".join(f"w{j}" for j in range(1 + i % 30)), i % 2) for i in range(300)]
    write_csv(tmp_path / "imdb" / "Train500.csv", rows)
    data = load("imdb", DataOptions(data_dir=str(tmp_path)))

    def spans(batches) -> list[int]:
        out = []
        for x, y in batches:
            assert x.dtype == torch.long and x.shape[1] == 256 and len(y) == len(x)
            n = (x != PAD_ID).sum(1)
            out.append(int(n.max() - n.min()))
        assert len(out) == len(batches)
        return out

    bucketed = data.batches("train", 16, seed=3, bucket=True)
    assert np.mean(spans(bucketed)) < 10
    assert np.mean(spans(data.batches("train", 16, seed=3))) > 15  # unbucketed: ~25
    assert [i.tolist() for i in bucketed.batch_indices(0)] == [
        i.tolist() for i in data.batches("train", 16, seed=3, bucket=True).batch_indices(0)
    ]


# --- Hugging Face datasets ---------------------------------------------------------------


def test_a_saved_datasets_folder_is_read_and_pooled_like_the_hub_layout(tmp_path):
    import datasets

    train, test = synthetic(40), synthetic(20, start=40)
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"text": [t for t, _ in train], "label": [y for _, y in train]}
            ),
            "test": datasets.Dataset.from_dict(
                {"text": [t for t, _ in test], "label": [y for _, y in test]}
            ),
        }
    )
    dd.save_to_disk(str(tmp_path / "imdb"))
    data = load("imdb", DataOptions(data_dir=str(tmp_path)))
    assert data.split == "proportional" and sum(data.sizes.values()) == 60
    assert "[train]" in data.source and "[test]" in data.source


def test_a_datasets_csv_load_with_three_splits_is_used_as_given(tmp_path):
    import datasets

    files = {
        "train": str(
            write_csv(tmp_path / "csv" / "tr.csv", synthetic(20, classes=4), "text,label")
        ),
        "val": str(write_csv(tmp_path / "csv" / "va.csv", synthetic(6, classes=4, start=20))),
        "test": str(write_csv(tmp_path / "csv" / "te.csv", synthetic(8, classes=4, start=30))),
    }
    ds = datasets.load_dataset("csv", data_files=files, cache_dir=str(tmp_path / "hf-cache"))
    ds.save_to_disk(str(tmp_path / "agnews"))
    data = load("agnews", DataOptions(data_dir=str(tmp_path)))
    assert data.split == "files" and data.sizes == {"train": 20, "val": 6, "test": 8}


def test_bad_labels_in_a_datasets_split_are_named(tmp_path):
    import datasets

    bad = datasets.Dataset.from_dict({"text": ["a b", "c d"], "label": [0, 7]})
    datasets.DatasetDict({"train": bad, "test": bad}).save_to_disk(str(tmp_path / "imdb"))
    with pytest.raises(
        DataError, match=r"\[train\] row 1: field 'label' is 7; expected an integer in 0..1"
    ):
        load("imdb", DataOptions(data_dir=str(tmp_path)))


def test_hub_loading_offline_without_a_cache_is_a_clear_error(tmp_path):
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    code = (
        "from models.data import DataError, DataOptions, load\n"
        "try:\n    load('imdb', DataOptions(data_dir='hf'))\n"
        "except DataError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert "could not load 'stanfordnlp/imdb' with Hugging Face datasets" in out.stdout, out.stderr
    assert "`dropattack data fetch imdb --to DIR`" in out.stdout  # the fix, in the same line
    assert len(out.stdout.strip().splitlines()) == 1


def test_hub_retry_warnings_stay_off_stderr_while_loading(caplog):
    from huggingface_hub.utils import logging as hub_logging

    retry = hub_logging.get_logger("huggingface_hub.utils._http")  # where the hub logs retries
    with quiet_hub_retries():
        retry.warning("Retrying in 1s [Retry 1/5].")
    assert "Retrying" not in caplog.text  # not emitted at all, so no handler prints it
    retry.warning("after the load")  # the hub's own level is back
    assert "after the load" in caplog.text


# --- GloVe vectors -----------------------------------------------------------------------


def test_glove_vectors_fill_known_words_and_random_rows_elsewhere(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("movie 0.5 -1 2\nunused 9 9 9\ngreat 1 2 3\n", encoding="utf-8")
    words = ["[PAD]", "[UNK]", "great", "movie", "acting"]
    matrix, found = load_vectors(path, words, seed=0)
    assert found == 2 and matrix.shape == (5, 3)
    torch.testing.assert_close(matrix[2], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(matrix[3], torch.tensor([0.5, -1.0, 2.0]))
    assert matrix[0].abs().sum() == 0
    torch.testing.assert_close(load_vectors(path, words, seed=0)[0], matrix)  # seeded


@pytest.mark.parametrize(
    "content, message",
    [
        ("a 1 2 3\nb 1 2\n", r"glove.txt:2: expected a word and 3 values"),
        ("a 1 x 3\n", r"glove.txt:1: non-numeric value"),
        ("", "is empty"),
    ],
)
def test_bad_vector_files_name_the_line(tmp_path, content, message):
    path = tmp_path / "glove.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_vectors(path, ["[PAD]", "[UNK]", "a", "b"])
    with pytest.raises(DataError, match="does not exist"):
        load_vectors(tmp_path / "none.txt", ["a"])


def test_a_task_load_with_vectors_initialises_the_embedding(tmp_path):
    from models import tasks

    write_csv(tmp_path / "imdb" / "Train500.csv", synthetic(50))
    (tmp_path / "vec.txt").write_text("topic0 1 1 1 1\ntopic1 -1 -1 -1 -1\n", encoding="utf-8")
    task = tasks.get("imdb-lstm")
    data = task.load(DataOptions(data_dir=str(tmp_path), vectors=str(tmp_path / "vec.txt")))
    assert data.info["vectors_found"] == 2
    model = task.build_model(data, hidden=4)
    assert model.embedding.embedding_dim == 4  # taken from the vectors
    pretrained = data.model_kwargs["pretrained"]
    torch.testing.assert_close(model.embedding.weight.detach(), pretrained)
    assert (pretrained == 1).all(1).sum() == 1 and (pretrained == -1).all(1).sum() == 1
