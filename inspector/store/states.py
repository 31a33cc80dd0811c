"""The derived state of each inspection: answered, pending review, passed or open.

Nothing stores a state: it follows from the chained records, so it can never disagree with them.
answered: a decision names the inspection; pending_review: the operator's queue moved it to the
review lane (a `part_to_review` event) and nobody has answered it yet; passed: the station
accepted it and it needed no answer; open: a trouble part not (yet) answered nor moved (on
screen now, or the station stopped before it could move it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

STATES: tuple[str, ...] = ("answered", "pending_review", "passed", "open")
TO_REVIEW = "part_to_review"  # the event kind of a move to the review lane (subject: the inspection id)

_STATE_SQL = (
    "SELECT i.id, CASE"
    " WHEN EXISTS (SELECT 1 FROM decisions d WHERE d.inspection_id = i.id) THEN 'answered'"
    " WHEN EXISTS (SELECT 1 FROM events e WHERE e.kind = ? AND e.subject = CAST(i.id AS TEXT)) THEN 'pending_review'"
    " WHEN i.disposition = 'accept' AND i.needs_review = 0 AND i.open_set = 0 THEN 'passed'"
    " ELSE 'open' END AS state FROM inspections i WHERE i.id IN ({marks})"
)


def inspection_states(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, str]:
    """The state of each inspection id (ids not in the database are left out)."""
    wanted = sorted({int(i) for i in ids})
    out: dict[int, str] = {}
    for start in range(0, len(wanted), 500):  # sqlite's bound-parameter limit
        chunk = wanted[start : start + 500]
        sql = _STATE_SQL.format(marks=",".join("?" * len(chunk)))
        out.update({int(r[0]): str(r[1]) for r in conn.execute(sql, [TO_REVIEW, *chunk])})
    return out


def pending_review_ids(conn: sqlite3.Connection, limit: int = 1000) -> list[int]:
    """Inspections in the review lane not answered yet, oldest first."""
    rows = conn.execute(
        "SELECT DISTINCT CAST(e.subject AS INTEGER) AS id FROM events e WHERE e.kind = ? AND NOT EXISTS"
        " (SELECT 1 FROM decisions d WHERE d.inspection_id = CAST(e.subject AS INTEGER)) ORDER BY id LIMIT ?",
        [TO_REVIEW, int(limit)],
    )
    return [int(r[0]) for r in rows]
