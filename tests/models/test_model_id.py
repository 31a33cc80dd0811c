"""Finding 8 (issue 14): the model id covers the weights AND the sidecar's configuration.

The attack: edit a checkpoint's sidecar (preprocessing mean/std, input size, architecture config)
without touching the weights. Before, the id was the weights' SHA-256 alone, so the edited model
scored differently under the same id. Provenance (figures, recipe) is not configuration.
"""

import json

import pytest

from models.checkpoint import save_checkpoint, verify_checkpoint
from models.factory import load_model
from models.model_id import CONFIG_KEYS, checkpoint_ids


@pytest.fixture()
def ckpt(tiny_bundle, tmp_path):
    model_id = save_checkpoint(tiny_bundle, tmp_path / "m", metadata={"metrics": {"top1": 0.5}})
    return tmp_path / "m", model_id


def _edit(path, change) -> None:
    sidecar_path = path.with_name(path.name + ".json")
    sidecar = json.loads(sidecar_path.read_text())
    change(sidecar)
    sidecar_path.write_text(json.dumps(sidecar))


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["preprocess_cfg"].update(mean=[0.1, 0.2, 0.3]),
        lambda s: s["preprocess_cfg"].update(std=[0.9, 0.9, 0.9]),
        lambda s: s["preprocess_cfg"].update(interpolation="bilinear"),
        lambda s: s.update(input_size=96),
        lambda s: s["model_cfg"].update(embed_dim=s["model_cfg"]["embed_dim"]),  # no change: same id
    ],
    ids=["mean", "std", "interpolation", "input_size", "unchanged"],
)
def test_an_edited_sidecar_config_is_another_model(ckpt, change, request) -> None:
    path, model_id = ckpt
    weights_sha = json.loads(path.with_name("m.json").read_text())["weights_sha256"]
    _edit(path, change)
    edited = verify_checkpoint(path)
    if request.node.callspec.id == "unchanged":
        assert edited == model_id
        return
    assert edited != model_id and edited != weights_sha  # neither the old id nor the weights-only one
    assert load_model(path, device="cpu").model_id == edited
    assert checkpoint_ids(path) == (edited, weights_sha)  # the torch-free path agrees


def test_provenance_is_not_configuration(ckpt) -> None:
    path, model_id = ckpt
    _edit(path, lambda s: s.update(metrics={"top1": 0.99}, training={"steps": 1}, created_at="1999-01-01"))
    assert verify_checkpoint(path) == model_id
    assert {"preprocess_cfg", "model_cfg", "input_size", "arch", "base"} <= set(CONFIG_KEYS)
