"""A scorer for core and UI tests that needs no model: texts map to fixed random unit vectors.

Import it as `from fakes import HashScorer` (pyproject puts tests/ on pytest's pythonpath).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np


def text_vector(text: str, dim: int = 32) -> np.ndarray:
    """The unit vector of `text`: seeded by its SHA-256, so the same in every process and run."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


class HashScorer:
    """Satisfies inspector.frame.scorer.Scorer. An image embeds as the vector of one text: `image_text`
    for every image, or, with `by_red`, the text its top-left red value maps to."""

    logit_scale, device = 30.0, "cpu"

    def __init__(
        self,
        model_id: str = "fake-model",
        *,
        image_text: str = "x",
        by_red: Mapping[int, str] | None = None,
        dim: int = 32,
        image_size: int = 8,
    ) -> None:
        self.model_id, self.dim, self.image_size = model_id, dim, image_size
        self.image_text, self.target = image_text, dict(by_red or {})
        self.embedded_texts: list[str] = []  # every text embedded so far, for tests of the embedding cache

    def _text_for(self, image: np.ndarray) -> str:
        return self.target[int(image[0, 0, 0])] if self.target else self.image_text

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded_texts.extend(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([text_vector(t, self.dim) for t in texts])

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([text_vector(self._text_for(im), self.dim) for im in images])
