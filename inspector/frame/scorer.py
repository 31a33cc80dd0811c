"""The model as the core sees it: a small Protocol, so core tests can use a fake scorer.

`models.scorer.TorchScorer` satisfies it; `load_scorer` builds one and turns model-side errors
into the core's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


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
    from inspector.learning.training import model_errors
    from models.factory import load_model
    from models.scorer import TorchScorer

    with model_errors():
        return TorchScorer(load_model(ref, device=device))
