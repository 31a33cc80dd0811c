"""Checkpoints: round trips, model ids, partial saves, and every way a bad file must be refused."""

import copy
import dataclasses
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import torch

from models.checkpoint import read_sidecar, save_checkpoint, verify_checkpoint
from models.errors import CheckpointError, ModelError
from models.factory import create_model, load_model
from models.scorer import TorchScorer

TEXTS = ["a scratch across the lid", "a dent near the rim", "no visible defect"]


def _images(n: int = 2, size: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8) for _ in range(n)]


def _embeddings(bundle) -> tuple[np.ndarray, np.ndarray]:
    scorer = TorchScorer(bundle)
    return scorer.embed_images(_images()), scorer.embed_texts(TEXTS)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _with_model(bundle, model):
    return dataclasses.replace(bundle, model=model)


@pytest.fixture()
def tiny_ckpt(tiny_bundle, tmp_path):
    metadata = {
        "training": {"steps": 0},
        "data_sources": [{"name": "synthetic", "licence": "MIT"}],
        "metrics": {"top1": 0.5},
    }
    model_id = save_checkpoint(tiny_bundle, tmp_path / "tiny", metadata=metadata)
    return tmp_path / "tiny", model_id


def test_tiny_round_trip(tiny_bundle, tiny_ckpt):
    path, model_id = tiny_ckpt
    weights = path.with_name("tiny.safetensors")
    assert model_id == verify_checkpoint(path) and read_sidecar(path)["weights_sha256"] == _sha256(weights)
    expected = _embeddings(tiny_bundle)
    for ref in (weights, path.with_name("tiny.json"), str(path)):
        loaded = load_model(ref, device="cpu")
        assert loaded.model_id == model_id and loaded.arch == "inspector-tiny"
        for got, want in zip(_embeddings(loaded), expected):
            np.testing.assert_array_equal(got, want)


def test_full_save_of_a_fresh_build_keeps_its_id(tiny_bundle, tiny_ckpt):
    assert tiny_ckpt[1] == tiny_bundle.model_id


def test_sidecar_describes_the_checkpoint(tiny_bundle, tiny_ckpt):
    path, model_id = tiny_ckpt
    sidecar = read_sidecar(path)
    assert sidecar["weights_sha256"] == _sha256(path.with_name("tiny.safetensors")) and sidecar["partial"] is False
    assert sidecar["arch"] == sidecar["base"] == "inspector-tiny"
    assert sidecar["parent_model_id"] == tiny_bundle.model_id
    assert sidecar["model_cfg"] == tiny_bundle.model_cfg
    assert sidecar["preprocess_cfg"]["size"] in (64, [64, 64])
    assert {"mean", "std", "interpolation"} <= sidecar["preprocess_cfg"].keys()
    assert sidecar["data_sources"] == [{"name": "synthetic", "licence": "MIT"}]
    assert sidecar["metrics"] == {"top1": 0.5} and sidecar["training"] == {"steps": 0}
    assert load_model(path).metadata["metrics"] == {"top1": 0.5}


def test_metadata_cannot_overwrite_reserved_keys(tiny_bundle, tmp_path):
    with pytest.raises(CheckpointError, match="weights_sha256"):
        save_checkpoint(tiny_bundle, tmp_path / "x", metadata={"weights_sha256": "0" * 64})
    assert not list(tmp_path.iterdir())  # refused before anything was written
    save_checkpoint(tiny_bundle, tmp_path / "y", metadata={"parent_model_id": "f" * 64, "notes": "resumed run"})
    sidecar = read_sidecar(tmp_path / "y")
    assert sidecar["parent_model_id"] == "f" * 64 and sidecar["notes"] == "resumed run"


def test_tampered_weights_are_refused(tiny_ckpt):
    path, _ = tiny_ckpt
    weights = path.with_name("tiny.safetensors")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its sidecar hash.*corrupt or was tampered"):
        load_model(path)
    with pytest.raises(CheckpointError, match="does not match its sidecar hash"):
        verify_checkpoint(path)


def test_missing_sidecar_is_refused(tiny_ckpt):
    path, _ = tiny_ckpt
    path.with_name("tiny.json").unlink()
    with pytest.raises(CheckpointError, match="no sidecar"):
        load_model(path.with_name("tiny.safetensors"))


def test_truncated_weights_are_refused(tiny_ckpt):
    path, _ = tiny_ckpt
    weights, sidecar_path = path.with_name("tiny.safetensors"), path.with_name("tiny.json")
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="does not match its sidecar hash"):
        load_model(path)
    # Even with a sidecar re-hashed to match, a truncated file gets a clear error, not a library traceback.
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["weights_sha256"] = _sha256(weights)
    sidecar_path.write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_model(path)


def test_pickle_checkpoints_are_refused(tiny_bundle, tiny_ckpt, tmp_path):
    torch.save(tiny_bundle.model.state_dict(), tmp_path / "legacy.pt")
    with pytest.raises(CheckpointError, match="(?i)pickle.*convert.*safetensors"):
        load_model(tmp_path / "legacy.pt")
    # Renaming does not help: the content is sniffed before anything else.
    shutil.copy(tmp_path / "legacy.pt", tmp_path / "renamed.safetensors")
    shutil.copy(tiny_ckpt[0].with_name("tiny.json"), tmp_path / "renamed.json")
    with pytest.raises(CheckpointError, match="zip archive"):
        load_model(tmp_path / "renamed.safetensors")


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
def test_torchscript_is_refused(tmp_path):
    scripted = torch.jit.trace(torch.nn.Linear(4, 2), torch.zeros(1, 4))
    scripted.save(str(tmp_path / "scripted.pt"))
    with pytest.raises(CheckpointError, match="pickle-based"):
        load_model(tmp_path / "scripted.pt")
    shutil.copy(tmp_path / "scripted.pt", tmp_path / "scripted.safetensors")
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_model(tmp_path / "scripted.safetensors")


def test_unknown_reference_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="neither a known architecture nor an existing checkpoint"):
        load_model(tmp_path / "nothing-here")


def test_partial_checkpoint_with_unknown_or_misshaped_key_is_refused(tiny_bundle, tmp_path):
    extra = copy.deepcopy(tiny_bundle.model)
    extra.adapter = torch.nn.Linear(4, 4)  # a key the base architecture does not have
    save_checkpoint(_with_model(tiny_bundle, extra), tmp_path / "extra", trainable_only=True)
    with pytest.raises(CheckpointError, match="unknown keys.*adapter"):
        load_model(tmp_path / "extra")
    reshaped = copy.deepcopy(tiny_bundle.model)
    reshaped.logit_scale = torch.nn.Parameter(torch.ones(2))
    save_checkpoint(_with_model(tiny_bundle, reshaped), tmp_path / "reshaped", trainable_only=True)
    with pytest.raises(CheckpointError, match="shape mismatches.*logit_scale"):
        load_model(tmp_path / "reshaped")


def test_partial_checkpoint_refuses_different_frozen_towers(tiny_bundle, tmp_path):
    model = copy.deepcopy(tiny_bundle.model)
    model.visual.requires_grad_(False)
    with torch.no_grad():
        model.visual.proj.add_(0.5)  # frozen, so not saved: the rebuilt base will differ here
    save_checkpoint(_with_model(tiny_bundle, model), tmp_path / "drifted", trainable_only=True)
    with pytest.raises(CheckpointError, match="different frozen tower weights"):
        load_model(tmp_path / "drifted")


def test_failed_save_leaves_the_previous_checkpoint_intact(tiny_bundle, tiny_ckpt, monkeypatch):
    path, model_id = tiny_ckpt
    model = copy.deepcopy(tiny_bundle.model)
    with torch.no_grad():
        model.logit_scale.add_(1.0)

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_with_model(tiny_bundle, model), path)
    monkeypatch.undo()
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.json", "tiny.safetensors"]  # no temp files
    assert verify_checkpoint(path) == model_id


def test_untrained_default_id_is_stable(default_bundle):
    with torch.random.fork_rng():
        torch.manual_seed(2024)  # a different global RNG state than the fixture's build saw
        again = create_model("inspector-default", device="cpu")
    assert again.model_id == default_bundle.model_id


def test_partial_default_round_trip(default_bundle, tmp_path):
    model = copy.deepcopy(default_bundle.model)
    model.lock_image_tower()
    model.lock_text_tower()
    with torch.no_grad():  # stand-in for LiT training of the projections
        model.visual.head.proj.weight.mul_(-1.5)
        model.text.proj.weight.add_(0.01)
    trained = _with_model(default_bundle, model)
    model_id = save_checkpoint(
        trained, tmp_path / "lit", metadata={"training": {"loss": "rankclip"}}, trainable_only=True
    )
    full_id = save_checkpoint(trained, tmp_path / "full")
    partial_file, full_file = tmp_path / "lit.safetensors", tmp_path / "full.safetensors"
    assert read_sidecar(tmp_path / "lit")["weights_sha256"] == _sha256(partial_file)
    assert model_id == verify_checkpoint(tmp_path / "lit") and full_id == verify_checkpoint(tmp_path / "full")
    assert partial_file.stat().st_size * 20 < full_file.stat().st_size  # towers are not duplicated
    sidecar = read_sidecar(tmp_path / "lit")
    assert sidecar["partial"] is True and sidecar["base"] == "inspector-default"
    assert {s["licence"] for s in sidecar["pretrained_sources"]} >= {"Apache-2.0"}

    loaded = load_model(tmp_path / "lit", device="cpu")
    assert loaded.model_id == model_id
    want, base = _embeddings(trained), _embeddings(default_bundle)
    got = _embeddings(loaded)
    for g, w, b in zip(got, want, base):
        np.testing.assert_array_equal(g, w)
        assert not np.allclose(g, b)  # the trained projections really came from the file
