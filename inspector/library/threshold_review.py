"""Hand-set label thresholds that need a person's review because the model changed.

A threshold is a probability, and probabilities depend on the model (its logit scale, its cosines):
0.50 chosen while v1 ranked can mean something else under v2. So a label's hand-set threshold is
trusted only for the model it was reviewed for:

- a library file names that model with its top-level `thresholds_model` (`library check` compares
  it with the model the station will run);
- in the station, a person with edit_library confirms the thresholds for the model in force
  (`record_review`: a 'thresholds_reviewed' event); until then every hand-set threshold is flagged
  after each model change (QA view, `inspector library check`).

Labels without a threshold of their own use the model's measured ones (inspector.frame.calibration)
and are never flagged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inspector.errors import LibraryError
from inspector.library.labels import Library

if TYPE_CHECKING:
    from inspector.store.access import Session
    from inspector.store.decision_log import DecisionLog

REVIEW_EVENT = "thresholds_reviewed"


@dataclass(frozen=True)
class ThresholdFlag:
    """One hand-set threshold to review, and why."""

    label_id: str
    threshold: float
    reason: str


def _same_model(model_id: str, reviewed: str) -> bool:
    return model_id == reviewed or (len(reviewed) >= 12 and model_id.startswith(reviewed))


def thresholds_to_review(library: Library, model_id: str, reviewed_for: Iterable[str] = ()) -> list[ThresholdFlag]:
    """The library's hand-set thresholds not reviewed for model_id (reviewed_for: model ids, or id
    prefixes of >= 12 hex digits, they were reviewed for; the library's thresholds_model counts too)."""
    reviewed = [r for r in (*reviewed_for, library.thresholds_model) if r]
    if any(_same_model(model_id, r) for r in reviewed):
        return []
    was = f"model {reviewed[-1][:12]}" if reviewed else "an unrecorded model"
    return [
        ThresholdFlag(
            label.id,
            float(label.threshold),
            f"label {label.id!r}: hand-set threshold {label.threshold:.2f} was set for {was}; "
            f"review it for model {model_id[:12]} (probabilities change with the model)",
        )
        for label in library.labels
        if label.threshold is not None
    ]


def reviewed_models(log: DecisionLog) -> list[str]:
    """Model ids the station's thresholds were confirmed for, oldest first."""
    rows = log.sdb.db.query("SELECT detail FROM events WHERE kind = ? ORDER BY id", [REVIEW_EVENT])
    return [str(json.loads(r["detail"]).get("model_id", "")) for r in rows]


def station_flags(log: DecisionLog | None, library: Library, model_id: str) -> list[ThresholdFlag]:
    """thresholds_to_review for the station's library and model, with its recorded reviews."""
    return thresholds_to_review(library, model_id, reviewed_models(log) if log is not None else ())


def record_review(log: DecisionLog, user: Session, model_id: str, library_version: int, reason: str) -> int:
    """A person with edit_library confirms the hand-set thresholds for model_id (an audit event)."""
    from inspector.store.access import authorize

    if not reason.strip():
        raise LibraryError("confirming thresholds for a model needs a reason (what was checked)")
    authorize(log.sdb, user, "edit_library", REVIEW_EVENT)
    detail = {"model_id": model_id, "library_version": library_version, "reason": reason.strip()}
    return log.record_event(REVIEW_EVENT, detail, user=user, subject=f"model {model_id[:12]}")


def shipped_model_id(name: str) -> str:
    """The id of a shipped model (or a checkpoint stem/.json) from its sidecar JSON, without loading torch."""
    import models

    path = Path(name)
    if path.suffix not in (".json", ".safetensors") and not path.with_suffix(".json").is_file():
        path = Path(models.__file__).resolve().parent / "weights" / f"{name}.json"
    path = path.with_suffix(".json")
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["weights_sha256"])
    except (OSError, ValueError, KeyError) as exc:
        raise LibraryError(f"cannot read the model id of {name!r} from {path} ({exc})") from exc
