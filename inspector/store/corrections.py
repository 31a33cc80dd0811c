"""QA corrections by label: find the decision in force for an inspection, correct it to another label.

A correction is a new chained decision row that references the one it replaces, with a reason
(DecisionLog.correct_decision checks the 'correct' permission, the reason and the chain). This
module turns "inspection 17 is really a crack" into that row, and reads corrections back as
"who, when, from -> to, why" for the audit detail and the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inspector.frame.records import Decision
from inspector.store.decision_log import DecisionError, DecisionLog
from inspector.store.users import Session, authorize


@dataclass(frozen=True)
class Correction:
    """One correction as an auditor reads it."""

    decision_id: int
    corrects_id: int
    decided_at: str
    who: str  # printed name [user, role]
    before: str  # what the corrected decision said
    after: str  # what the correction says
    reason: str

    def __str__(self) -> str:
        return f"{self.decided_at}  {self.who}: {self.before} -> {self.after}; reason: {self.reason}"


def answer_text(row: dict[str, Any]) -> str:
    """A decision row's answer in a few words: 'crack (#2)', 'none of these: "..."', 'image rejected'."""
    if row["kind"] in ("confirm", "pick"):
        return f"{row['label_id']} (#{row['picked_rank']})"
    if row["kind"] == "none_of_these":
        return f"none of these: {row['typed_description']!r}"
    return "image rejected (retake)"


def in_force(decisions: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The decision in force among one inspection's decision rows (the one no later row corrects), or None."""
    corrected = {row["corrects_id"] for row in decisions if row.get("corrects_id") is not None}
    live = [row for row in decisions if row["id"] not in corrected]
    return max(live, key=lambda row: row["id"]) if live else None


def corrections(decisions: Iterable[dict[str, Any]]) -> list[Correction]:
    """The corrections among one inspection's decision rows (oldest first), each with what it replaced."""
    rows = list(decisions)
    by_id = {row["id"]: row for row in rows}
    found = []
    for row in rows:
        if row.get("corrects_id") is None:
            continue
        before = by_id.get(row["corrects_id"])
        found.append(
            Correction(
                int(row["id"]),
                int(row["corrects_id"]),
                row["decided_at"],
                f"{row['printed_name']} [{row['operator']}, {row['role']}]",
                answer_text(before) if before else f"decision {row['corrects_id']}",
                answer_text(row),
                row["reason"],
            )
        )
    return found


def correction_counts(log: DecisionLog, inspection_ids: Iterable[int]) -> dict[int, int]:
    """{inspection id: how many corrections it has} for those with any (one query)."""
    ids = sorted({int(i) for i in inspection_ids})
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))  # placeholders only; the ids are bound
    rows = log.sdb.conn.execute(
        "SELECT inspection_id, COUNT(*) FROM decisions WHERE corrects_id IS NOT NULL"
        f" AND inspection_id IN ({marks}) GROUP BY inspection_id",
        ids,
    )
    return {int(i): int(n) for i, n in rows}


def decided_label_counts(log: DecisionLog) -> dict[str, int]:
    """{label id: inspections whose decision in force names it} over the whole decision log: the
    plant's label mix as the station decided it (confirmations, picks and corrections alike; "none
    of these" and retakes name no label). One query; the example probe's prior shift reads it."""
    rows = log.sdb.conn.execute(
        "SELECT label_id, COUNT(*) FROM decisions WHERE id IN (SELECT MAX(id) FROM decisions"
        " WHERE id NOT IN (SELECT corrects_id FROM decisions WHERE corrects_id IS NOT NULL)"
        " GROUP BY inspection_id) AND kind IN ('confirm', 'pick') AND label_id IS NOT NULL GROUP BY label_id"
    )
    return {str(label): int(n) for label, n in rows}


def correct_label(
    log: DecisionLog,
    inspection_id: int,
    label_id: str,
    reason: str,
    user: Session,
    decided_at: datetime | None = None,
) -> int:
    """Correct the decision in force for `inspection_id` to `label_id` (QA); the new decision's id.

    The label must be one the inspection was ranked against (its rank is recorded with the answer).
    DecisionError for an unknown inspection, one without a decision, an unknown or unchanged label,
    or an empty reason; AccessDenied (logged) for a role without 'correct'.
    """
    authorize(log.sdb, user, "correct", "correct_decision")  # first: a refused role learns nothing about records
    if not reason.strip():
        raise DecisionError("a correction needs a reason; say why the original answer was wrong")
    row = log.inspection(inspection_id)
    if row is None:
        raise DecisionError(f"inspection {inspection_id} does not exist")
    current = in_force(log.decisions(inspection_id=int(inspection_id)))
    if current is None:
        raise DecisionError(
            f"inspection {inspection_id} has no decision to correct; it must be answered first (review list)"
        )
    ranks = {c["label_id"]: int(c["rank"]) for c in json.loads(row["candidates"])}
    if label_id not in ranks:
        raise DecisionError(
            f"label {label_id!r} was not in library v{row['library_version']} that ranked inspection"
            f" {inspection_id}; choose one of: {', '.join(sorted(ranks))}"
        )
    if current["kind"] in ("confirm", "pick") and current["label_id"] == label_id:
        raise DecisionError(f"inspection {inspection_id} is already {label_id} (decision {current['id']})")
    rank = ranks[label_id]
    extra = {"decided_at": decided_at} if decided_at is not None else {}
    decision = Decision(int(inspection_id), "confirm" if rank == 1 else "pick", user.name, label_id, rank, **extra)
    return log.correct_decision(int(current["id"]), decision, reason, user)
