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

The ranking's default is not this blend but the text-anchored probe of inspector.frame.example_probe
(it won on the same validation split); the cache still holds the example embeddings for "like
example: ..." and for the blend, which `build_cache(method="blend")` keeps available. `describe()`
is what an inspection's scoring configuration records of either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from inspector.frame.example_probe import Probe, ProbeParams, fit_probe, text_prototypes

CARRIED = ("words", "examples", "both")
WEIGHTS = (0.0, 0.25, 0.5, 0.7, 0.85, 1.0)  # the weights the examples may vote for
MAX_CALIBRATION = 1000


@dataclass(frozen=True)
class BlendParams:
    """How example evidence is mixed with the words (chosen on validation, see the module doc)."""

    weight: float = 0.85  # share of the example score for a label with descriptions and examples
    sharpness: float = 30.0  # log-mean-exp temperature over a label's examples
    auto_weight: bool = False  # let the examples vote for the weight (calibrate); lost on validation, see bench
    # Used until the examples can calibrate themselves (fewer than two): the midpoint of the shipped
    # model's own calibrations at 20 examples per label (textile 2.57, -2.07; ELPV 1.12, -0.64).
    fallback_scale: float = 1.8
    fallback_shift: float = -1.35


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
    weight: float  # the blend weight in force (BlendParams.weight, or the examples' vote)
    params: BlendParams = BlendParams()
    probe: Probe | None = None  # the text-anchored probe: when set, the ranking uses it, not the blend

    @cached_property
    def recorded(self) -> tuple[tuple[str, Any], ...]:
        """describe() as sorted items, made once per compiled library (each ranking records it)."""
        return tuple(sorted(self.describe().items()))

    def describe(self) -> dict[str, Any]:
        """How the examples entered the scores: method, its parameters, the example set (recorded)."""
        fitted = {"scale": round(self.scale, 6), "shift": round(self.shift, 6), "example_set": self.set_hash}
        if self.probe is not None:
            prior = None if self.probe.prior is None else list(self.probe.prior)
            return {**self.probe.params.describe(), **fitted, "iterations": self.probe.iterations, "prior": prior}
        p = self.params
        return {
            "method": "blend",
            "weight": self.weight,
            "sharpness": p.sharpness,
            "auto_weight": p.auto_weight,
            **fitted,
        }

    def label_scores(self, words: np.ndarray, images: np.ndarray) -> np.ndarray:
        """[N, L] words' label scores (NaN: no words), [N, D] images -> [N, L] the ranking's label scores."""
        if self.probe is not None:
            fitted = np.nan_to_num(words, nan=0.0) + self.probe.correction(images)
            if self.weight == 0.0:
                return fitted
            sims = images.astype(np.float32, copy=False) @ self.keys.T
            cache = soft_nearest(sims, self.label_of, len(self.counts), self.probe.params.cache_sharpness)
            return blend(fitted, cache, self.scale, self.shift, self.weight)[0]
        return blend(words, self.example_scores(images)[0], self.scale, self.shift, self.weight)[0]

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
            out[:, li] = sims[:, start : start + n].mean(axis=1)
        start += int(n)
    return out


def blend(
    words: np.ndarray, examples: np.ndarray, scale: float, shift: float, weight: float, per_row: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """[N, L] word and example scores (NaN = none) -> ([N, L] blended score, index into CARRIED).

    What a label has is the same for every row of a ranking ([L] carried); per_row=True lets it
    differ by row ([N, L]), as in the leave-one-out vote where a label may lose its only example."""
    mapped = scale * examples + shift
    has_w, has_e = np.isfinite(words), np.isfinite(examples)
    if not per_row:
        has_w, has_e = has_w[0], has_e[0]
    score = np.where(has_w & has_e, (1 - weight) * words + weight * mapped, np.where(has_w, words, mapped))
    carried = np.where(has_w & has_e, 2, np.where(has_w, 0, 1))
    return score, carried


def _leave_one_out(keys: np.ndarray, label_of: np.ndarray, n_labels: int, sharpness: float) -> np.ndarray:
    """[K, L] example scores of each example against the OTHER examples (NaN: no other example of that label)."""
    sims = keys @ keys.T
    np.fill_diagonal(sims, -1e9)  # exp(sharpness * -1e9) = 0: an example never counts as its own neighbour
    ex = soft_nearest(sims, label_of, n_labels, sharpness)
    ex[ex < -2] = np.nan  # a label whose only example is this one
    return ex


def calibrate(
    keys: np.ndarray, label_of: np.ndarray, n_labels: int, words: np.ndarray, params: BlendParams
) -> tuple[float, float, float]:
    """(scale, shift, weight) from the examples alone, each scored against the OTHER examples.

    scale and shift match the example scores' mean and spread to the words'; the weight is the one
    (of WEIGHTS) under which the blend ranks the examples' own labels best, ties going to the
    validated default: a library whose words do not tell its examples apart leans on the examples.
    """
    if len(keys) < 2:
        return params.fallback_scale, params.fallback_shift, params.weight
    if len(keys) > MAX_CALIBRATION:  # K x K cosines: bound the cost; a seeded subset is as good a vote
        pick = np.sort(np.random.default_rng(0).choice(len(keys), MAX_CALIBRATION, replace=False))
        keys, label_of, words = keys[pick], label_of[pick], words[pick]
    ex = _leave_one_out(keys, label_of, n_labels, params.sharpness)
    e, w = ex[np.isfinite(ex)], words[np.isfinite(words)]
    if e.size < 2 or w.size < 2 or e.std() < 1e-6:
        return params.fallback_scale, params.fallback_shift, params.weight
    scale = float(w.std() / e.std())
    shift = float(w.mean() - scale * e.mean())
    if not params.auto_weight:
        return scale, shift, params.weight
    votes = []
    for weight in WEIGHTS:
        blended = blend(words, ex, scale, shift, weight, per_row=True)[0]
        correct = np.nanargmax(np.where(np.isfinite(blended), blended, -np.inf), axis=1) == label_of
        votes.append((float(correct.mean()), -abs(weight - params.weight), weight))
    return scale, shift, max(votes)[2]


def build_cache(
    labels: Sequence[tuple[str, Sequence[tuple[str, Any]]]],
    embed_images: Callable[[list[Any]], np.ndarray],
    text_index: tuple[np.ndarray, np.ndarray],
    set_hash: str,
    params: BlendParams = BlendParams(),
    method: str = "probe",
    probe_params: ProbeParams = ProbeParams(),
    prior: tuple[float, ...] | None = None,
) -> ExampleCache | None:
    """labels: per label (in library order) its examples as (name, image), where `embed_images`
    turns the images into [K, D] unit rows; text_index: the description embeddings [M, D] and
    per-label counts [L]. method "probe" (default) fits the text-anchored probe, "blend" the
    calibrated blend. prior: the plant's label shares in library order (example_probe.plant_prior
    of the decision log's counts) for the probe's prior shift; None: no shift. None when the
    library has no examples."""
    if method not in ("probe", "blend"):
        raise ValueError(f"unknown example method {method!r} (probe or blend)")
    names = [name for _, examples in labels for name, _ in examples]
    if not names:
        return None
    keys = np.ascontiguousarray(embed_images([rgb for _, examples in labels for _, rgb in examples]), np.float32)
    label_of = np.array([li for li, (_, examples) in enumerate(labels) for _ in examples], dtype=np.int64)
    counts = np.bincount(label_of, minlength=len(labels)).astype(np.int64)
    embeddings, text_counts = text_index
    words = text_scores(keys @ embeddings.T, text_counts)
    probe = None
    if method == "probe":
        protos = text_prototypes(embeddings, text_counts)
        probe = fit_probe(keys, label_of, protos, text_counts > 0, probe_params, prior=prior)
        # the cache is calibrated against the probe's scores of the examples, as the blend against the words'
        words = np.nan_to_num(words, nan=0.0) + probe.correction(keys)
        params = BlendParams(weight=probe_params.cache_weight, sharpness=probe_params.cache_sharpness)
    scale, shift, weight = calibrate(keys, label_of, len(labels), words, params)
    return ExampleCache(keys, label_of, counts, tuple(names), set_hash, scale, shift, weight, params, probe)
