"""Zero-shot evaluation of a model against a description library: ranking metrics as plain JSON.

Each label is scored by aggregating the cosines between the image and each of the label's
descriptions (each embedded and normalised separately). "mean" is the default because the
prototype found it as good as or better than "max" (docs/prototype-notes.md). Embedding goes
through models.scorer.TorchScorer, i.e. exactly the path the station uses when it ranks a frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from models import metrics
from models.factory import ModelBundle
from models.scorer import TorchScorer

AGGREGATES = ("mean", "max")


def _as_array(i: int, image: np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        return image
    raise ValueError(f"image {i} is a {type(image).__name__}; expected a numpy uint8 array or a PIL image")


def _check_inputs(
    images: Sequence[Any], labels: Sequence[str], label_texts: Mapping[str, Sequence[str]], aggregate: str
) -> None:
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels; they must pair up")
    if len(images) == 0:
        raise ValueError("nothing to evaluate: no images")
    if not label_texts:
        raise ValueError("label_texts is empty: pass at least one label with its descriptions")
    empty = [k for k, v in label_texts.items() if isinstance(v, str) or len(v) == 0]
    if empty:
        raise ValueError(f"labels {empty} need a non-empty list of descriptions (not a bare string)")
    unknown = sorted({str(lb) for lb in labels} - set(label_texts))
    if unknown:
        raise ValueError(
            f"images carry labels {unknown} that label_texts does not describe; known labels: {list(label_texts)}"
        )


def evaluate(
    bundle: ModelBundle,
    images: Sequence[np.ndarray | Image.Image],
    labels: Sequence[str],
    label_texts: Mapping[str, Sequence[str]],
    ok_labels: Sequence[str] = ("ok",),
    aggregate: str = "mean",
    batch_size: int = 32,
    per_image: bool = False,
) -> dict[str, Any]:
    """Score labelled images against label_texts; return a JSON-serialisable metrics dict.

    per_image adds each image's rank of its true label and defect score ("per_image"), from which
    the caller can draw confidence intervals; it is off by default to keep the JSON small.
    """
    _check_inputs(images, labels, label_texts, aggregate)
    names = list(label_texts)
    index = {name: j for j, name in enumerate(names)}
    y = np.array([index[str(lb)] for lb in labels], dtype=np.int64)
    descriptions = [str(t) for name in names for t in label_texts[name]]
    counts = [len(label_texts[name]) for name in names]
    owners = np.repeat(np.arange(len(names)), counts)

    scorer = TorchScorer(bundle, batch_size=batch_size)
    image_emb = scorer.embed_images([_as_array(i, im) for i, im in enumerate(images)]).astype(np.float64)
    text_emb = scorer.embed_texts(descriptions).astype(np.float64)
    scores = metrics.segment_label_scores(image_emb @ text_emb.T, counts, aggregate)

    recall = metrics.per_label_recall(scores, y)
    cm = metrics.confusion_matrix(y, metrics.predictions(scores), len(names))
    # Defect score = 1 - P(best ok label), with P the softmax of the label scores at the model's own
    # temperature: the same calibration the station's ranking shows the operator.
    ok_idx = [index[name] for name in ok_labels if name in index]
    is_defect = ~np.isin(y, ok_idx)
    auroc = defect_score = None
    if ok_idx and 0 < is_defect.sum() < len(y):
        probs = metrics.softmax(scores, scorer.logit_scale)
        defect_score = 1.0 - probs[:, ok_idx].max(axis=1)
        auroc = metrics.auroc(defect_score, is_defect)
    # Modality gap between the images and the descriptions of their own labels (one row per pair).
    pair_text = np.concatenate([text_emb[owners == j] for j in y])
    result = {
        "n": int(len(y)),
        "top1": metrics.topk_accuracy(scores, y, 1),
        "top3": metrics.topk_accuracy(scores, y, 3),
        "mrr": metrics.mean_reciprocal_rank(scores, y),
        "ndcg5": metrics.ndcg_at_k(scores, y, 5),
        "per_label_recall": {name: (None if math.isnan(r) else float(r)) for name, r in zip(names, recall)},
        "confusion": {"labels": names, "matrix": cm.tolist()},
        "auroc_defect_vs_ok": auroc,
        "modality_gap": metrics.modality_gap(image_emb, pair_text),
        "aggregate": aggregate,
        "model_id": bundle.model_id,
    }
    if per_image:
        result["per_image"] = {
            "rank": metrics.true_label_ranks(scores, y).tolist(),
            "is_defect": is_defect.tolist(),
            "defect_score": None if defect_score is None else defect_score.tolist(),
        }
    return result
