"""sweeps.trial: one trial end to end, determinism, resume, method args, text tasks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from dropattack import methods
from dropattack.train import Callback
from sweeps.trial import TrialConfig, ran_params, run_trial

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TINY_TEXT = {"embed_dim": 16, "hidden": 16}

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("DROPATTACK_CACHE", str(tmp_path_factory.getbasetemp() / "vocab-cache"))
    monkeypatch.delenv("DROPATTACK_DATA", raising=False)


def needs_shared():
    if not (SHARED_DATA / "imdb" / "Train2500.csv").is_file():
        pytest.skip(f"{SHARED_DATA} not found: the shared real data samples are absent")


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def without_time(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.endswith("seconds")}


def test_digits_trial_learns_and_reports_the_contract_fields():
    result = run_trial(TrialConfig("digits-lenet5", epochs=2))
    m = result.metrics
    assert set(m) == {
        "val_acc", "val_f1", "test_acc", "test_f1", "epochs", "best_epoch",
        "seconds", "setup_seconds", "train_seconds",
    }  # fmt: skip
    # training time is the epochs' own (no set-up, no test evaluation): what methods compare
    assert m["train_seconds"] == pytest.approx(sum(h.seconds for h in result.history))
    assert 0 < m["train_seconds"] < m["seconds"] and m["setup_seconds"] > 0
    assert m["test_acc"] > 0.9 and all(0 <= m[k] <= 1 for k in ("val_acc", "test_acc", "test_f1"))
    assert m["epochs"] == 2 and len(result.history) == 2
    assert result.attacked == ["input"] and result.aliases == ["Input"]
    assert result.sizes == {"train": 1439, "val": 179, "test": 179} and result.train_size == 1439
    out = json.loads(json.dumps(result.as_json()))
    assert out["test_acc"] == m["test_acc"] and out["attacked"] == ["input"]
    assert out["data"]["split"] == "proportional" and out["config"]["task"] == "digits-lenet5"


def test_same_config_gives_identical_results_and_another_seed_does_not():
    cfg = TrialConfig("digits-lenet5", attack=("Input", "Conv.1.w"), epochs=1, train_size=400)
    a, b = run_trial(cfg), run_trial(cfg)
    assert without_time(a.metrics) == without_time(b.metrics)
    assert same_state(a.best_state, b.best_state)
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    c = run_trial(
        TrialConfig("digits-lenet5", attack=("Input", "Conv.1.w"), epochs=1, train_size=400, seed=1)
    )
    assert not same_state(a.best_state, c.best_state)


class Keep(Callback):
    def __init__(self):
        self.states = []

    def on_epoch_end(self, metrics, model, state):
        self.states.append(copy.deepcopy(state))


def test_resuming_from_an_epoch_checkpoint_reproduces_the_uninterrupted_run():
    cfg = TrialConfig("digits-lenet5", attack=("Input", "Conv.1.w"), epochs=2, train_size=300)
    keep = Keep()
    full = run_trial(cfg, callbacks=[keep])
    assert [s["epoch"] for s in keep.states] == [1, 2]
    resumed = run_trial(cfg, resume=keep.states[0])
    assert len(resumed.history) == 2 and resumed.history[0] == full.history[0]
    assert resumed.history[1].train_loss == full.history[1].train_loss
    assert without_time(resumed.metrics) == without_time(full.metrics)
    assert same_state(resumed.best_state, full.best_state)
    with pytest.raises(ValueError, match="lacks"):
        run_trial(cfg, resume={"epoch": 1})


def test_methods_get_only_the_arguments_they_take():
    std = run_trial(TrialConfig("digits-lenet5", method="standard", epochs=1, train_size=200))
    assert std.attacked == [] and std.aliases == []
    with pytest.raises(ValueError, match="method 'standard' takes no attack targets"):
        run_trial(TrialConfig("digits-lenet5", method="standard", attack=("Input",), epochs=1))
    with pytest.raises(ValueError, match="unknown 'nope'; expected one of"):
        run_trial(TrialConfig("digits-lenet5", method="nope", epochs=1))
    with pytest.raises(ValueError, match="method 'dropattack'.*bogus"):
        run_trial(TrialConfig("digits-lenet5", epochs=1, hp={"bogus": 1}))
    with pytest.raises(ValueError, match="unknown alias or parameter 'Lstm.ih.w'"):
        run_trial(TrialConfig("digits-lenet5", attack=("Lstm.ih.w",), epochs=1))


@pytest.mark.skipif("fgm" not in methods.names(), reason="the fgm method is not registered")
def test_input_methods_default_to_the_tasks_input_target():
    r = run_trial(TrialConfig("digits-lenet5", method="fgm", eps=0.5, epochs=1, train_size=200))
    assert r.attacked == ["input"]


def test_unavailable_device_and_unknown_task_are_errors():
    with pytest.raises(ValueError, match="device: expected 'cpu' or 'cuda', got 'tpu'"):
        run_trial(TrialConfig("digits-lenet5", device="tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            run_trial(TrialConfig("digits-lenet5", device="cuda"))
    with pytest.raises(ValueError, match="task: unknown 'mnist'"):
        run_trial(TrialConfig("mnist"))


def test_text_trial_on_the_real_imdb_sample():
    needs_shared()
    cfg = TrialConfig(
        "imdb-lstm", attack=("Embedding", "Lstm.ih.w"), epochs=1, train_size=300, model=TINY_TEXT
    )
    r = run_trial(cfg)
    assert r.attacked == ["embedding.weight", "rnn.weight_ih_l0"]
    assert r.sizes == {"train": 300, "val": 250, "test": 250}
    assert 0 <= r.metrics["test_acc"] <= 1 and r.metrics["epochs"] == 1
    assert r.data["source"].endswith("Train2500.csv") and r.data["vocab_size"] > 10_000
    # `dropattack train` says which data it loaded: source, split sizes and the data root
    from sweeps.commands.train_console import summary

    ran, data = summary(r).splitlines()[:2]
    assert ran.startswith("ran imdb-lstm dropattack eps=5 p=0.7 k=1 groups=paper  attacked ")
    assert "Embedding (embedding.weight), Lstm.ih.w (rnn.weight_ih_l0)" in ran
    assert data.startswith("data ") and "Train2500.csv" in data
    assert "train 300 / val 250 / test 250" in data and f"root {SHARED_DATA}" in data
    assert r.ran["data_root"].startswith(str(SHARED_DATA)) and r.ran["sizes"] == r.sizes


def test_pheme_trial_defaults_to_the_embedding_and_reports_f1():
    needs_shared()
    r = run_trial(TrialConfig("pheme-bilstm", epochs=1, train_size=200, model=TINY_TEXT))
    assert r.attacked == ["embedding.weight"] and r.aliases == ["Embedding"]
    assert 0 <= r.metrics["test_f1"] <= 1 and r.sizes["test"] == 1280 * 637 // 6425
    assert r.ran["embedding_init"] == "random" and ran_params(r)["embedding_init"] == "random"


def test_image_tasks_train_end_to_end_from_files_in_their_real_formats(tmp_path):
    import pickle
    import struct

    import numpy as np

    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 48), ("t10k", 16)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        header = struct.pack(">IIII", 2051, n, 28, 28)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + labels.tobytes()
        )
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [1, 2, 3, 4]}
        (folder / name).write_bytes(pickle.dumps(batch))
    mnist = run_trial(
        TrialConfig(
            "mnist-lenet5",
            attack=("Input", "Conv.1.w"),
            epochs=1,
            batch_size=16,
            data_dir=str(tmp_path),
        )
    )
    assert mnist.sizes == {"train": 40, "val": 8, "test": 16} and mnist.attacked == [
        "input",
        "conv1.weight",
    ]
    vgg = run_trial(
        TrialConfig(
            "cifar10-vgg16",
            attack=("Input", "Conv.1.w", "BatchNorm.1.w"),
            epochs=1,
            batch_size=16,
            data_dir=str(tmp_path),
        )
    )
    assert vgg.sizes == {"train": 16, "val": 4, "test": 4}
    assert vgg.attacked == ["input", "features.0.weight", "features.1.weight"]
    assert 0 <= vgg.metrics["test_acc"] <= 1
