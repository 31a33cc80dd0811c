"""Verdict thresholds measured for one model: per-label thresholds, the #1-vs-#2 margin, the open-set floor.

The hand-set VerdictPolicy defaults (0.35 / 0.10 / 0.05) were guesses made for v1; a model with
another logit scale and other cosines needs its own. `calibrate` derives them from rankings of
labelled validation frames (never the test split):

- per-label threshold: the lowest probability t such that, of the validation frames the model
  ranks that label first with probability >= t, at least `precision` are truly that label (1.0 when
  no t reaches it: the label always asks a person);
- margin: the same rule over all frames for the #1 - #2 probability margin;
- open-set floor: the `false_open` quantile of the #1 label's score on frames whose label IS listed,
  so about that share of known parts is sent to "none of the listed".

The result lives in the model's sidecar ("calibration"); `policy_for` turns it into the station's
VerdictPolicy. A label's own hand-set threshold still wins (see inspector.library.threshold_review).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspector.frame.ranking import VerdictPolicy
from inspector.frame.records import Ranking

_GRID = np.round(np.arange(0.0, 1.0001, 0.01), 2)


@dataclass(frozen=True)
class Calibration:
    """Thresholds measured for one model on a validation split (JSON-able through as_dict)."""

    default_threshold: float
    min_margin: float
    open_set_floor: float
    per_label: Mapping[str, float] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)  # n, precision target, split, coverage

    def as_dict(self) -> dict[str, Any]:
        return {
            "default_threshold": self.default_threshold,
            "min_margin": self.min_margin,
            "open_set_floor": self.open_set_floor,
            "per_label": dict(self.per_label),
            "evidence": dict(self.evidence),
        }


def _lowest_passing(values: np.ndarray, correct: np.ndarray, precision: float) -> float:
    """Lowest grid value t with precision(correct | values >= t) >= precision; 1.0 if none."""
    for t in _GRID:
        kept = values >= t
        if kept.any() and correct[kept].mean() >= precision:
            return float(t)
    return 1.0


def calibrate(
    rankings: Sequence[Ranking],
    truths: Sequence[str],
    *,
    precision: float = 0.9,
    false_open: float = 0.02,
    split: str = "validation",
) -> Calibration:
    """Thresholds from rankings of labelled frames (truths: each frame's true label id)."""
    if len(rankings) != len(truths) or not rankings:
        raise ValueError(f"need one truth per ranking and at least one, got {len(rankings)} and {len(truths)}")
    if not 0.0 < precision <= 1.0 or not 0.0 <= false_open < 1.0:
        raise ValueError("precision must be in (0, 1] and false_open in [0, 1)")
    top = [r.top.label_id for r in rankings]
    prob = np.array([r.top.probability for r in rankings])
    score = np.array([r.top.score for r in rankings])
    margin = np.array([r.margin for r in rankings])
    correct = np.array([t == y for t, y in zip(top, truths)])
    per_label, coverage = {}, {}
    for label in sorted(set(truths) | set(top)):
        mine = np.array([t == label for t in top])
        if not mine.any():
            continue
        t = _lowest_passing(prob[mine], correct[mine], precision)
        per_label[label] = t
        coverage[label] = float((prob[mine] >= t).mean())  # share of its #1 frames decided without a person
    default = _lowest_passing(prob, correct, precision)
    return Calibration(
        default_threshold=default,
        min_margin=_lowest_passing(margin, correct, precision),
        open_set_floor=round(float(np.quantile(score, false_open)), 4),
        per_label=per_label,
        evidence={
            "n": len(rankings),
            "split": split,
            "precision_target": precision,
            "false_open_target": false_open,
            "top1": float(correct.mean()),
            "coverage": coverage,
        },
    )


def calibration_from(metadata: Mapping[str, Any] | None) -> Calibration | None:
    """The calibration stored in a model's sidecar, or None (then the hand-set defaults apply)."""
    raw = (metadata or {}).get("calibration")
    if not isinstance(raw, Mapping):
        return None
    try:
        return Calibration(
            float(raw["default_threshold"]),
            float(raw["min_margin"]),
            float(raw["open_set_floor"]),
            {str(k): float(v) for k, v in (raw.get("per_label") or {}).items()},
            dict(raw.get("evidence") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the model's calibration record is malformed ({exc})") from exc


def policy_for(calibration: Calibration | None, base: VerdictPolicy = VerdictPolicy()) -> VerdictPolicy:
    """The station's verdict policy for a model: its measured thresholds, else the hand-set base."""
    if calibration is None:
        return base
    return VerdictPolicy(
        min_margin=calibration.min_margin,
        default_threshold=calibration.default_threshold,
        open_set_floor=calibration.open_set_floor,
        label_thresholds=tuple(sorted(calibration.per_label.items())),
    )
