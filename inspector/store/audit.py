"""What the audit screen asks of the decision log: filtered records, one inspection in full,
chain verification and export with its offline check.

`verify_database` and `export_database` open their own connection to the station database:
a sqlite connection belongs to the thread that opened it, and both run on worker threads.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from inspector.errors import InspectorError
from inspector.frame.records import Candidate
from inspector.store.chain import ChainReport
from inspector.store.corrections import correction_counts
from inspector.store.database import parse_time
from inspector.store.decision_log import DecisionLog
from inspector.store.export import ExportReport, ExportSummary, verify_export
from inspector.store.queries import TimeArg
from inspector.store.states import inspection_states
from inspector.store.users import Session


@dataclass(frozen=True)
class AuditFilter:
    """Which records to list. Time bounds are UTC ([from, to)); None means no condition.

    operator: who recorded the inspection / made the decision / acted in the event;
    label: the model's #1 label of an inspection, the label a decision names;
    verdict: the disposition the station proposed for an inspection.
    """

    from_ts: TimeArg = None
    to_ts: TimeArg = None
    operator: str | None = None
    label: str | None = None
    verdict: str | None = None
    limit: int = 1000


@dataclass(frozen=True)
class AuditRows:
    """The rows one filter selects, oldest first, each as the log stores it."""

    inspections: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    events: list[dict[str, Any]]
    limit: int

    @property
    def truncated(self) -> bool:
        """Whether any list stopped at the limit."""
        return any(len(rows) >= self.limit for rows in (self.inspections, self.decisions, self.events))


def search(log: DecisionLog, f: AuditFilter) -> AuditRows:
    """Inspections, decisions and events matching the filter (a condition a table lacks is not applied)."""
    lo = None if f.from_ts is None else parse_time(f.from_ts)
    hi = None if f.to_ts is None else parse_time(f.to_ts)
    inspections = log.inspections(
        from_ts=lo, to_ts=hi, operator=f.operator, label=f.label, verdict=f.verdict, limit=f.limit
    )
    states = inspection_states(log.sdb.conn, (r["id"] for r in inspections))
    fixes = correction_counts(log, (r["id"] for r in inspections))
    inspections = [  # derived, not stored
        {**r, "state": states.get(int(r["id"]), "open"), "corrections": fixes.get(int(r["id"]), 0)} for r in inspections
    ]
    decisions = log.decisions(from_ts=lo, to_ts=hi, operator=f.operator, label=f.label, limit=f.limit)
    events = log.events(from_ts=lo, to_ts=hi, user=f.operator, limit=f.limit)
    return AuditRows(inspections, decisions, events, f.limit)


@dataclass(frozen=True)
class InspectionRecord:
    """One inspection as an auditor reviews it: what was seen, ranked, proposed and decided."""

    id: int
    recorded_at: str
    recorded_by: str
    captured_at: str
    source_id: str
    origin: str
    width: int
    height: int
    model_id: str
    library_version: int
    disposition: str
    needs_review: bool
    open_set: bool
    verdict_reason: str
    candidates: tuple[Candidate, ...]
    image_path: Path | None  # None when no image was stored
    decisions: tuple[dict[str, Any], ...]  # every answer and correction, oldest first
    state: str = "open"  # answered / pending_review / passed / open (inspector.store.states)

    def describe_decision(self, row: dict[str, Any]) -> str:
        """'2026-05-09T14:30:00.123Z  op1 (operator): confirm #1 scratch' and the like, in UTC."""
        kind = row["kind"]
        if kind in ("confirm", "pick"):
            what = f"{kind} #{row['picked_rank']} {row['label_id']}"
        elif kind == "none_of_these":
            what = f"none of these: {row['typed_description']!r}"
        else:
            what = "rejected the image (retake)"
        if row.get("corrects_id") is not None:
            what = f"correction of decision {row['corrects_id']}: {what}; reason: {row['reason']}"
        if row.get("comment"):
            what += f"; comment: {row['comment']}"
        who = f"{row['printed_name']} [{row['operator']}, {row['role']}]"
        if row.get("admin_set_password"):  # the admin knew the password: this may not be the operator's own act
            who = "[ADMIN-SET PASSWORD] " + who
        return f"{row['decided_at']}  {who}: {what}"


def inspection_record(log: DecisionLog, inspection_id: int) -> InspectionRecord:
    """Everything stored about one inspection; InspectorError if there is no such inspection."""
    r = log.inspection(inspection_id)
    if r is None:
        raise InspectorError(f"inspection {inspection_id} does not exist")
    candidates = tuple(
        Candidate(
            c["label_id"],
            c["label_name"],
            c["disposition"],
            c["description"],
            float(c["score"]),
            float(c["probability"]),
            int(c["rank"]),
            c.get("carried_by", "words"),
        )
        for c in sorted(json.loads(r["candidates"]), key=lambda c: c["rank"])
    )
    image = log.image_path(r["image_sha256"]) if r["image_sha256"] else None
    decisions = tuple(log.decisions(inspection_id=int(inspection_id)))
    return InspectionRecord(
        int(r["id"]),
        r["recorded_at"],
        r["user"],
        r["captured_at"],
        r["source_id"],
        r["origin"],
        int(r["width"]),
        int(r["height"]),
        r["model_id"],
        int(r["library_version"]),
        r["disposition"],
        bool(r["needs_review"]),
        bool(r["open_set"]),
        r["verdict_reason"],
        candidates,
        image,
        decisions,
        inspection_states(log.sdb.conn, [inspection_id]).get(int(inspection_id), "open"),
    )


def verify_database(db_path: str | Path, user: Session) -> ChainReport:
    """Verify the whole chain on a connection of the calling thread; the check is logged."""
    with DecisionLog.open(db_path, create=False) as log:
        return log.verify(user)


@dataclass(frozen=True)
class ExportOutcome:
    """What the export wrote, and the offline verifier's verdict on it."""

    summary: ExportSummary
    check: ExportReport


def export_database(
    db_path: str | Path,
    from_ts: datetime | str,
    to_ts: datetime | str,
    out_dir: str | Path,
    user: Session,
    selection: Mapping[str, Collection[int]] | None = None,
) -> ExportOutcome:
    """Export [from_ts, to_ts) (only `selection`'s rows, if given: inspector.store.export_filter) to a
    new folder, then check the bundle as an auditor would (with the key)."""
    with DecisionLog.open(db_path, create=False) as log:
        summary = log.export(from_ts, to_ts, out_dir, user, selection)
        key = log.sdb.key
    return ExportOutcome(summary, verify_export(summary.out_dir, key))
