"""The fast verifier computes exactly the hashes the first release wrote: canonical() and the
per-table scan of verify_chain against a frozen copy of the original json.dumps code, on awkward
values (unicode, control characters, floats, None, JSON text inside a column) and awkward column
names; and the scan finds rows the chain names out of id order."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from inspector.store.chain import GENESIS, RECORD_TABLES, _TableScan, canonical, entry_hash
from inspector.store.decision_log import DecisionLog

TEXTS = [
    "",
    "plain",
    "é漢字🙂",
    "tab\there",
    "new\nline",
    "cr\rlf",
    "nul\x00",
    "\x1f\x7f",
    'quote " back \\ slash',
    "\u2028\u2029",
    "\ud7ff\ue000\uffff",
    json.dumps({"nested": ["é", 1.5, None, {"k": '"q"'}]}),
    json.dumps({"nested": "é"}, ensure_ascii=False),
    "</script>",
    "a" * 5000,
]
FLOATS = [0.0, -0.0, 0.1, 1 / 3, 1e16, 1e-05, 5e-324, 1.7976931348623157e308, -2.5, 3.0, 123456789.123]
INTS = [0, -1, 1, 2**31, -(2**63), 2**63 - 1]


def reference_canonical(obj: Any) -> bytes:
    """canonical() as the first release wrote it; the hashes of every existing station depend on it."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def reference_entry_hash(seq: int, table: str, row_id: int, ts: str, row: dict[str, Any], prev_hash: str) -> str:
    body = reference_canonical({"seq": seq, "table": table, "id": row_id, "ts": ts, "row": row})
    return hashlib.sha256(b"rankclip-inspector/chain/v1\x00" + body + bytes.fromhex(prev_hash)).hexdigest()


def _rows() -> list[dict[str, Any]]:
    """Rows mixing every kind of value, in columns whose names sort differently from their order."""
    values: list[Any] = [*TEXTS, *FLOATS, *INTS, None]
    return [
        {
            "id": i + 1,
            "recorded_at": f"2026-01-01T00:00:{i % 60:02d}.000Z",
            "zeta": v,
            "Alpha": values[-1 - i],
            "_x": values[(i * 7) % len(values)],
            "ä": values[(i * 3) % len(values)],
            "b c": str(v),
            'a"q': i,
        }
        for i, v in enumerate(values)
    ]


def test_canonical_matches_the_first_release() -> None:
    for row in _rows():
        assert canonical(row) == reference_canonical(row)
        assert canonical([row, {"row": row}]) == reference_canonical([row, {"row": row}])
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})  # refused, as before


def _table(rows: list[dict[str, Any]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    columns = list(rows[0])
    conn.execute(
        "CREATE TABLE t ("
        + ", ".join('"' + c.replace('"', '""') + '"' + (" INTEGER PRIMARY KEY" if c == "id" else "") for c in columns)
        + ")"
    )
    conn.executemany(
        "INSERT INTO t VALUES (" + ", ".join("?" * len(columns)) + ")", [[r[c] for c in columns] for r in rows]
    )
    return conn


def test_the_scan_hashes_every_row_as_the_first_release_did() -> None:
    rows = _rows()
    scan = _TableScan(_table(rows), "t")
    prev = GENESIS
    for seq, row in enumerate(rows, start=1):
        expected = reference_entry_hash(seq, "t", row["id"], row["recorded_at"], row, prev)
        assert entry_hash(seq, "t", row["id"], row["recorded_at"], row, prev) == expected
        assert scan.entry_hash(seq, row["id"], row["recorded_at"], prev) == expected, row
        prev = expected


def test_the_scan_finds_rows_out_of_id_order_and_reports_missing_ones() -> None:
    rows = _rows()
    scan = _TableScan(_table(rows), "t")
    for row_id in (5, 2, 9, 9, 1, 30, 3):  # backwards, repeated, skipping ahead
        row = rows[row_id - 1]
        assert scan.entry_hash(7, row_id, "ts", GENESIS) == reference_entry_hash(7, "t", row_id, "ts", row, GENESIS)
    assert scan.entry_hash(7, 999, "ts", GENESIS) is None
    assert scan.entry_hash(7, 0, "ts", GENESIS) is None


def test_odd_types_in_a_hand_made_chain_hash_as_before() -> None:
    row = _rows()[0]
    scan = _TableScan(_table([row]), "t")
    # A non-STRICT copy of the chain table could hold these; SQLite finds row 1 for id '1' as before.
    for seq, row_id, ts in ((True, 1, "ts"), (1.0, 1, "ts"), (1, 1, None), (1, "1", "ts"), (1, 1.0, "ts")):
        assert scan.entry_hash(seq, row_id, ts, GENESIS) == reference_entry_hash(seq, "t", row_id, ts, row, GENESIS)


def test_a_station_database_verifies_against_the_reference_hashes(tmp_path: Path) -> None:
    """Every stored chain hash of a real station (awkward text in events) equals the reference one."""
    with DecisionLog.open(tmp_path / "s.db") as log:
        for i, text in enumerate(TEXTS):
            log.record_event("camera_note", {"text": text, "f": FLOATS[i % len(FLOATS)], "n": None}, subject=text)
        assert log.verify().ok
        conn = log.sdb.conn
        prev = GENESIS
        for seq, table, row_id, ts, digest in conn.execute("SELECT seq, tbl, row_id, ts, hash FROM chain ORDER BY seq"):
            assert table in RECORD_TABLES
            cur = conn.execute(f'SELECT * FROM "{table}" WHERE id = ?', (row_id,))
            row = dict(zip((d[0] for d in cur.description), cur.fetchone()))
            assert reference_entry_hash(seq, table, row_id, ts, row, prev) == digest
            prev = digest
