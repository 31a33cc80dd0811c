"""What an audit export of the current filter will hold, said before it is written.

The audit view (and `inspector log export` with --operator/--label/--verdict) exports what the
filter lists: its inspections with every decision on them (corrections included, even when made
after the period), and its events. The plan pins the row ids when it is made, so a part recorded
while the auditor reads the confirmation does not slip into the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from inspector.store.audit import AuditFilter, search
from inspector.store.database import parse_time, utc_stamp
from inspector.store.decision_log import DecisionLog

EARLIEST = "1970-01-01T00:00:00Z"
_NO_LIMIT = 1 << 62  # an export is never cut at the audit list's display limit


@dataclass(frozen=True)
class ExportPlan:
    """The rows an export of one filter will write, and the facts to confirm it by."""

    from_ts: str
    to_ts: str
    inspections: tuple[int, ...]
    decisions: tuple[int, ...]
    events: tuple[int, ...]
    corrections: int
    images: int  # distinct stored image files of the inspections
    without_image: int  # inspections stored without an image
    first_recorded: str | None
    last_recorded: str | None
    conditions: str  # the filter's other conditions in words ("" when none)

    @property
    def empty(self) -> bool:
        return not (self.inspections or self.events)

    def selection(self) -> dict[str, tuple[int, ...]]:
        """{table: row ids} for inspector.store.export.export_bundle."""
        return {"inspections": self.inspections, "decisions": self.decisions, "events": self.events}

    def describe(self) -> str:
        """The plan in plain words, for the confirmation before anything is written."""
        if self.empty:
            return (
                "Nothing to export: the filter selects no inspections and no events"
                f" between {self.from_ts} and {self.to_ts}."
            )
        n = len(self.inspections)
        when = f", recorded {self.first_recorded} to {self.last_recorded}" if n else ""
        k = self.corrections
        fixes = "" if not k else f", {k} of them {'a correction' if k == 1 else 'corrections'}"
        if self.images:
            pictures = f"with images ({_count(self.images, 'image file')}"
            pictures += f"; {_count(self.without_image, 'inspection')} without one)" if self.without_image else ")"
        else:
            pictures = "without images (none is stored with these inspections)" if n else "without images"
        only = f" Only: {self.conditions}." if self.conditions else ""
        return "\n".join(
            (
                f"Export {_count(n, 'inspection')}{when},",
                f"with their {_count(len(self.decisions), 'decision')}{fixes},",
                f"{pictures},",
                f"and {_count(len(self.events), 'event')}.",
                f"Period (UTC): {self.from_ts} to {self.to_ts}.{only}",
            )
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def plan_export(log: DecisionLog, f: AuditFilter, now: datetime | None = None) -> ExportPlan:
    """The export of filter `f` (open ends: the beginning and now); InspectorError for a bad time."""
    lo = parse_time(f.from_ts) if f.from_ts else EARLIEST
    hi = parse_time(f.to_ts) if f.to_ts else utc_stamp(now or datetime.now(UTC))
    rows = search(log, AuditFilter(lo, hi, f.operator, f.label, f.verdict, _NO_LIMIT))
    ids = tuple(int(r["id"]) for r in rows.inspections)
    decisions = [d for i in ids for d in log.decisions(inspection_id=i, limit=_NO_LIMIT)]
    stored = [r["image_sha256"] for r in rows.inspections if r["image_sha256"]]
    conditions = ", ".join(
        f"{name} {value}"
        for name, value in (("operator", f.operator), ("top label", f.label), ("proposed verdict", f.verdict))
        if value
    )
    return ExportPlan(
        lo,
        hi,
        ids,
        tuple(sorted(int(d["id"]) for d in decisions)),
        tuple(int(e["id"]) for e in rows.events),
        sum(1 for d in decisions if d["corrects_id"] is not None),
        len(set(stored)),
        len(ids) - len(stored),
        rows.inspections[0]["recorded_at"] if ids else None,
        rows.inspections[-1]["recorded_at"] if ids else None,
        conditions,
    )
