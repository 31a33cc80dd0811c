"""Per-part statistics the drift monitor watches, cheap enough for every frame (about 1 ms)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.frame.imageio import cv2
from inspector.frame.records import DecisionCommitted, InspectionResult

# Image statistics are taken on a copy at most this wide: the same figure at a fraction of the cost.
_STAT_WIDTH = 160


@dataclass(frozen=True)
class PartStats:
    """One part: the ranking's top score and margin, its #1 label, the verdict lane, image statistics,
    and the model and library version that ranked it (a change restarts the reference)."""

    score: float
    margin: float
    label: str
    review: bool
    brightness: float  # mean grey level, 0..255
    sharpness: float  # log10 of the variance of the Laplacian (blur lowers it)
    model_id: str = ""
    library_version: int = 0
    none_of_these: bool | None = None  # filled when the operator answered (None: not yet / unknown)
    agreed: bool | None = None
    product_id: str = ""  # each product is watched against its own reference (DriftWatch)
    open_set: bool | None = None  # nothing in the library matched well enough (a new defect type raises it)


@dataclass(frozen=True)
class DecisionStats:
    """One operator answer: did they agree with #1, was it "none of these"; the model and library
    version of the inspection answered (a change restarts the reference, as for parts)."""

    agreed: bool
    none_of_these: bool
    model_id: str = ""
    library_version: int = 0


def decision_stats(done: DecisionCommitted) -> DecisionStats | None:
    """The statistics of an operator's first answer; None for a rejected image or a QA correction
    (a correction is a second look, not the line's agreement rate)."""
    kind = done.decision.kind
    if done.corrects_id is not None or kind == "reject_image":
        return None
    return DecisionStats(kind == "confirm", kind == "none_of_these", done.model_id, done.library_version)


def image_stats(rgb: np.ndarray) -> tuple[float, float]:
    """(brightness, sharpness) of an RGB frame."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if grey.shape[1] > _STAT_WIDTH:
        grey = cv2.resize(
            grey, (_STAT_WIDTH, max(1, grey.shape[0] * _STAT_WIDTH // grey.shape[1])), interpolation=cv2.INTER_AREA
        )
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    return float(grey.mean()), float(np.log10(float(lap.var()) + 1e-6))


def part_stats(result: InspectionResult) -> PartStats:
    """The statistics of one ranked frame."""
    brightness, sharpness = image_stats(result.frame.rgb)
    r = result.ranking
    return PartStats(
        float(r.top.score),
        float(r.margin),
        r.top.label_id,
        bool(result.verdict.needs_review),
        brightness,
        sharpness,
        r.model_id,
        int(r.library_version),
        product_id=result.product_id,
        open_set=bool(result.verdict.open_set),
    )
