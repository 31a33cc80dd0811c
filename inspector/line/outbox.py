"""The outbox: per-output delivery cursors over the committed log, and the messages built from it.

The decision log is already durable and ordered by the chain `seq`, so the outbox holds no copy of
a message: each output keeps one cursor (table line_outbox), "every inspection and decision up to
this seq is acknowledged". A publisher reads the committed rows after its cursor, in seq order, and
moves the cursor only after the broker or PLC acknowledged them: nothing committed is skipped,
and a message may arrive twice (at-least-once) after a reconnect, never out of order on first arrival.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from inspector.frame.records import PartTag
from inspector.store.database import (
    StationDB,
    StorageError,
    event_row,
    open_database,
    utc_stamp,
)

PART_EVENT = "part_identified"
# The chained tables that are published: inspections (the verdict) and decisions (the final disposition).
PUBLISHED = ("inspections", "decisions")


@dataclass(frozen=True)
class Message:
    """One committed inspection or decision, ready to publish."""

    seq: int  # the row's position in the log (chain seq)
    kind: str  # "inspection" or "decision"
    payload: dict[str, Any]

    def body(self) -> bytes:
        return json.dumps(self.payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def part_event(inspection_id: int, part: PartTag) -> dict[str, Any]:
    """The events row that ties a part id to an inspection (committed with the inspection)."""
    detail = {
        "part_id": part.part_id,
        "product_id": part.product_id,
        "trigger": part.trigger,
        "triggered_at": utc_stamp(part.triggered_at) if part.triggered_at else None,
    }
    return event_row(PART_EVENT, None, str(inspection_id), detail)


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)  # Python 3.11 reads the stored "Z"


class Outbox:
    """One output's cursor and the committed messages after it; own connection (one per thread)."""

    def __init__(self, db_path: str | Path, output: str, deadline_s: float) -> None:
        self.output, self.deadline_s = output, deadline_s
        self.sdb: StationDB = open_database(db_path, create=False)
        self.conn = self.sdb.conn

    def close(self) -> None:
        self.conn.close()  # no anchor to move: the outbox never writes a record

    def cursor(self) -> int:
        """The last acknowledged seq; a new output starts at the log's head (history is not replayed)."""
        found = self.conn.execute("SELECT seq FROM line_outbox WHERE output = ?", (self.output,)).fetchone()
        if found is not None:
            return int(found[0])
        start = int(self.conn.execute("SELECT IFNULL(MAX(seq), 0) FROM chain").fetchone()[0])
        self.conn.execute(
            "INSERT OR IGNORE INTO line_outbox (output, seq, updated_at) VALUES (?, ?, ?)",
            (self.output, start, utc_stamp()),
        )
        return self.cursor()

    def advance(self, seq: int) -> None:
        """Record that everything up to `seq` is acknowledged (one short autocommit write)."""
        self.conn.execute(
            "UPDATE line_outbox SET seq = ?, updated_at = ? WHERE output = ? AND seq < ?",
            (int(seq), utc_stamp(), self.output, int(seq)),
        )

    def backlog(self, after: int) -> int:
        """How many committed inspections and decisions wait after `after`."""
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM chain WHERE seq > ? AND tbl IN (?, ?)", (int(after), *PUBLISHED)
            ).fetchone()[0]
        )

    def pending(self, after: int, limit: int = 100) -> list[Message]:
        """The next committed inspections and decisions after seq `after`, in seq order."""
        rows = self.conn.execute(
            "SELECT seq, tbl, row_id FROM chain WHERE seq > ? AND tbl IN (?, ?) ORDER BY seq LIMIT ?",
            (int(after), *PUBLISHED, int(limit)),
        ).fetchall()
        return [self._message(int(seq), tbl, int(row_id)) for seq, tbl, row_id in rows]

    def _row(self, sql: str, *params: Any) -> dict[str, Any] | None:
        cur = self.conn.execute(sql, params)
        found = cur.fetchone()
        return None if found is None else dict(zip((d[0] for d in cur.description), found))

    def _need(self, table: str, row_id: int) -> dict[str, Any]:
        # Record rows are append-only (triggers refuse DELETE), so a chained row is always there.
        row = self._row('SELECT * FROM "' + PUBLISHED[PUBLISHED.index(table)] + '" WHERE id = ?', row_id)
        if row is None:
            raise StorageError(f"the chain names {table} row {row_id}, which is missing; run `inspector log verify`")
        return row

    def _part(self, inspection_id: int) -> dict[str, Any]:
        row = self._row(
            "SELECT detail FROM events WHERE subject = ? AND kind = ? ORDER BY id LIMIT 1",
            str(inspection_id),
            PART_EVENT,
        )
        return json.loads(row["detail"]) if row else {}

    def _message(self, seq: int, table: str, row_id: int) -> Message:
        if table == "inspections":
            row = self._need("inspections", row_id)
            return Message(seq, "inspection", inspection_payload(row, self._part(row_id), seq, self.deadline_s))
        row = self._need("decisions", row_id)
        inspection = self._row("SELECT candidates FROM inspections WHERE id = ?", row["inspection_id"]) or {}
        part = self._part(int(row["inspection_id"]))
        return Message(
            seq, "decision", decision_payload(row, json.loads(inspection.get("candidates", "[]")), part, seq)
        )


def inspection_payload(row: dict[str, Any], part: dict[str, Any], seq: int, deadline_s: float) -> dict[str, Any]:
    """The keys of `inspector rank --json` (from the stored row) plus seq, part id and lateness."""
    candidates = json.loads(row["candidates"])
    start = part.get("triggered_at") or row["captured_at"]
    verdict_ms = (_when(row["recorded_at"]) - _when(start)).total_seconds() * 1000
    return {
        "inspection_id": row["id"],
        "source": row["source_id"],
        "origin": row["origin"],
        "captured_at": row["captured_at"],
        "image_sha256": row["frame_sha256"],
        "model_id": row["model_id"],
        "library_version": row["library_version"],
        "verdict": {
            "disposition": row["disposition"],
            "needs_review": bool(row["needs_review"]),
            "open_set": bool(row["open_set"]),
            "reason": row["verdict_reason"],
        },
        "candidates": [
            {
                "rank": c["rank"],
                "label": c["label_id"],
                "name": c["label_name"],
                "description": c["description"],
                "score": round(c["score"], 6),
                "probability": round(c["probability"], 6),
                "carried_by": c.get("carried_by", "words"),
            }
            for c in candidates
        ],
        "timings_ms": {k: round(v, 2) for k, v in json.loads(row["timings"]).items()},
        "seq": seq,
        "recorded_at": row["recorded_at"],
        "part_id": part.get("part_id"),
        "product_id": part.get("product_id"),
        "trigger": part.get("trigger"),
        "verdict_ms": round(verdict_ms, 1),
        "late": verdict_ms > deadline_s * 1000,
    }


def final_disposition(kind: str, rank: int | None, candidates: list[dict[str, Any]]) -> str:
    """The disposition after review: the picked label's; 'review' when no listed label fits the part."""
    if kind in ("confirm", "pick") and rank is not None and 1 <= rank <= len(candidates):
        return str(candidates[rank - 1]["disposition"])
    return "review"  # none_of_these / reject_image: a person must handle the part


def decision_payload(
    row: dict[str, Any], candidates: list[dict[str, Any]], part: dict[str, Any], seq: int
) -> dict[str, Any]:
    """An operator's decision or a QA correction, with the part's final disposition."""
    return {
        "seq": seq,
        "decision_id": row["id"],
        "inspection_id": row["inspection_id"],
        "kind": row["kind"],
        "label": row["label_id"],
        "rank": row["picked_rank"],
        "typed_description": row["typed_description"],
        "disposition": final_disposition(row["kind"], row["picked_rank"], candidates),
        "override": bool(row["override"]),
        "corrects_id": row["corrects_id"],
        "reason": row["reason"],
        "operator": row["operator"],
        "role": row["role"],
        "decided_at": row["decided_at"],
        "recorded_at": row["recorded_at"],
        "part_id": part.get("part_id"),
        "product_id": part.get("product_id"),
    }
