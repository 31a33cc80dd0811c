"""Similarities + library -> Ranking (pure numpy); Ranking + policy -> Verdict.

A label's score is the MEAN cosine similarity of the image to the label's descriptions. The mean
rewards a label whose paraphrases all agree and damps a single stray wording; on the prototype's
held-out paraphrases it was as good as or better than the max. The best-matching description
(the max) is still shown to the operator because it explains the score in words.

Ranking costs one matrix product against the cached description embeddings plus O(M) segment
sums, whatever the library size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from threadpoolctl import threadpool_limits

from inspector.frame.example_cache import CARRIED, ExampleCache, text_scores
from inspector.frame.records import Candidate, Ranking, Verdict, percent
from inspector.library.labels import Library
from models.metrics import segment_label_scores, softmax


@dataclass(frozen=True)
class RankingIndex:
    """A library compiled against one model: description embeddings grouped by label."""

    library: Library
    embeddings: np.ndarray  # [M, D] float32, unit rows, grouped label by label
    starts: np.ndarray  # [L] index of each label's first description in `embeddings`
    counts: np.ndarray  # [L] descriptions per label
    texts: tuple[str, ...]  # [M] description texts, same order as `embeddings`
    model_id: str
    library_version: int = 0
    examples: ExampleCache | None = None  # the labels' example images (library format 2), if any

    def __post_init__(self) -> None:
        m = sum(len(label.descriptions) for label in self.library.labels)
        if self.embeddings.shape[0] != m or len(self.texts) != m:
            raise ValueError(f"{self.embeddings.shape[0]} embeddings for {m} descriptions")
        if self.embeddings.dtype != np.float32:
            raise ValueError("description embeddings must be float32")


def build_index(library: Library, embed_texts, model_id: str, library_version: int = 0, examples=None) -> RankingIndex:
    """Embed every description (through `embed_texts(list[str]) -> [M, D]`) and group by label.

    `examples(embeddings, counts) -> ExampleCache | None` compiles the labels' example images
    (inspector.station_model.example_compiler); without it a label's examples are not used."""
    texts = tuple(text for label in library.labels for text in label.descriptions)
    counts = np.array([len(label.descriptions) for label in library.labels], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    embeddings = np.ascontiguousarray(embed_texts(list(texts)), dtype=np.float32)
    if not texts:
        embeddings = embeddings.reshape(0, embeddings.shape[1] if embeddings.ndim == 2 else 0)
    cache = examples(embeddings, counts) if examples is not None else None
    if cache is None and (counts == 0).any():
        raise ValueError("a label without descriptions needs its examples compiled (pass `examples`)")
    return RankingIndex(library, embeddings, starts, counts, texts, model_id, library_version, cache)


_BLAS_LIMITED = False


def _single_threaded_blas() -> None:
    # Once per process: numpy's OpenBLAS threads busy-wait after each product and fight torch's own
    # pool for the cores. Measured on 2 cores at 100 000 descriptions: frame p50 114 ms with
    # OpenBLAS threading, 50 ms without (the encoder and preprocessing had been slowed, not the
    # product). One thread reads the [M, D] matrix as fast as the memory bus allows.
    global _BLAS_LIMITED
    if not _BLAS_LIMITED:
        threadpool_limits(limits=1, user_api="blas")
        _BLAS_LIMITED = True


def label_scores(image_embeddings: np.ndarray, index: RankingIndex) -> tuple[np.ndarray, np.ndarray]:
    """[N, D] image embeddings -> ([N, L] mean cosine per label, [N, M] cosine per description)."""
    _single_threaded_blas()
    sims = image_embeddings.astype(np.float32, copy=False) @ index.embeddings.T
    return _label_scores_from(sims, image_embeddings, index), sims


def _label_scores_from(sims: np.ndarray, image_embeddings: np.ndarray, index: RankingIndex) -> np.ndarray:
    """[N, M] description scores -> [N, L] label scores, blended with the labels' examples when it has any."""
    cache = index.examples
    if cache is None:
        return segment_label_scores(sims, index.counts, "mean")
    return cache.label_scores(text_scores(sims, index.counts), image_embeddings)


def blended_similarities(
    image_embedding: np.ndarray, local: np.ndarray | None, index: RankingIndex, local_weight: float
) -> np.ndarray:
    """[M] per-description score: (1 - w) x global cosine + w x the best local cosine.

    The max over locations keeps a small defect's evidence, which the global mean averages away;
    the global term keeps what only the whole part shows (an even stain, the part's shape).
    """
    _single_threaded_blas()
    sims = image_embedding.astype(np.float32, copy=False) @ index.embeddings.T
    if local is None or local_weight == 0.0 or len(local) == 0:
        return sims
    best = (local.astype(np.float32, copy=False) @ index.embeddings.T).max(axis=0)
    return (1.0 - local_weight) * sims + local_weight * best


def rank(
    image_embedding: np.ndarray,
    index: RankingIndex,
    logit_scale: float,
    top_k: int | None = None,
    *,
    local: np.ndarray | None = None,
    local_weight: float = 0.0,
    scoring=None,
) -> Ranking:
    """Rank the library's labels for one image embedding [D] (and its local features [K, D]).

    `scoring`: the inspector.frame.scoring.ScoringConfig the features were made with (recorded).
    """
    if image_embedding.ndim != 1:
        raise ValueError(f"rank() takes one embedding [D], got shape {image_embedding.shape}")
    sims = blended_similarities(image_embedding, local, index, local_weight)
    scores = _label_scores_from(sims[None, :], image_embedding[None, :], index)[0]
    probs = softmax(scores, logit_scale)
    order = np.argsort(-scores, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    labels = index.library.labels
    carried, nearest = _example_evidence(image_embedding, index)
    candidates = []
    for r, li in enumerate(order, start=1):
        start, count = int(index.starts[li]), int(index.counts[li])
        label = labels[li]
        # The words that explain the score; a label known only by examples names its nearest one.
        words = index.texts[start + int(np.argmax(sims[start : start + count]))] if count else nearest[li]
        candidates.append(
            Candidate(
                label_id=label.id,
                label_name=label.name,
                disposition=label.disposition,
                description=words,
                score=float(np.clip(scores[li], -1.0, 1.0)),
                probability=float(probs[li]),
                rank=r,
                carried_by=carried[li],
            )
        )
    if scoring is None:
        return Ranking(tuple(candidates), index.model_id, index.library_version)
    if index.examples is not None:  # name how the examples entered the scores (method, parameters, set)
        scoring = replace(scoring, examples=index.examples.recorded)
    return Ranking(tuple(candidates), index.model_id, index.library_version, scoring.id, scoring.json)


def _example_evidence(image_embedding: np.ndarray, index: RankingIndex) -> tuple[list[str], list[str]]:
    """Per label: what carried its score (words / examples / both) and its nearest example's name."""
    n = len(index.library.labels)
    cache = index.examples
    if cache is None:
        return ["words"] * n, [""] * n
    _, sims = cache.example_scores(image_embedding[None, :])
    carried, nearest = [], []
    for li in range(n):
        has_e, has_w = bool(cache.counts[li]), bool(index.counts[li])
        carried.append(CARRIED[2 if has_e and has_w else 1 if has_e else 0])
        keys = np.flatnonzero(cache.label_of == li)
        nearest.append(f"like example: {cache.names[keys[int(np.argmax(sims[0, keys]))]]}" if len(keys) else "")
    return carried, nearest


@dataclass(frozen=True)
class VerdictPolicy:
    """When the station proposes a disposition outright and when it asks a person."""

    # Below this probability margin of #1 over #2 the call is too close to make alone.
    min_margin: float = 0.10
    # A label without its own threshold needs at least this probability to stand.
    default_threshold: float = 0.35
    # Open set: if no label's mean cosine reaches this floor the part matches nothing listed.
    open_set_floor: float = 0.05
    # Measured per-label thresholds (inspector.frame.calibration): used for a label without its own.
    label_thresholds: tuple[tuple[str, float], ...] = ()

    def threshold_for(self, label_id: str, own: float | None) -> float:
        """A label's own (hand-set) threshold, else its measured one, else the default."""
        if own is not None:
            return own
        return dict(self.label_thresholds).get(label_id, self.default_threshold)


def decide(ranking: Ranking, index: RankingIndex, policy: VerdictPolicy = VerdictPolicy()) -> Verdict:
    """The top label's disposition, or 'review' with the reason when the ranking is not decisive."""
    top = ranking.top
    if top.score < policy.open_set_floor:  # the top label has the best score of all
        return Verdict(
            disposition="review",
            needs_review=True,
            open_set=True,
            reason=f"none of the listed: best score {top.score:.3f} is below the floor {policy.open_set_floor:.3f}",
        )
    threshold = policy.threshold_for(top.label_id, index.library.label(top.label_id).threshold)
    if top.probability < threshold:
        return Verdict(
            "review",
            True,
            False,
            f"{top.label_name}: probability {percent(top.probability)} is below its threshold {percent(threshold)}",
        )
    if ranking.margin < policy.min_margin:
        second = ranking.candidates[1]
        return Verdict(
            "review",
            True,
            False,
            f"{top.label_name} {percent(top.probability)} vs {second.label_name} {percent(second.probability)}:"
            f" margin {percent(ranking.margin)} is below {percent(policy.min_margin)}",
        )
    return Verdict(
        top.disposition, top.disposition == "review", False, f"{top.label_name} ({percent(top.probability)})"
    )
