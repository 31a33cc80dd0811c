"""Ranking and verdicts: pure numpy, checked against hand-built embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from inspector.frame.ranking import VerdictPolicy, build_index, decide, label_scores, rank
from inspector.library.labels import library_from_dict

LIB = library_from_dict(
    {
        "name": "t",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["fine", "clean"]},
            {
                "id": "scratch",
                "disposition": "rework",
                "severity": 2,
                "descriptions": ["a scratch", "a score", "a line"],
            },
            {"id": "crack", "disposition": "scrap", "severity": 5, "threshold": 0.9, "descriptions": ["a crack"]},
        ],
    }
)


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


# One axis per description, so an image's cosine to each description is just its coordinate.
AXES = {
    t: np.eye(6, dtype=np.float32)[i]
    for i, t in enumerate(["fine", "clean", "a scratch", "a score", "a line", "a crack"])
}


def _index():
    return build_index(LIB, lambda texts: np.stack([AXES[t] for t in texts]), "model-x", library_version=7)


def test_label_score_is_mean_of_description_cosines() -> None:
    image = _unit([0.1, 0.3, 0.6, 0.0, 0.3, 0.2])
    scores, sims = label_scores(image[None], _index())
    expected = [(image[0] + image[1]) / 2, (image[2] + image[3] + image[4]) / 3, image[5]]
    np.testing.assert_allclose(scores[0], expected, rtol=1e-6)
    np.testing.assert_allclose(sims[0], image, rtol=1e-6)


def test_rank_orders_labels_and_names_best_description() -> None:
    image = _unit([0.0, 0.1, 0.1, 0.9, 0.8, 0.0])
    ranking = rank(image, _index(), logit_scale=20.0)
    assert [c.label_id for c in ranking.candidates] == ["scratch", "ok", "crack"]
    assert ranking.top.description == "a score"
    probs = np.array([c.probability for c in ranking.candidates])
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    # softmax at the logit scale, recomputed by hand from the label means
    means = np.array([(image[2] + image[3] + image[4]) / 3, (image[0] + image[1]) / 2, image[5]])
    expected = np.exp(20 * means) / np.exp(20 * means).sum()
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    assert ranking.model_id == "model-x" and ranking.library_version == 7
    assert ranking.margin == pytest.approx(probs[0] - probs[1])


def test_top_k_truncates() -> None:
    ranking = rank(_unit([1, 0, 0, 0, 0, 0]), _index(), 10.0, top_k=2)
    assert len(ranking.candidates) == 2


def test_verdict_takes_disposition_when_decisive() -> None:
    ranking = rank(_unit([0, 0, 1, 1, 1, 0]), _index(), logit_scale=50.0)
    verdict = decide(ranking, _index())
    assert verdict.disposition == "rework" and not verdict.needs_review and not verdict.open_set


def test_verdict_needs_review_on_small_margin() -> None:
    ranking = rank(_unit([1, 1, 1, 1, 1, 0]), _index(), logit_scale=1.0)
    verdict = decide(ranking, _index(), VerdictPolicy(min_margin=0.2, default_threshold=0.0))
    assert verdict.needs_review and "margin" in verdict.reason


def test_verdict_respects_label_threshold() -> None:
    # crack wins, but its own threshold (0.9) is higher than its probability
    ranking = rank(_unit([0, 0, 0, 0, 0, 1]), _index(), logit_scale=2.0)
    assert ranking.top.label_id == "crack" and ranking.top.probability < 0.9
    verdict = decide(ranking, _index(), VerdictPolicy(min_margin=0.0))
    assert verdict.needs_review and "threshold" in verdict.reason


def test_open_set_when_nothing_matches() -> None:
    image = _unit([-1, -1, -1, -1, -1, -1])
    verdict = decide(rank(image, _index(), 10.0), _index())
    assert verdict.open_set and verdict.needs_review and "none of the listed" in verdict.reason


def test_index_refuses_wrong_embedding_count() -> None:
    with pytest.raises(ValueError, match="embeddings"):
        build_index(LIB, lambda texts: np.zeros((2, 6), np.float32), "m")


def test_ranking_leaves_numpy_blas_single_threaded() -> None:
    # Multi-threaded OpenBLAS spins after each product and slowed the encoder 2x at 100k descriptions.
    rank(_unit([0.1, 0.3, 0.6, 0.0, 0.3, 0.2]), _index(), logit_scale=100.0)
    # numpy's own BLAS: other libraries' copies (scipy, torch) never run numpy's matrix products.
    blas = [i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    assert blas and all(i["num_threads"] == 1 for i in blas), threadpool_info()
