"""The probe's small-budget corrections: the plant's prior shift (balanced examples, skewed plant)
and shrinkage toward the words; both deterministic and on the scoring configuration's record."""

from __future__ import annotations

import numpy as np

from inspector.frame.example_cache import build_cache
from inspector.frame.example_probe import PRIOR_MIN_DECISIONS, ProbeParams, fit_probe, plant_prior, text_prototypes

DIM = 64


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _two_labels(per_label: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two overlapping clusters (ok, defect), words that point at them weakly, and their centres."""
    rng = np.random.default_rng(seed)
    common = _unit(rng.normal(size=DIM))
    centres = _unit(rng.normal(size=(2, DIM)))
    labels = np.repeat(np.arange(2), per_label)
    images = _unit(3.0 * common + centres[labels] + 0.6 * rng.normal(size=(len(labels), DIM)))
    texts = _unit(0.3 * centres + rng.normal(size=(2, DIM)))
    return images, labels, texts, _unit(3.0 * common + centres)


def _cache(prior: tuple[float, ...] | None, params: ProbeParams, per_label: int = 10):
    keys, labels, texts, _ = _two_labels(per_label)
    grouped = [(f"l{c}", [(f"e{i}", keys[i]) for i in np.flatnonzero(labels == c)]) for c in range(2)]
    return build_cache(grouped, np.stack, (texts, np.ones(2, np.int64)), "h", probe_params=params, prior=prior)


def _borderline(cache, texts: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """A frame on the line between the two centres where the unshifted ranking's two labels tie best."""
    best, frame = None, None
    for t in np.linspace(0.0, 1.0, 201):
        x = _unit((1 - t) * centres[0] + t * centres[1])[None]
        s = cache.label_scores(x @ texts.T, x)[0]
        if best is None or abs(s[0] - s[1]) < best:
            best, frame = abs(s[0] - s[1]), x
    return frame


def test_plant_prior_is_smoothed_rounded_and_needs_enough_decisions() -> None:
    assert plant_prior(None) is None
    assert plant_prior([PRIOR_MIN_DECISIONS - 1, 0]) is None  # too few decisions to trust a mix
    assert plant_prior([90, 8]) == (0.91, 0.09)  # (90 + 1) / 100, (8 + 1) / 100
    assert plant_prior([500, 0]) == (1.0, 0.01)  # never 0: a label not yet decided keeps a floor
    # a few more decisions rarely change it, so recompiles keep the same prior (and configuration)
    assert plant_prior([900, 100]) == plant_prior([903, 101])


def test_a_skewed_plant_flips_a_borderline_frame_toward_its_frequent_label() -> None:
    on = ProbeParams(prior_strength=1.0)
    plain = _cache(None, on)  # no decision log: no shift
    assert plain.probe.prior is None and plain.describe()["prior"] is None
    _, _, texts, centres = _two_labels(10)
    frame = _borderline(plain, texts, centres)
    words = frame @ texts.T
    mostly_ok, mostly_defect = _cache((0.9, 0.1), on), _cache((0.1, 0.9), on)
    assert mostly_ok.label_scores(words, frame)[0].argmax() == 0
    assert mostly_defect.label_scores(words, frame)[0].argmax() == 1
    # the shift moves the offsets only: a plant whose mix is the examples' own (10 and 10) moves nothing
    same = _cache((0.5, 0.5), on)
    assert np.array_equal(same.probe.bias, plain.probe.bias) and np.array_equal(same.probe.delta, plain.probe.delta)
    # off (strength 0, the pre-prior behaviour), a skewed plant changes nothing and is not recorded
    off = _cache((0.9, 0.1), ProbeParams(prior_strength=0.0))
    assert np.array_equal(off.probe.bias, _cache(None, ProbeParams(prior_strength=0.0)).probe.bias)
    assert off.describe()["prior"] is None


def test_the_prior_is_on_the_record_and_the_fit_is_deterministic() -> None:
    on = ProbeParams(prior_strength=1.0, shrink=3.0)
    first, again = _cache((0.8, 0.2), on), _cache((0.8, 0.2), on)
    described = first.describe()
    assert described["prior"] == [0.8, 0.2] and described["prior_strength"] == 1.0 and described["shrink"] == 3.0
    assert described == again.describe()
    assert np.array_equal(first.probe.bias, again.probe.bias) and np.array_equal(first.probe.delta, again.probe.delta)
    assert _cache((0.7, 0.3), on).describe() != described  # another plant mix: another configuration


def test_shrinkage_trusts_the_words_more_with_few_examples() -> None:
    keys, labels, texts, _ = _two_labels(3)
    protos, has = text_prototypes(texts, np.ones(2, np.int64)), np.ones(2, bool)
    test = _two_labels(20, seed=1)[0]
    free = fit_probe(keys, labels, protos, has, ProbeParams(shrink=0.0), reuse=False)
    shrunk = fit_probe(keys, labels, protos, has, ProbeParams(shrink=3.0), reuse=False)
    # 3 examples a label, shrink 3: half of the probe's correction to the words is kept
    assert np.allclose(shrunk.correction(test), 0.5 * free.correction(test), atol=1e-5)
    many_keys, many_labels, _, _ = _two_labels(300)
    free = fit_probe(many_keys, many_labels, protos, has, ProbeParams(shrink=0.0), reuse=False)
    shrunk = fit_probe(many_keys, many_labels, protos, has, ProbeParams(shrink=3.0), reuse=False)
    assert np.allclose(shrunk.correction(test), 300 / 303 * free.correction(test), atol=1e-5)
