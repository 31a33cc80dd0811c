"""Metrics against brute force / closed forms, and evaluate() on a bundle with known embeddings."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from models import metrics
from models.evaluate import evaluate
from models.factory import ModelBundle


def _brute_rank(row, label):
    # Stable descending order: equal scores keep label order.
    order = sorted(range(len(row)), key=lambda j: (-row[j], j))
    return order.index(label) + 1


@pytest.fixture
def tied_scores():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(200, 6)).astype(float)  # few values: many ties
    labels = rng.integers(0, 6, size=200)
    return scores, labels


def test_rank_metrics_match_brute_force(tied_scores):
    scores, labels = tied_scores
    ranks = [_brute_rank(list(r), y) for r, y in zip(scores, labels)]
    for k in (1, 3, 6):
        assert metrics.topk_accuracy(scores, labels, k) == pytest.approx(np.mean([r <= k for r in ranks]))
    assert metrics.mean_reciprocal_rank(scores, labels) == pytest.approx(np.mean([1 / r for r in ranks]))
    gains = [1 / math.log2(r + 1) if r <= 5 else 0.0 for r in ranks]
    assert metrics.ndcg_at_k(scores, labels, 5) == pytest.approx(np.mean(gains))


def test_top1_agrees_with_confusion_diagonal_under_ties(tied_scores):
    scores, labels = tied_scores
    cm = metrics.confusion_matrix(labels, metrics.predictions(scores), 6)
    assert cm.sum() == len(labels)
    assert np.trace(cm) / len(labels) == pytest.approx(metrics.topk_accuracy(scores, labels, 1))


def test_confusion_and_recall_by_counting(tied_scores):
    scores, labels = tied_scores
    pred = [max(range(6), key=lambda j: (r[j], -j)) for r in scores]  # first maximum
    recall = metrics.per_label_recall(scores, labels)
    cm = metrics.confusion_matrix(labels, np.array(pred), 6)
    for a in range(6):
        for b in range(6):
            assert cm[a, b] == sum(1 for y, p in zip(labels, pred) if y == a and p == b)
        idx = [i for i, y in enumerate(labels) if y == a]
        assert recall[a] == pytest.approx(np.mean([pred[i] == a for i in idx]))


def test_recall_is_nan_for_absent_label():
    recall = metrics.per_label_recall(np.array([[1.0, 0.0, 0.0]]), np.array([0]))
    assert recall[0] == 1.0 and np.isnan(recall[1]) and np.isnan(recall[2])


def test_auroc_matches_pair_count_with_ties():
    rng = np.random.default_rng(2)
    s = rng.integers(0, 5, size=120).astype(float)
    pos = rng.random(120) < 0.4
    wins = sum((a > b) + 0.5 * (a == b) for a in s[pos] for b in s[~pos])
    assert metrics.auroc(s, pos) == pytest.approx(wins / (pos.sum() * (~pos).sum()))
    assert metrics.auroc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == 1.0
    assert metrics.auroc([0.5, 0.5], [0, 1]) == 0.5


def test_auroc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        metrics.auroc([0.1, 0.2], [True, True])


def test_modality_gap_closed_form():
    e1, e2 = np.eye(3)[0], np.eye(3)[1]
    assert metrics.modality_gap([e1, e1], [e2]) == pytest.approx(math.sqrt(2))
    assert metrics.modality_gap([e1], [e1]) == pytest.approx(0.0)
    # Defined on the unit sphere: scaling rows changes nothing.
    assert metrics.modality_gap([3 * e1, e2], [e2]) == pytest.approx(metrics.modality_gap([e1, e2], [e2]))


def test_metric_input_errors():
    with pytest.raises(ValueError, match="labels must lie"):
        metrics.topk_accuracy(np.zeros((2, 3)), np.array([0, 3]), 1)
    with pytest.raises(ValueError, match="integer"):
        metrics.mean_reciprocal_rank(np.zeros((1, 2)), np.array([0.5]))


# ---------------------------------------------------------------- evaluate()

E = np.eye(3)
TEXTS = {"ok": ["clean surface", "flawless part"], "scratch": ["a scratch"], "stain": ["a stain", "a dark stain"]}
TEXT_EMB = {
    "clean surface": E[0],
    "flawless part": (E[0] + E[1]) / math.sqrt(2),
    "a scratch": E[1],
    "a stain": E[2],
    "a dark stain": E[2],
}
IMAGE_EMB = [E[0], E[1], E[2], E[0]]  # image k is a flat image whose pixel value is k
LABELS = ["ok", "scratch", "stain", "scratch"]  # the last one looks exactly like an ok part
SCALE = 10.0


class _FixedModel(nn.Module):
    """Embeddings looked up by id: images carry their id as pixel value, texts via the tokenizer."""

    def __init__(self):
        super().__init__()
        self.visual = nn.Module()
        self.visual.preprocess_cfg = {"size": 4}
        self.logit_scale = nn.Parameter(torch.tensor(math.log(SCALE)))
        self.img = torch.tensor(np.array(IMAGE_EMB), dtype=torch.float32)
        self.txt = torch.tensor(np.array(list(TEXT_EMB.values())), dtype=torch.float32)

    def encode_image(self, x):
        return self.img[x[:, 0].long()]

    def encode_text(self, tokens):
        return self.txt[tokens[:, 0]]


def _fixed_bundle():
    ids = {t: i for i, t in enumerate(TEXT_EMB)}
    return ModelBundle(
        model=_FixedModel(),
        preprocess=lambda im: torch.tensor([float(np.asarray(im)[0, 0, 0])]),
        train_preprocess=None,
        tokenizer=lambda texts: torch.tensor([[ids[t]] for t in texts]),
        arch="fixed",
        model_cfg={"embed_dim": 3},
        metadata={},
        model_id="fixed-id",
        device=torch.device("cpu"),
    )


def _images():
    return [np.full((4, 4, 3), k, np.uint8) for k in range(len(IMAGE_EMB))]


def test_evaluate_hand_computed_case():
    out = evaluate(_fixed_bundle(), _images(), LABELS, TEXTS)
    # Mean-of-cosine label scores per image (ok, scratch, stain):
    #   img0 = e1: (1 + 1/sqrt2)/2, 0, 0 -> ok rank 1;   img1 = e2: (1/sqrt2)/2, 1, 0 -> rank 1
    #   img2 = e3: 0, 0, 1 -> rank 1;                    img3 = e1 (true scratch): scratch ties stain
    #   at 0 behind ok; ties go by label order, so scratch ranks 2.
    assert out["n"] == 4
    assert out["top1"] == pytest.approx(0.75)
    assert out["top3"] == pytest.approx(1.0)
    assert out["mrr"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert out["ndcg5"] == pytest.approx((3 + 1 / math.log2(3)) / 4)
    assert out["per_label_recall"] == pytest.approx({"ok": 1.0, "scratch": 0.5, "stain": 1.0})
    assert out["confusion"] == {"labels": ["ok", "scratch", "stain"], "matrix": [[1, 0, 0], [1, 1, 0], [0, 0, 1]]}
    # Defects img1, img2 beat the ok img0 on 1 - P(ok); img3 has img0's embedding: a tie, 1/2.
    assert out["auroc_defect_vs_ok"] == pytest.approx(2.5 / 3)
    text_rows = [E[0], (E[0] + E[1]) / math.sqrt(2), E[1], E[2], E[2], E[1]]
    gap = np.linalg.norm(np.mean(IMAGE_EMB, axis=0) - np.mean(text_rows, axis=0))
    assert out["modality_gap"] == pytest.approx(gap)
    assert out["model_id"] == "fixed-id"
    json.dumps(out)  # JSON-serialisable as promised


def test_evaluate_max_aggregate_and_pil_input():
    pil = [Image.fromarray(a) for a in _images()]
    out = evaluate(_fixed_bundle(), pil, LABELS, TEXTS, aggregate="max")
    assert out["top1"] == pytest.approx(0.75)  # same ranking here, but via max(1, 1/sqrt2) = 1 for img0
    assert out["aggregate"] == "max"


def test_evaluate_auroc_null_without_ok_or_single_class():
    assert evaluate(_fixed_bundle(), _images(), LABELS, TEXTS, ok_labels=())["auroc_defect_vs_ok"] is None
    only_defects = evaluate(_fixed_bundle(), _images()[1:], LABELS[1:], TEXTS)
    assert only_defects["auroc_defect_vs_ok"] is None


def test_evaluate_rejects_unknown_label():
    with pytest.raises(ValueError, match="dent"):
        evaluate(_fixed_bundle(), _images()[:1], ["dent"], TEXTS)
    with pytest.raises(ValueError, match="pair up"):
        evaluate(_fixed_bundle(), _images(), LABELS[:2], TEXTS)


def test_evaluate_tiny_model_ranges(tiny_bundle):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(6)]
    labels = ["ok", "scratch", "stain", "ok", "scratch", "stain"]
    out = evaluate(tiny_bundle, images, labels, TEXTS, batch_size=4)
    expected = {
        "n",
        "top1",
        "top3",
        "mrr",
        "ndcg5",
        "per_label_recall",
        "confusion",
        "auroc_defect_vs_ok",
        "modality_gap",
        "aggregate",
        "model_id",
    }
    assert expected <= set(out)
    for key in ("top1", "top3", "mrr", "ndcg5", "auroc_defect_vs_ok"):
        assert 0.0 <= out[key] <= 1.0, key
    assert out["top1"] <= out["top3"] and 1 / 3 <= out["mrr"] <= 1.0  # 3 labels: rank <= 3
    assert 0.0 <= out["modality_gap"] <= 2.0
    assert np.array(out["confusion"]["matrix"]).sum() == 6
    assert out["model_id"] == tiny_bundle.model_id
    json.dumps(out)


def test_segment_label_scores_mean_and_max_match_a_loop() -> None:
    from models.metrics import segment_label_scores

    rng = np.random.default_rng(3)
    cos = rng.uniform(-1, 1, size=(4, 6))
    counts = [1, 3, 2]
    bounds = [(0, 1), (1, 4), (4, 6)]
    expected_mean = np.stack([cos[:, a:b].mean(axis=1) for a, b in bounds], axis=1)
    expected_max = np.stack([cos[:, a:b].max(axis=1) for a, b in bounds], axis=1)
    np.testing.assert_allclose(segment_label_scores(cos, counts, "mean"), expected_mean)
    np.testing.assert_allclose(segment_label_scores(cos, counts, "max"), expected_max)
    with pytest.raises(ValueError, match="sum to 6"):
        segment_label_scores(cos, [1, 1], "mean")
