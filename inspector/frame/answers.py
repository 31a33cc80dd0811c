"""The operator's answer to a shown part, as the core records it.

The station view maps keys to answers (Space = confirm #1, 1-9 = pick #k, 0 = none of these,
R = reject the image); this module turns an answer into a `Decision` and commits it. The
permission check happens in `DecisionLog.record_decision` (a refusal is logged there too).
"""

from __future__ import annotations

from collections.abc import Sequence

from inspector.frame.records import Decision, InspectionResult
from inspector.store.decision_log import DecisionError, DecisionLog
from inspector.store.users import Session

ANSWERS: tuple[str, ...] = ("confirm", "pick", "none_of_these", "reject_image")


def make_decision(
    result: InspectionResult, user: Session, kind: str, rank: int | None = None, typed: str = ""
) -> Decision:
    """The Decision for an answer to `result`; picking rank 1 is recorded as a confirmation."""
    if result.inspection_id is None:
        raise DecisionError(
            "this part was shown but not recorded (no database or no permission to record);"
            " an answer needs a recorded inspection"
        )
    labels = [c.label_id for c in result.ranking.candidates]
    return decision_for(result.inspection_id, labels, user, kind, rank, typed)


def decision_for(
    inspection_id: int, labels: Sequence[str], user: Session, kind: str, rank: int | None = None, typed: str = ""
) -> Decision:
    """The Decision for an answer to inspection `inspection_id` whose candidates' labels are `labels`
    (rank order); the review list answers stored inspections through this too."""
    if kind not in ANSWERS:
        raise DecisionError(f"unknown answer {kind!r}; answers: {', '.join(ANSWERS)}")
    if kind == "confirm":
        rank = 1
    if kind in ("confirm", "pick"):
        if rank is None or not 1 <= rank <= len(labels):
            raise DecisionError(f"there is no candidate #{rank}; this part has {len(labels)} candidates")
        # Agreeing with #1 by its number is the same answer as confirming it: one kind per meaning.
        kind = "confirm" if rank == 1 else "pick"
        return Decision(inspection_id, kind, user.name, labels[rank - 1], rank)
    if kind == "none_of_these":
        text = " ".join(typed.split())
        if not text:
            raise DecisionError("'none of these' needs a short description of what the part shows")
        return Decision(inspection_id, kind, user.name, typed_description=text[:500])
    return Decision(inspection_id, kind, user.name, comment="image rejected: retake")


def record_answer(
    log: DecisionLog, result: InspectionResult, user: Session, kind: str, rank: int | None = None, typed: str = ""
) -> int:
    """Commit the answer (returns after COMMIT) and return the decision id."""
    return log.record_decision(make_decision(result, user, kind, rank, typed), user)
