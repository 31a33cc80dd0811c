"""The read side of the decision log: inspections, decisions and events filtered by time and field,
and the re-hash of stored evidence images.

DecisionLog mixes RecordQueries in; these methods only read and check no permission themselves.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from inspector.store.account_state import ADMIN_SET_SQL
from inspector.store.database import StationDB, parse_time
from inspector.store.retention import ImageReport, image_report

TimeArg = datetime | str | None


def _where(clauses: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
    # The SQL snippets are constants from this module; only the values are data, and they are bound.
    used = [(sql, value) for sql, value in clauses if value is not None]
    return (" WHERE " + " AND ".join(sql for sql, _ in used)) if used else "", [v for _, v in used]


class RecordQueries:
    """Filtered reads of the record tables over `sdb` (mixed into DecisionLog)."""

    sdb: StationDB

    def scoring_config(self, inspection_id: int) -> str | None:
        """The canonical JSON of the scoring configuration an inspection was ranked with (None if unrecorded)."""
        rows = list(
            self.sdb.db.query(
                "SELECT c.json AS json FROM inspection_scoring s JOIN scoring_configs c ON c.id = s.scoring_config_id"
                " WHERE s.inspection_id = ?",
                [inspection_id],
            )
        )
        return rows[0]["json"] if rows else None

    def has_frame(self, frame_sha256: str) -> bool:
        """Whether an inspection of these frame bytes is already recorded (a watched folder's backlog)."""
        rows = self.sdb.db.query("SELECT 1 AS x FROM inspections WHERE frame_sha256 = ? LIMIT 1", [frame_sha256])
        return any(True for _ in rows)

    def inspections(
        self,
        *,
        from_ts: TimeArg = None,
        to_ts: TimeArg = None,
        label: str | None = None,
        verdict: str | None = None,
        operator: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Inspection rows, oldest first (newest_first: the latest `limit` rows, newest first);
        label = top-ranked label id, verdict = proposed disposition."""
        where, params = _where(
            [
                ("recorded_at >= ?", _t(from_ts)),
                ("recorded_at < ?", _t(to_ts)),
                ("top_label_id = ?", label),
                ("disposition = ?", verdict),
                ("user = ?", operator),
            ]
        )
        order = " ORDER BY id DESC" if newest_first else " ORDER BY id"
        return list(self.sdb.db.query("SELECT * FROM inspections" + where + order + " LIMIT ?", [*params, limit]))

    def inspection(self, inspection_id: int) -> dict[str, Any] | None:
        """One inspection row by id, or None."""
        rows = list(self.sdb.db.query("SELECT * FROM inspections WHERE id = ?", [int(inspection_id)]))
        return rows[0] if rows else None

    def decisions(
        self,
        *,
        from_ts: TimeArg = None,
        to_ts: TimeArg = None,
        operator: str | None = None,
        label: str | None = None,
        kind: str | None = None,
        inspection_id: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Decision rows, oldest first, each with `corrected_by` (the id of a later correction, or None) and
        `admin_set_password` (1 when the operator's password was still the one an admin set; from the chain)."""
        where, params = _where(
            [
                ("recorded_at >= ?", _t(from_ts)),
                ("recorded_at < ?", _t(to_ts)),
                ("operator = ?", operator),
                ("label_id = ?", label),
                ("kind = ?", kind),
                ("inspection_id = ?", inspection_id),
            ]
        )
        return list(
            self.sdb.db.query(
                "SELECT d.*, (SELECT MIN(id) FROM decisions c WHERE c.corrects_id = d.id) AS corrected_by, IFNULL("
                + ADMIN_SET_SQL
                + ", 0) AS admin_set_password FROM decisions d"
                " LEFT JOIN chain cd ON cd.tbl = 'decisions' AND cd.row_id = d.id" + where + " ORDER BY id LIMIT ?",
                [*params, limit],
            )
        )

    def events(
        self,
        *,
        from_ts: TimeArg = None,
        to_ts: TimeArg = None,
        kind: str | None = None,
        user: str | None = None,
        subject: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Event rows, oldest first."""
        where, params = _where(
            [
                ("recorded_at >= ?", _t(from_ts)),
                ("recorded_at < ?", _t(to_ts)),
                ("kind = ?", kind),
                ("user = ?", user),
                ("subject = ?", subject),
            ]
        )
        return list(self.sdb.db.query("SELECT * FROM events" + where + " ORDER BY id LIMIT ?", [*params, limit]))

    def verify_images(self, archive: str | Path | None = None) -> ImageReport:
        """Each recorded evidence image re-hashed: present, archived (found in `archive` if given), missing,
        or replaced (`log verify --images`; inspector.store.retention)."""
        return image_report(self, archive)


def _t(value: TimeArg) -> str | None:
    return None if value is None else parse_time(value)
