"""The text-anchored probe on the labels' examples: deterministic, better than the words where the
examples tell the labels apart, the words alone without examples, a label known only by examples."""

from __future__ import annotations

import numpy as np

from inspector.frame.example_cache import build_cache
from inspector.frame.example_probe import METHOD, ProbeParams, fit_probe, text_prototypes
from inspector.frame.ranking import build_index, rank
from inspector.library.labels import Label, Library

DIM, LABELS = 64, 3


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _problem(per_label: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separable clusters sharing a large common direction (as image embeddings do), and description
    embeddings that point mostly elsewhere and all favour label 0 (the words' constant preference)."""
    rng = np.random.default_rng(seed)
    common = _unit(rng.normal(size=DIM))
    centres = _unit(rng.normal(size=(LABELS, DIM)))
    labels = np.repeat(np.arange(LABELS), per_label)
    images = _unit(2.0 * common + centres[labels] + 0.1 * rng.normal(size=(len(labels), DIM)))
    texts = _unit(0.15 * centres + rng.normal(size=(LABELS, DIM)))
    texts[0] = _unit(texts[0] + 1.5 * common)  # every image looks most like label 0's words
    return images, labels, texts


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((scores.argmax(axis=1) == labels).mean())


def test_the_fit_is_deterministic() -> None:
    keys, labels, texts = _problem(5)
    protos = text_prototypes(texts, np.ones(LABELS, np.int64))
    first = fit_probe(keys, labels, protos, np.ones(LABELS, bool), reuse=False)
    second = fit_probe(keys.copy(), labels.copy(), protos.copy(), np.ones(LABELS, bool), reuse=False)
    assert first is not second and first.iterations > 0
    assert np.array_equal(first.delta, second.delta) and np.array_equal(first.bias, second.bias)
    # the same example set and words again (a recompile of an unchanged library): the kept fit
    assert fit_probe(keys, labels, protos, np.ones(LABELS, bool)) is fit_probe(
        keys, labels, protos, np.ones(LABELS, bool)
    )
    other = fit_probe(keys[1:], labels[1:], protos, np.ones(LABELS, bool))  # one example fewer: fitted again
    assert not np.array_equal(other.delta, first.delta)


def test_it_beats_the_words_on_separable_examples() -> None:
    keys, labels, texts = _problem(5, seed=0)
    test, test_labels, _ = _problem(50, seed=0)  # same centres and words, new draws
    words = test @ texts.T
    probe = fit_probe(keys, labels, text_prototypes(texts, np.ones(LABELS, np.int64)), np.ones(LABELS, bool))
    assert _accuracy(words, test_labels) <= 0.5  # the words mostly say label 0
    assert _accuracy(words + probe.correction(test), test_labels) >= 0.9
    # the station's path: the probe blended with the example cache (build_cache's default)
    grouped = [(f"l{c}", [(f"e{i}", keys[i]) for i in np.flatnonzero(labels == c)]) for c in range(LABELS)]
    cache = build_cache(grouped, np.stack, (texts, np.ones(LABELS, np.int64)), "h")
    assert _accuracy(cache.label_scores(words, test), test_labels) >= 0.9


def test_without_examples_it_is_the_words() -> None:
    _, _, texts = _problem(1)
    images = _problem(10, seed=3)[0]
    probe = fit_probe(np.zeros((0, DIM), np.float32), np.zeros(0, np.int64), texts.astype(np.float64), np.ones(3, bool))
    assert probe.iterations == 0 and not probe.correction(images).any()
    assert build_cache([("a", []), ("b", []), ("c", [])], lambda _: None, (texts, np.ones(3)), "h") is None


def test_a_label_with_examples_and_no_words() -> None:
    keys, labels, texts = _problem(5)
    test, test_labels, _ = _problem(30, seed=0)
    counts = np.array([1, 1, 0])  # label 2 has no description: its row is its examples' mean
    protos = text_prototypes(texts[:2], counts)
    assert not protos[2].any()
    probe = fit_probe(keys, labels, protos, counts > 0)
    scores = np.nan_to_num(test @ protos.T) + probe.correction(test)
    assert _accuracy(scores[test_labels == 2], test_labels[test_labels == 2]) >= 0.9


def test_a_library_without_examples_ranks_by_its_words() -> None:
    _, _, texts = _problem(1)
    library = Library("l", tuple(Label(f"l{i}", f"L{i}", "scrap", 1, (f"d{i}",)) for i in range(LABELS)))
    index = build_index(library, lambda _: texts, "m", examples=lambda e, c: None)
    image = _problem(1, seed=4)[0][0]
    ranking = rank(image, index, 100.0)
    assert [c.label_id for c in ranking.candidates] == [f"l{i}" for i in np.argsort(-(texts @ image))]
    assert {c.carried_by for c in ranking.candidates} == {"words"}


def test_the_cache_names_the_method_its_parameters_and_the_example_set() -> None:
    keys, labels, texts = _problem(2)
    grouped = [(f"l{c}", [(f"e{i}", keys[i]) for i in np.flatnonzero(labels == c)]) for c in range(LABELS)]
    cache = build_cache(grouped, np.stack, (texts, np.ones(LABELS, np.int64)), "set-hash")
    described = cache.describe()
    assert described["method"] == METHOD and described["example_set"] == "set-hash"
    assert {k: described[k] for k in ("anchor", "temperature", "bias")} == {
        "anchor": ProbeParams().anchor,
        "temperature": ProbeParams().temperature,
        "bias": ProbeParams().bias,
    }
    blend = build_cache(grouped, np.stack, (texts, np.ones(LABELS, np.int64)), "set-hash", method="blend")
    assert blend.describe()["method"] == "blend" and blend.probe is None
