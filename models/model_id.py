"""Model ids: one SHA-256 over a model's weights AND the configuration it is run with (no torch here).

A checkpoint's scores depend on more than its weights: the sidecar's preprocessing (mean/std,
interpolation, size), input size, architecture config and base. The id therefore hashes the
weights' SHA-256 together with CONFIG_KEYS of the sidecar, so an edited sidecar is another model.
Provenance (figures, recipe, dates, sources) is not configuration: it changes no score and is not
in the id; figures a promotion uses are measured by the station itself (inspector.learning.loop).

Earlier software named a model by its weights' SHA-256 alone ("legacy id"); stations bind those
ids to the new ones at the upgrade (inspector.store.model_aliases). Torch-free, so the station
database can compute ids at an upgrade without loading a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.errors import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Shipped, trained models (trainable-only checkpoints in models/weights/, see models/MODEL_CARD.md):
# name -> checkpoint stem. "default" is the station's default model.
SHIPPED_MODELS = {
    "inspector-default-v1": "inspector-default-v1",
    "inspector-default-v2": "inspector-default-v2",
    "default": "inspector-default-v1",
}
# Every sidecar key the loader reads to build or run the model. A key the loader starts to read
# must be added here, or editing it would change scores under the same id.
# "calibration" (the verdict thresholds measured for the model) is read to run it too: it decides verdicts.
CONFIG_KEYS = ("arch", "base", "partial", "model_cfg", "preprocess_cfg", "frozen_sha256", "input_size", "calibration")
_TAG = b"rankclip-inspector/model-id/v2\x00"


def config_of(sidecar: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration part of a sidecar, JSON-normalised (tuples as lists); absent and null are alike."""
    picked = {k: sidecar[k] for k in CONFIG_KEYS if sidecar.get(k) is not None}
    return json.loads(json.dumps(picked, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def model_id_for(weights_sha256: str, config: Mapping[str, Any]) -> str:
    """The model id: SHA-256 over a domain tag, the weights' SHA-256 and the canonical config JSON."""
    body = json.dumps({"config": dict(config), "weights_sha256": weights_sha256}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(_TAG + body.encode("utf-8")).hexdigest()


def shipped_stem(ref: str | Path) -> Path | None:
    """The checkpoint stem of a shipped model name ("default", "inspector-default-v1"), else None."""
    return WEIGHTS_DIR / SHIPPED_MODELS[ref] if isinstance(ref, str) and ref in SHIPPED_MODELS else None


def checkpoint_ids(ref: str | Path) -> tuple[str, str]:
    """(model id, legacy weights-only id) of a checkpoint file or shipped name, verifying the weights' hash.

    CheckpointError when the sidecar or weights are missing, unreadable or do not match.
    """
    stem = shipped_stem(ref) or Path(ref)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    weights, sidecar_path = stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        digest = hashlib.sha256()
        with open(weights, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {stem} cannot be read: {exc}") from None
    if not isinstance(sidecar, dict) or sidecar.get("weights_sha256") != digest.hexdigest():
        raise CheckpointError(f"checkpoint {stem}: the weights do not match the sidecar's weights_sha256")
    return model_id_for(digest.hexdigest(), config_of(sidecar)), digest.hexdigest()
