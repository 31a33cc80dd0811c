"""Recipes: the tiny recipe end to end, the CLI entry, and the shipped default weights."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from models.checkpoint import read_sidecar, verify_checkpoint
from models.errors import ModelError
from models.factory import SHIPPED_MODELS, WEIGHTS_DIR, load_model
from models.recipes import get_recipe, run_recipe

SHIPPED = WEIGHTS_DIR / "inspector-default-v1"
HAVE_SHIPPED = SHIPPED.with_suffix(".safetensors").is_file()


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: intra-op threads only add contention on a busy machine
    yield
    torch.set_num_threads(threads)


def _embeddings(bundle, images, texts):
    from models.scorer import TorchScorer

    scorer = TorchScorer(bundle)
    return scorer.embed_images(images), scorer.embed_texts(texts)


@pytest.mark.training
def test_tiny_recipe_end_to_end(tmp_path):
    recipe = get_recipe("tiny", steps=30)
    log = tmp_path / "log.jsonl"
    summary = run_recipe(recipe, tmp_path / "m", log_path=str(log))
    assert summary["completed"] and summary["steps_done"] == 30
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    first = np.mean([r["contrastive_loss"] for r in rows[:5]])
    last = np.mean([r["contrastive_loss"] for r in rows[-5:]])
    assert last < first - 0.1, (first, last)
    assert set(summary["heldout"]) >= {"top1", "top3", "mrr", "per_label_recall"}

    # The checkpoint holds exactly what trained (projections, the open block, its tail, the scale).
    sidecar = read_sidecar(tmp_path / "m")
    assert sidecar["partial"] and verify_checkpoint(tmp_path / "m") == summary["model_id"]
    assert sidecar["training"]["recipe"]["name"] == "tiny"
    assert {s["licence"] for s in sidecar["data_sources"]} >= {"MIT"}
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert {"visual.proj", "text_projection", "logit_scale", "visual.ln_post.weight"} <= keys
    assert any(k.startswith("visual.transformer.resblocks.1.") for k in keys)
    assert not any(k.startswith(("visual.transformer.resblocks.0.", "visual.conv1", "transformer.")) for k in keys)

    # Loading it rebuilds the same model: same id, same embeddings as the model that trained.
    loaded = load_model(tmp_path / "m", device="cpu")
    assert loaded.model_id == summary["model_id"]
    images = [np.full((64, 64, 3), v, np.uint8) for v in (30, 120, 220)]
    texts = ["a scratch", "a clean surface"]
    for got, want in zip(_embeddings(loaded, images, texts), _embeddings(summary["bundle"], images, texts)):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.training
def test_cli_trains_a_recipe(tmp_path, capsys):
    from inspector.cli import main

    out = tmp_path / "cli"
    assert main(["train", "--recipe", "tiny", "--no-eval", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_id"] == verify_checkpoint(out)
    assert main(["train", "--recipe", "nope", "--out", str(out)]) == 2
    assert "unknown recipe" in capsys.readouterr().err


def test_missing_shipped_weights_give_a_clear_error(monkeypatch, tmp_path):
    import models.factory as factory

    monkeypatch.setattr(factory, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelError, match="inspector train --recipe default"):
        load_model("default")


@pytest.mark.skipif(not HAVE_SHIPPED, reason="models/weights/inspector-default-v1 not built yet")
def test_shipped_weights_are_small_verified_and_clean():
    size = SHIPPED.with_suffix(".safetensors").stat().st_size
    assert size <= 25 * 2**20
    sidecar = read_sidecar(SHIPPED)
    weights = SHIPPED.with_name(SHIPPED.name + ".safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == sidecar["weights_sha256"]
    assert verify_checkpoint(SHIPPED) != sidecar["weights_sha256"]  # the id covers the sidecar's config too
    assert sidecar["partial"] and sidecar["base"] == "inspector-default"
    assert {s["licence"] for s in sidecar["data_sources"]} <= {"MIT", "Apache-2.0 (project code)"}
    assert "elpv" not in json.dumps(sidecar["data_sources"]).lower()  # CC BY-NC-SA data never trains it
    assert SHIPPED_MODELS["default"] == SHIPPED_MODELS["inspector-default-v1"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_SHIPPED, reason="models/weights/inspector-default-v1 not built yet")
def test_shipped_model_ranks_heldout_defects_well_above_chance():
    """Held-out seed textures, held-out wordings, four clearly different types: chance is 1/4."""
    from models.evaluate import evaluate
    from models.recipes import heldout_label_texts
    from models.synth import generate

    bundle = load_model("inspector-default-v1", device="cpu")
    assert load_model("default", device="cpu").model_id == bundle.model_id == verify_checkpoint(SHIPPED)
    types = ("ok", "hole", "burn", "scratch")
    samples = generate(24, seed=123, defects=types, split="test", textile_fraction=0.3)
    texts = heldout_label_texts(types)
    result = evaluate(bundle, [s.image for s in samples], [s.defect for s in samples], texts)
    assert result["top1"] >= 0.6, result  # chance 0.25; a model that learned nothing sits near it
    assert result["mrr"] > 0.7, result


@pytest.mark.training
def test_a_fine_tune_of_a_partial_checkpoint_keeps_what_the_parent_trained(tmp_path):
    """Saving trainable-only after fine-tuning the projections of a shipped-style partial model must also
    store the blocks the parent had trained, or the child would load on top of untrained blocks."""
    from models.checkpoint import trainable_keys
    from models.freeze import trained_flags

    run_recipe(get_recipe("tiny", steps=2), tmp_path / "parent", evaluate=False)
    parent = load_model(tmp_path / "parent", device="cpu")
    assert any(k.startswith("visual.transformer.resblocks.1.") for k in parent.metadata["partial_keys"])
    cfg = get_recipe("tiny").train_config(unfreeze_image_blocks=0)
    with trained_flags(parent.model, cfg):
        alone = trainable_keys(parent.model)
    with trained_flags(parent.model, cfg, keep=parent.metadata["partial_keys"]):
        kept = trainable_keys(parent.model)
    assert not any(k.startswith("visual.transformer.resblocks.1.") for k in alone)
    assert set(parent.metadata["partial_keys"]) <= kept and {"visual.proj", "text_projection"} <= kept
    assert all(p.requires_grad for p in parent.model.parameters())  # flags restored
