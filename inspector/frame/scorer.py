"""The model as the core sees it: a small Protocol, so core tests can use a fake scorer.

`models.scorer.TorchScorer` satisfies it; `load_scorer` builds one and turns model-side errors
into the core's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from inspector.frame.scoring import (
    ScoringConfig,
    ScoringSettings,
    make_config,
    roi_mask,
)


@runtime_checkable
class Scorer(Protocol):
    """Embeds images and texts into one space; unit-length float32 rows."""

    model_id: str
    logit_scale: float
    image_size: int
    device: str

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def load_scorer(ref: str, device: str | None = None) -> Scorer:
    """Build the scorer for a model name or checkpoint path (torch is imported here, not before)."""
    from inspector.errors import model_errors
    from models.factory import load_model
    from models.scorer import TorchScorer

    with model_errors():
        return TorchScorer(load_model(ref, device=device))


@dataclass(frozen=True)
class ScoredFrame:
    """A frame's global embedding [D], local features [K, D] (unit rows), the scoring configuration,
    and the scorer's own features object (maps for localization; None for scorers without)."""

    embedding: np.ndarray
    local: np.ndarray
    config: ScoringConfig
    features: Any = None


def front_end(scorer: Scorer, settings: ScoringSettings) -> Any:
    """The models-side FrontEnd for these settings (None for scorers without a frame front end)."""
    if not hasattr(scorer, "encode_frame"):
        return None
    from models.dense_map import FrontEnd
    from models.tiling import TileSpec

    size = settings.input_size or int(getattr(scorer, "input_size", scorer.image_size))
    return FrontEnd(size, TileSpec(settings.tiling, settings.tile_size, settings.tile_overlap), settings.flips)


def _ranking_settings(settings: ScoringSettings) -> ScoringSettings:
    # Without the local blend the ranking reads only the global view: tiles would be wasted forwards.
    return settings if settings.local_weight > 0 else replace(settings, tiling="off")


def scoring_config(scorer: Scorer, settings: ScoringSettings, source_id: str = "") -> ScoringConfig:
    """The scoring configuration this scorer and these settings give frames from `source_id`."""
    fe = front_end(scorer, settings)
    if fe is None:
        record, local = {"path": "embed_images", "input_size": int(scorer.image_size)}, False
    else:
        record, local = scorer.frontend_record(fe), bool(getattr(scorer, "dense", False))
    return make_config(scorer.model_id, record, settings, settings.roi_for(source_id), local)


def score_frame(
    scorer: Scorer,
    rgb: np.ndarray,
    settings: ScoringSettings,
    source_id: str = "",
    for_maps: bool = False,
    mid: bool = False,
) -> ScoredFrame:
    """Encode one frame as delivered, through the station's front end and region of interest
    (`for_maps`: keep the tiles even when the ranking would not read them; `mid`: also read the
    trunk's mid-level statistics off the same forward, for a "mid" good-part model)."""
    config = scoring_config(scorer, settings, source_id)
    fe = front_end(scorer, settings if for_maps else _ranking_settings(settings))
    if fe is None:  # a scorer without a frame front end: one global embedding
        emb = np.asarray(scorer.embed_images([rgb])[0], np.float32)
        return ScoredFrame(emb, emb[None, :], config)
    mask = roi_mask(settings.roi_for(source_id), rgb.shape[0], rgb.shape[1])
    from inspector.errors import model_errors

    with model_errors():
        # Only asked for when wanted: the capture costs ~2 ms a frame on the 2-core development CPU.
        features = (
            scorer.encode_frame(rgb, mask, frontend=fe, mid=True)
            if mid
            else scorer.encode_frame(rgb, mask, frontend=fe)
        )
    return ScoredFrame(features.embedding, features.local, config, features)
