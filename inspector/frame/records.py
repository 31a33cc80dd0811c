"""Frozen records that flow through the station: frames, rankings, verdicts, decisions.

They hold numpy arrays, str, float and tuples only (no tensors, no Qt types) and validate in
__post_init__, so a malformed record fails where it is made, not three layers later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

Disposition = Literal["accept", "rework", "scrap", "review"]
DecisionKind = Literal["confirm", "pick", "none_of_these", "reject_image"]
DECISION_KINDS: tuple[str, ...] = ("confirm", "pick", "none_of_these", "reject_image")


def percent(probability: float) -> str:
    """A confidence as the operator reads it everywhere (banner, candidates, review lane): '99 %'."""
    return f"{100 * probability:.0f} %"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (records never hold naive times)."""
    return datetime.now(UTC)


def _check_utc(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() != UTC.utcoffset(None):
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got {value!r}")


@dataclass(frozen=True)
class PartTag:
    """Which part a triggered frame shows (inspector.line.trigger): carried through to the record."""

    part_id: str
    product_id: str = ""
    trigger: str = ""  # where the trigger came from: "mqtt", "opcua", "api"
    triggered_at: datetime | None = None


@dataclass(frozen=True)
class Frame:
    """One image from a source: RGB uint8 HxWx3, when and where it was captured."""

    rgb: np.ndarray
    captured_at: datetime
    source_id: str
    seq: int
    # e.g. the file name for a watched folder; the camera serial for a GenICam device
    origin: str = ""
    part: PartTag | None = None  # set when a line trigger asked for this frame

    def __post_init__(self) -> None:
        if not isinstance(self.rgb, np.ndarray) or self.rgb.dtype != np.uint8:
            raise ValueError("Frame.rgb must be a uint8 numpy array")
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or min(self.rgb.shape[:2]) < 1:
            raise ValueError(f"Frame.rgb must be HxWx3, got shape {self.rgb.shape}")
        _check_utc("Frame.captured_at", self.captured_at)
        if self.seq < 0:
            raise ValueError("Frame.seq must be >= 0")


@dataclass(frozen=True)
class Candidate:
    """One label in a ranking: its score, probability and best-matching description."""

    label_id: str
    label_name: str
    disposition: str
    description: str
    score: float  # aggregated cosine similarity of the image to the label's descriptions
    probability: float  # softmax over labels at the model's logit scale
    rank: int  # 1-based
    carried_by: str = "words"  # what carried the score: "words", "examples" or "both" (library format 2)

    def __post_init__(self) -> None:
        if self.carried_by not in ("words", "examples", "both"):
            raise ValueError(f"Candidate.carried_by {self.carried_by!r} is not words, examples or both")
        if not (math.isfinite(self.score) and -1.0001 <= self.score <= 1.0001):
            raise ValueError(f"Candidate.score {self.score} is not a cosine similarity")
        if not 0.0 <= self.probability <= 1.0 + 1e-6:
            raise ValueError(f"Candidate.probability {self.probability} is outside [0, 1]")
        if self.rank < 1:
            raise ValueError("Candidate.rank is 1-based")


@dataclass(frozen=True)
class Ranking:
    """Candidates best first, with what produced them (model and library version)."""

    candidates: tuple[Candidate, ...]
    model_id: str
    library_version: int
    # How the scores were made (inspector.frame.scoring.ScoringConfig): SHA-256 id and canonical JSON.
    scoring_config_id: str = ""
    scoring_config_json: str = ""

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError("a Ranking needs at least one candidate")
        if [c.rank for c in self.candidates] != list(range(1, len(self.candidates) + 1)):
            raise ValueError("Ranking.candidates must be ranked 1..n in order")

    @property
    def top(self) -> Candidate:
        return self.candidates[0]

    @property
    def margin(self) -> float:
        """Probability margin of #1 over #2 (1.0 when there is a single candidate)."""
        if len(self.candidates) < 2:
            return 1.0
        return self.candidates[0].probability - self.candidates[1].probability


@dataclass(frozen=True)
class Verdict:
    """What the station proposes for the part, and why."""

    disposition: str
    needs_review: bool
    open_set: bool  # "none of the listed": nothing in the library matched well enough
    reason: str


@dataclass(frozen=True)
class InspectionResult:
    """A ranked frame with its verdict and per-stage latency, ready for the operator."""

    frame: Frame
    ranking: Ranking
    verdict: Verdict
    image_sha256: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    inspection_id: int | None = None  # set once the inspection is committed
    # The image embedding the ranking used (search stores it; issue 17). Not compared: arrays.
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    # The good-part model's check (inspector.frame.good_parts.GoodPartCheck; None without a good-part
    # model in force; its own `boxes` place its cells) and the frame boxes of the RANKING forward's
    # local cells (a good-part model on its own 448-px forward has another grid: use check.boxes).
    good_part: Any = field(default=None, repr=False, compare=False)
    local_boxes: list | None = field(default=None, repr=False, compare=False)
    # The product inspected (issue 17, per-product spread): the line trigger's, else [camera] product_id.
    product_id: str = ""


@dataclass(frozen=True)
class Decision:
    """The operator's answer to an inspection."""

    inspection_id: int
    kind: str
    operator: str
    label_id: str | None = None  # the confirmed / picked label
    picked_rank: int | None = None
    typed_description: str = ""  # for none_of_these
    comment: str = ""
    decided_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if self.kind not in DECISION_KINDS:
            raise ValueError(f"Decision.kind {self.kind!r} is not one of {', '.join(DECISION_KINDS)}")
        _check_utc("Decision.decided_at", self.decided_at)
        if self.kind in ("confirm", "pick") and (self.label_id is None or self.picked_rank is None):
            raise ValueError(f"a {self.kind} decision names the label and its rank")
        if self.kind == "confirm" and self.picked_rank != 1:
            raise ValueError("confirm means rank 1; use kind='pick' for another rank")
        if self.kind == "none_of_these" and not self.typed_description.strip():
            raise ValueError("'none of these' needs a short typed description of what it is")
        if not self.operator:
            raise ValueError("a Decision needs the operator's user id")


@dataclass(frozen=True)
class DecisionCommitted:
    """What DecisionLog tells its decision listeners after a decision's COMMIT (drift on agreement)."""

    decision_id: int
    decision: Decision
    corrects_id: int | None  # set for a QA correction
    model_id: str  # of the inspection answered
    library_version: int
