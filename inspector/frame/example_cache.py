"""Ranking with example images: a cache of example embeddings blended with description similarity.

A label's example score is a soft nearest-neighbour similarity of the part's image embedding to
the label's example embeddings, the log-mean-exp of `sharpness` x cosine (sharpness -> 0: the
mean, i.e. the centroid; large: the nearest example). Image-to-image cosines live on another
scale than image-to-text cosines (about 0.8 against 0.25 for the shipped model), so the example
score is mapped onto the description scale by an affine calibration before the two are mixed:

    score = (1 - weight) * words + weight * (scale * examples + shift)   (a label with both)
    score = words  |  scale * examples + shift                           (a label with one)

`scale` and `shift` are fitted on the examples themselves at compile time (each example against
the others, so nothing but the library is needed and a new example takes effect on the next
part); with fewer than two examples a fixed fallback is used. The parameters in BlendParams were
chosen on a validation split (bench/examples_curve.py, which also compares a Tip-Adapter cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CARRIED = ("words", "examples", "both")


@dataclass(frozen=True)
class BlendParams:
    """How example evidence is mixed with the words (chosen on validation, see the module doc)."""

    weight: float = 0.5  # share of the example score for a label with descriptions and examples
    sharpness: float = 10.0  # log-mean-exp temperature over a label's examples
    # Used until the examples can calibrate themselves (fewer than two): the shipped model's mapping.
    fallback_scale: float = 0.5
    fallback_shift: float = -0.2


@dataclass(frozen=True)
class ExampleCache:
    """Example embeddings of a library's labels, grouped label by label, with their calibration."""

    keys: np.ndarray  # [K, D] float32 unit rows
    label_of: np.ndarray  # [K] label index of each key
    counts: np.ndarray  # [L] examples per label
    names: tuple[str, ...]  # [K] what the operator sees: the example's reason, else its hash prefix
    set_hash: str  # inspector.library.examples.example_set_hash of the library compiled
    scale: float
    shift: float
    params: BlendParams = BlendParams()

    def example_scores(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, D] -> ([N, L] soft-nearest cosine per label, NaN without examples; [N, K] cosines)."""
        sims = images.astype(np.float32, copy=False) @ self.keys.T
        return soft_nearest(sims, self.label_of, len(self.counts), self.params.sharpness), sims


def soft_nearest(sims: np.ndarray, label_of: np.ndarray, n_labels: int, sharpness: float) -> np.ndarray:
    """[N, K] cosines -> [N, L] log-mean-exp per label of sharpness x cosine, / sharpness; NaN where empty."""
    out = np.full((sims.shape[0], n_labels), np.nan, dtype=np.float64)
    for li in range(n_labels):
        cols = sims[:, label_of == li].astype(np.float64)
        if cols.shape[1]:
            z = sharpness * cols
            top = z.max(axis=1, keepdims=True)
            out[:, li] = (top[:, 0] + np.log(np.exp(z - top).mean(axis=1))) / sharpness
    return out


def text_scores(sims: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """[N, M] description cosines grouped by label -> [N, L] mean per label; NaN for a label without words."""
    out = np.full((sims.shape[0], len(counts)), np.nan, dtype=np.float64)
    start = 0
    for li, n in enumerate(counts):
        if n:
            out[:, li] = sims[:, start:start + n].mean(axis=1)
        start += int(n)
    return out


def blend(words: np.ndarray, examples: np.ndarray, scale: float, shift: float, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """[N, L] word and example scores (NaN = none) -> ([N, L] blended score, [L] index into CARRIED)."""
    mapped = scale * examples + shift
    has_w, has_e = np.isfinite(words[0]), np.isfinite(examples[0])
    score = np.where(has_w & has_e, (1 - weight) * words + weight * mapped, np.where(has_w, words, mapped))
    carried = np.where(has_w & has_e, 2, np.where(has_w, 0, 1))
    return score, carried


def calibrate(keys: np.ndarray, label_of: np.ndarray, n_labels: int, words: np.ndarray,
              params: BlendParams) -> tuple[float, float]:
    """Affine map of example scores onto the words' scale: match mean and spread, each example
    scored against the OTHER examples (its own cosine of 1 would inflate the scale)."""
    if len(keys) < 2:
        return params.fallback_scale, params.fallback_shift
    sims = keys @ keys.T
    np.fill_diagonal(sims, -np.inf)  # exp(-inf) = 0: an example never counts as its own neighbour
    ex = soft_nearest(np.where(np.isfinite(sims), sims, -1e9), label_of, n_labels, params.sharpness)
    ex[(ex < -2)] = np.nan  # a label whose only example is this one
    e, w = ex[np.isfinite(ex)], words[np.isfinite(words)]
    if e.size < 2 or w.size < 2 or e.std() < 1e-6:
        return params.fallback_scale, params.fallback_shift
    scale = float(w.std() / e.std())
    return scale, float(w.mean() - scale * e.mean())


def build_cache(labels: Sequence[tuple[str, Sequence[tuple[str, Any]]]],
                embed_images: Callable[[list[Any]], np.ndarray], text_index: tuple[np.ndarray, np.ndarray],
                set_hash: str, params: BlendParams = BlendParams()) -> ExampleCache | None:
    """labels: per label (in library order) its examples as (name, image), where `embed_images`
    turns the images into [K, D] unit rows; text_index: the description embeddings [M, D] and
    per-label counts [L]. None when the library has no examples."""
    names = [name for _, examples in labels for name, _ in examples]
    if not names:
        return None
    keys = np.ascontiguousarray(embed_images([rgb for _, examples in labels for _, rgb in examples]), np.float32)
    label_of = np.array([li for li, (_, examples) in enumerate(labels) for _ in examples], dtype=np.int64)
    counts = np.bincount(label_of, minlength=len(labels)).astype(np.int64)
    embeddings, text_counts = text_index
    words = text_scores(keys @ embeddings.T, text_counts)
    scale, shift = calibrate(keys, label_of, len(labels), words, params)
    return ExampleCache(keys, label_of, counts, tuple(names), set_hash, scale, shift, params)
