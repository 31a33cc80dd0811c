"""Ranking and retrieval metrics over score matrices (pure numpy, no torch).

Conventions shared by every function:
- `scores` is [N, L]: row n holds sample n's score for each of L labels (higher = better).
- `labels` is [N] int: the index of each sample's one relevant label.
- The rank of the true label is 1-based. Ties are broken by label order, exactly as `np.argmax`
  and a stable descending sort would, so top-1 and the confusion matrix always agree.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _scores_labels(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty 2-D array [N, L], got shape {s.shape}")
    if y.shape != (s.shape[0],):
        raise ValueError(f"labels must be 1-D with one entry per score row ({s.shape[0]}), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integer label indices, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= s.shape[1]:
        raise ValueError(f"labels must lie in [0, {s.shape[1] - 1}], got range [{y.min()}, {y.max()}]")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    return s, y.astype(np.int64)


def true_label_ranks(scores: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """1-based rank of each sample's true label among its row's scores (ties: lower index first)."""
    s, y = _scores_labels(scores, labels)
    true = s[np.arange(len(y)), y][:, None]
    cols = np.arange(s.shape[1])[None, :]
    ahead = (s > true) | ((s == true) & (cols < y[:, None]))
    return 1 + ahead.sum(axis=1)


def predictions(scores: ArrayLike) -> np.ndarray:
    """Top-1 label index per row."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] == 0:
        raise ValueError(f"scores must be a 2-D array [N, L], got shape {s.shape}")
    return s.argmax(axis=1)


def topk_accuracy(scores: ArrayLike, labels: ArrayLike, k: int) -> float:
    """Fraction of samples whose true label ranks within the top k."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float((true_label_ranks(scores, labels) <= k).mean())


def mean_reciprocal_rank(scores: ArrayLike, labels: ArrayLike) -> float:
    """Mean of 1 / rank of the true label."""
    return float((1.0 / true_label_ranks(scores, labels)).mean())


def ndcg_at_k(scores: ArrayLike, labels: ArrayLike, k: int = 5) -> float:
    """NDCG@k with one relevant item per sample: 1/log2(rank + 1) if rank <= k, else 0."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranks = true_label_ranks(scores, labels)
    gains = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)  # ideal DCG is 1
    return float(gains.mean())


def confusion_matrix(labels: ArrayLike, predicted: ArrayLike, num_labels: int) -> np.ndarray:
    """[L, L] counts; row = true label, column = predicted label."""
    y, p = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels and predicted must be 1-D of equal length, got {y.shape} and {p.shape}")
    for name, a in (("labels", y), ("predicted", p)):
        if a.size and (a.min() < 0 or a.max() >= num_labels):
            raise ValueError(f"{name} must lie in [0, {num_labels - 1}]")
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def per_label_recall(scores: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Top-1 recall per label [L]; NaN for labels with no samples."""
    s, y = _scores_labels(scores, labels)
    cm = confusion_matrix(y, predictions(s), s.shape[1])
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x with tied values given the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # Boundaries of runs of equal values; each run gets the mean of the ranks it spans.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    run_rank = (starts + 1 + ends) / 2.0  # mean of (start+1 .. end)
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def auroc(scores: ArrayLike, positives: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U; a tied positive/negative pair counts one half)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    pos = np.asarray(positives).ravel()
    if pos.dtype != bool:
        if not np.isin(pos, (0, 1)).all():
            raise ValueError("positives must be booleans (or 0/1)")
        pos = pos.astype(bool)
    if s.shape != pos.shape:
        raise ValueError(f"scores and positives must have equal length, got {s.shape} and {pos.shape}")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUROC needs both classes; got {n_pos} positives and {n_neg} negatives")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    rank_sum = _average_ranks(s)[pos].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def modality_gap(image_emb: ArrayLike, text_emb: ArrayLike) -> float:
    """||mean of unit image embeddings - mean of unit text embeddings||_2 (Liang et al. 2022).

    Rows are L2-normalised first (a no-op for already-normalised embeddings) because the gap is
    defined on the unit sphere.
    """
    u, v = np.asarray(image_emb, dtype=np.float64), np.asarray(text_emb, dtype=np.float64)
    if u.ndim != 2 or v.ndim != 2 or u.shape[1] != v.shape[1] or len(u) == 0 or len(v) == 0:
        raise ValueError(f"embeddings must be non-empty [N, d] and [M, d], got {u.shape} and {v.shape}")
    norms_u, norms_v = np.linalg.norm(u, axis=1, keepdims=True), np.linalg.norm(v, axis=1, keepdims=True)
    if (norms_u == 0).any() or (norms_v == 0).any():
        raise ValueError("embeddings contain an all-zero row; it has no direction")
    return float(np.linalg.norm((u / norms_u).mean(axis=0) - (v / norms_v).mean(axis=0)))


def segment_label_scores(cosines: np.ndarray, counts: ArrayLike, aggregate: str = "mean") -> np.ndarray:
    """[N, M] image-description cosines, descriptions grouped label by label with `counts[l]` each
    -> [N, L] label scores: the mean (or max) over each label's descriptions. O(N*M)."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or (counts < 1).any() or counts.sum() != cosines.shape[1]:
        raise ValueError(f"counts {counts.tolist()} must be >= 1 each and sum to {cosines.shape[1]} descriptions")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if aggregate == "mean":
        return np.add.reduceat(cosines, starts, axis=1) / counts[None, :]
    if aggregate == "max":
        return np.maximum.reduceat(cosines, starts, axis=1)
    raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")


def softmax(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Softmax over the last axis of scale * x, max-subtracted for stability."""
    z = scale * np.asarray(x, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
