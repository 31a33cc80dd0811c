"""The hash chain over every record row: canonical bytes, entry hashes, append, verify, anchor.

One global sequence covers all record tables: entry `seq` stores the table and row id it covers,
the previous entry's hash and SHA-256(DOMAIN_TAG || canonical(entry) || prev_hash). The chain
alone cannot see a cut-off tail, so the head (seq, hash) is also written to an anchor file next
to the database, HMAC'ed with the station key (inspector.store.anchor).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inspector.errors import InspectorError

if TYPE_CHECKING:  # anchor.py imports canonical() from here
    from inspector.store.anchor import Anchor

GENESIS = "0" * 64
# The tag keeps these hashes apart from any other SHA-256 use of the same bytes (domain separation).
DOMAIN_TAG = b"rankclip-inspector/chain/v1\x00"
MAC_TAG = b"rankclip-inspector/entry-mac/v1\x00"
# Every table whose rows are records; the order is irrelevant, membership is the allow-list for
# the table names that reach SQL text.
RECORD_TABLES: tuple[str, ...] = (
    "library_versions",
    "library_labels",
    "library_descriptions",
    "users",
    "inspections",
    "decisions",
    "events",
    "model_registry",
    "model_states",
    "library_examples",
)
_ROW_SQL = {t: 'SELECT * FROM "' + t + '" WHERE id = ?' for t in RECORD_TABLES}


class ChainError(InspectorError):
    """The chain cannot be written (a table outside the allow-list, a missing row)."""


# The arguments json.dumps had when the first chains were written: canonical() must keep producing
# exactly these bytes. One shared encoder saves building a new one per call (verify calls it per row).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical(obj: Any) -> bytes:
    """Sorted-key compact UTF-8 JSON: the one byte form that is hashed (NaN refused)."""
    return _CANONICAL.encode(obj).encode("utf-8")


def entry_hash(seq: int, table: str, row_id: int, ts: str, row: dict[str, Any], prev_hash: str) -> str:
    """The hash of chain entry `seq`; seq, table and id are inside so a row cannot be moved."""
    body = canonical({"seq": seq, "table": table, "id": row_id, "ts": ts, "row": row})
    return hashlib.sha256(DOMAIN_TAG + body + bytes.fromhex(prev_hash)).hexdigest()


def entry_mac(key: bytes, seq: int, digest: str) -> str:
    """HMAC of entry `seq`'s hash with the station key: who lacks the key cannot add or recompute entries."""
    return hmac.digest(key, MAC_TAG + seq.to_bytes(8, "big") + bytes.fromhex(digest), "sha256").hex()


def fetch_row(conn: sqlite3.Connection, table: str, row_id: int) -> dict[str, Any] | None:
    """One record row as a dict, exactly as stored (what the hash covers)."""
    cur = conn.execute(_ROW_SQL[table], (row_id,))
    values = cur.fetchone()
    return None if values is None else dict(zip((d[0] for d in cur.description), values))


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the last chain entry; (0, GENESIS) for an empty chain."""
    found = conn.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if found is None else (int(found[0]), str(found[1]))


def append_entry(conn: sqlite3.Connection, table: str, row_id: int, key: bytes) -> tuple[int, str]:
    """Chain the row just inserted (hash and MAC); call inside the same BEGIN IMMEDIATE transaction."""
    if table not in RECORD_TABLES:
        raise ChainError(f"table {table!r} is not a record table; known: {', '.join(RECORD_TABLES)}")
    if not conn.in_transaction:
        raise ChainError("append_entry needs an open write transaction (BEGIN IMMEDIATE)")
    row = fetch_row(conn, table, row_id)
    if row is None:
        raise ChainError(f"{table} row {row_id} does not exist; insert it before chaining it")
    seq, prev = head(conn)
    seq += 1
    digest = entry_hash(seq, table, row_id, row["recorded_at"], row, prev)
    conn.execute(
        "INSERT INTO chain (seq, tbl, row_id, ts, prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (seq, table, row_id, row["recorded_at"], prev, digest, entry_mac(key, seq, digest)),
    )
    return seq, digest


@dataclass(frozen=True)
class ChainReport:
    """The verifier's answer: ok, or the first bad entry and what is wrong with it."""

    ok: bool
    rows: int
    head_seq: int
    problem: str = ""
    bad_seq: int | None = None
    bad_table: str | None = None
    bad_row_id: int | None = None
    anchor_seq: int | None = None
    # What a witness's checkpoint showed (set by the witness check); empty when none was asked.
    witness: str = ""
    # What could not be checked (a witness was asked but did not answer): `log verify` exits 3.
    unchecked: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"chain intact: {self.rows} rows, head seq {self.head_seq}, anchor at seq {self.anchor_seq}; " + (
                self.witness or self.unchecked or NOT_CHECKED_WITHOUT_WITNESS
            )
        return f"chain broken: {self.problem}"


# What the station's own files cannot show (README, threat model): said with every unwitnessed "intact".
NOT_CHECKED_WITHOUT_WITNESS = (
    "not checked without a witness (--witness): a rollback of the whole station (database and anchor restored"
    " together from an older copy), and a rewrite by someone who can read the station key file"
)


def _bad(
    problem: str, rows: int, head_seq: int, seq: int | None = None, table: str | None = None, row_id: int | None = None
) -> ChainReport:
    where = f"seq {seq} ({table} row {row_id}): " if seq is not None else ""
    return ChainReport(False, rows, head_seq, where + problem, seq, table, row_id)


# The row's JSON when its keys already come in sorted order (see _TableScan): the same bytes as
# _CANONICAL without sorting every row again.
_PRESORTED = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# canonical({"seq", "table", "id", "ts", "row"}) spelled out, keys in sorted order.
_ENTRY_BODY = '{"id":%d,"row":%s,"seq":%d,"table":%s,"ts":%s}'


class _TableScan:
    """One record table read once, in id order, beside the chain: entry hashes without a query per row.

    The chain visits each table's rows in id order (a row is chained in the transaction that
    inserted it), so the row an entry names is the scan's next one; an entry out of that order
    (only after tampering) gets a point lookup instead. Columns are selected in sorted name order,
    so the row's canonical JSON needs no per-row key sort; entry_hash() is the reference.
    """

    def __init__(self, conn: sqlite3.Connection, table: str) -> None:
        # The columns SELECT * returns (what fetch_row hashes), read from the statement, not the schema.
        names = sorted(d[0] for d in conn.execute('SELECT * FROM "' + table + '" LIMIT 0').description)
        select = "SELECT " + ", ".join('"' + n.replace('"', '""') + '"' for n in names) + ' FROM "' + table + '"'
        self._conn, self._table, self._columns, self._id = conn, table, tuple(names), names.index("id")
        self._lookup_sql = select + " WHERE id = ?"
        self._rows = conn.execute(select + " ORDER BY id")
        self._next = next(self._rows, None)
        self._table_json = _PRESORTED.encode(table)

    def _lookup(self, row_id: Any) -> tuple[Any, ...] | None:
        return self._conn.execute(self._lookup_sql, (row_id,)).fetchone()

    def _row(self, row_id: int) -> tuple[Any, ...] | None:
        """The row's values in sorted column order, None if there is no such row."""
        found, at = self._next, self._id
        while found is not None and found[at] < row_id:
            found = next(self._rows, None)
        if found is None or found[at] != row_id:
            self._next = found
            return self._lookup(row_id)
        self._next = next(self._rows, None)
        return found

    def entry_hash(self, seq: int, row_id: int, ts: str, prev_hash: str) -> str | None:
        """entry_hash() of this table's row `row_id`; None when the row does not exist."""
        usual = type(seq) is int and type(row_id) is int and type(ts) is str
        found = self._row(row_id) if usual else self._lookup(row_id)
        if found is None:
            return None
        row = dict(zip(self._columns, found))
        if not usual:  # only a hand-made chain table (not STRICT) holds other types: the reference path
            return entry_hash(seq, self._table, row_id, ts, row, prev_hash)
        body = _ENTRY_BODY % (row_id, _PRESORTED.encode(row), seq, self._table_json, _PRESORTED.encode(ts))
        return hashlib.sha256(DOMAIN_TAG + body.encode("utf-8") + bytes.fromhex(prev_hash)).hexdigest()


def verify_chain(conn: sqlite3.Connection, anchor: Anchor | None, key: bytes, anchor_problem: str = "") -> ChainReport:
    """Recompute every entry in seq order; report the first bad one, then unchained rows, then the anchor.

    Every entry from the first one with a MAC on (the upgrade that added them), and every entry past
    the anchor, must carry a valid MAC. Read the anchor before calling (a concurrent writer may only
    move it forward) and call inside a read transaction so that counts and entries come from one snapshot.
    """
    prev, expected, counts = GENESIS, 1, dict.fromkeys(RECORD_TABLES, 0)
    hashes_at: dict[int, str] = {}
    scans: dict[str, _TableScan] = {}
    macs_from = None if anchor is None else anchor.seq + 1  # no entry without a MAC from here on
    mac_prefix = hmac.new(key, MAC_TAG, "sha256")
    for seq, table, row_id, ts, prev_hash, digest, mac in conn.execute(
        "SELECT seq, tbl, row_id, ts, prev_hash, hash, mac FROM chain ORDER BY seq"
    ):
        n = expected - 1
        if seq != expected:
            return _bad(f"sequence gap: expected seq {expected}; chain entries were removed", n, n, seq, table, row_id)
        if table not in counts:
            return _bad(f"unknown table {table!r} in the chain", n, n, seq, table, row_id)
        if prev_hash != prev:
            return _bad(
                "prev_hash does not link to the previous entry (rows removed or reordered)", n, n, seq, table, row_id
            )
        scan = scans.get(table)
        if scan is None:
            scan = scans[table] = _TableScan(conn, table)
        recomputed = scan.entry_hash(seq, row_id, ts, prev)
        if recomputed is None:
            return _bad("the row is missing (deleted after it was written)", n, n, seq, table, row_id)
        if recomputed != digest:
            return _bad(
                "hash mismatch: the row or its chain entry was changed after it was written", n, n, seq, table, row_id
            )
        if mac is None:
            if macs_from is not None and seq >= macs_from:
                return _bad(
                    "the entry has no MAC: it was added or recomputed around the application", n, n, seq, table, row_id
                )
        else:
            check = mac_prefix.copy()
            check.update(seq.to_bytes(8, "big") + bytes.fromhex(digest))
            if not hmac.compare_digest(check.hexdigest(), mac):
                return _bad(
                    "MAC mismatch: the entry was written or recomputed without the station key",
                    n,
                    n,
                    seq,
                    table,
                    row_id,
                )
            macs_from = seq if macs_from is None else min(macs_from, seq)
        if anchor is not None and seq == anchor.seq:
            hashes_at[seq] = digest
        prev, expected = digest, expected + 1
        counts[table] += 1
    rows = head_seq = expected - 1
    for table in RECORD_TABLES:
        stored = conn.execute('SELECT COUNT(*) FROM "' + table + '"').fetchone()[0]
        if stored != counts[table]:
            first = conn.execute(
                'SELECT MIN(id) FROM "' + table + '" WHERE id NOT IN (SELECT row_id FROM chain WHERE tbl = ?)', (table,)
            ).fetchone()[0]
            return ChainReport(
                False,
                rows,
                head_seq,
                f"{table} row {first} is not in the chain (inserted around the application)",
                None,
                table,
                first,
            )
    if anchor is None:
        if head_seq == 0 and not anchor_problem:
            return ChainReport(True, 0, 0)
        return ChainReport(False, rows, head_seq, f"cannot check the tail: {anchor_problem or 'no anchor file'}")
    if anchor.seq > head_seq:
        return ChainReport(
            False,
            rows,
            head_seq,
            f"chain ends at seq {head_seq} but the anchor records seq {anchor.seq}: rows were removed from the end",
            anchor_seq=anchor.seq,
        )
    if hashes_at.get(anchor.seq) != anchor.hash:
        return ChainReport(
            False,
            rows,
            head_seq,
            f"seq {anchor.seq} differs from the anchored hash: the chain was rewritten",
            bad_seq=anchor.seq,
            anchor_seq=anchor.seq,
        )
    return ChainReport(True, rows, head_seq, anchor_seq=anchor.seq)
