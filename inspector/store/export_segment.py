"""The chain segment of a selective export: from the first to the last chain entry of the chosen rows.

Every entry in between goes into the bundle (without the rows left out), so the verifier can still
follow each link from the segment's first entry to its head.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping

from inspector.errors import InspectorError
from inspector.store.chain import RECORD_TABLES


def selected_bounds(
    conn: sqlite3.Connection, selection: Mapping[str, Collection[int]]
) -> tuple[int | None, int | None]:
    """(first seq, last seq) over the chain entries of the selected rows; (None, None) when none are chosen."""
    first = last = None
    for table, ids in selection.items():
        if table not in RECORD_TABLES:
            raise InspectorError(f"cannot select rows of {table!r}: not a record table")
        rows = sorted({int(i) for i in ids})
        for start in range(0, len(rows), 500):  # bound parameters in chunks (sqlite's variable limit)
            part = rows[start : start + 500]
            lo, hi = conn.execute(
                "SELECT MIN(seq), MAX(seq) FROM chain WHERE tbl = ? AND row_id IN (" + ",".join("?" * len(part)) + ")",
                [table, *part],
            ).fetchone()
            if lo is not None:
                first = lo if first is None else min(first, lo)
                last = hi if last is None else max(last, hi)
    return first, last
