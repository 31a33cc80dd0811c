"""The hash chain over every record row: canonical bytes, entry hashes, append, verify, anchor.

One global sequence covers all record tables: entry `seq` stores the table and row id it covers,
the previous entry's hash and SHA-256(DOMAIN_TAG || canonical(entry) || prev_hash). The chain
alone cannot see a cut-off tail, so the head (seq, hash) is also written to an anchor file next
to the database, HMAC'ed with the station key (see write_anchor).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.errors import InspectorError

GENESIS = "0" * 64
# The tag keeps these hashes apart from any other SHA-256 use of the same bytes (domain separation).
DOMAIN_TAG = b"rankclip-inspector/chain/v1\x00"
ANCHOR_TAG = b"rankclip-inspector/anchor/v1\x00"
# Every table whose rows are records; the order is irrelevant, membership is the allow-list for
# the table names that reach SQL text.
RECORD_TABLES: tuple[str, ...] = (
    "library_versions", "library_labels", "library_descriptions", "users",
    "inspections", "decisions", "events", "model_registry", "model_states",
)
_ROW_SQL = {t: 'SELECT * FROM "' + t + '" WHERE id = ?' for t in RECORD_TABLES}


class ChainError(InspectorError):
    """The chain cannot be written (a table outside the allow-list, a missing row)."""


class AnchorError(InspectorError):
    """The anchor file or the station key file is missing, unreadable or fails its HMAC."""


def canonical(obj: Any) -> bytes:
    """Sorted-key compact UTF-8 JSON: the one byte form that is hashed (NaN refused)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def entry_hash(seq: int, table: str, row_id: int, ts: str, row: dict[str, Any], prev_hash: str) -> str:
    """The hash of chain entry `seq`; seq, table and id are inside so a row cannot be moved."""
    body = canonical({"seq": seq, "table": table, "id": row_id, "ts": ts, "row": row})
    return hashlib.sha256(DOMAIN_TAG + body + bytes.fromhex(prev_hash)).hexdigest()


def fetch_row(conn: sqlite3.Connection, table: str, row_id: int) -> dict[str, Any] | None:
    """One record row as a dict, exactly as stored (what the hash covers)."""
    cur = conn.execute(_ROW_SQL[table], (row_id,))
    values = cur.fetchone()
    return None if values is None else dict(zip((d[0] for d in cur.description), values))


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the last chain entry; (0, GENESIS) for an empty chain."""
    found = conn.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if found is None else (int(found[0]), str(found[1]))


def append_entry(conn: sqlite3.Connection, table: str, row_id: int) -> tuple[int, str]:
    """Chain the row just inserted; call inside the same BEGIN IMMEDIATE transaction."""
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
        "INSERT INTO chain (seq, tbl, row_id, ts, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
        (seq, table, row_id, row["recorded_at"], prev, digest),
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

    def __str__(self) -> str:
        if self.ok:
            return f"chain intact: {self.rows} rows, head seq {self.head_seq}, anchor at seq {self.anchor_seq}"
        return f"chain broken: {self.problem}"


def _bad(problem: str, rows: int, head_seq: int, seq: int | None = None, table: str | None = None,
         row_id: int | None = None) -> ChainReport:
    where = f"seq {seq} ({table} row {row_id}): " if seq is not None else ""
    return ChainReport(False, rows, head_seq, where + problem, seq, table, row_id)


def verify_chain(conn: sqlite3.Connection, anchor: "Anchor | None", anchor_problem: str = "") -> ChainReport:
    """Recompute every entry in seq order; report the first bad one, then unchained rows, then the anchor.

    Read the anchor before calling (a concurrent writer may only move it forward) and call
    inside a read transaction so that counts and entries come from one snapshot.
    """
    prev, expected, counts = GENESIS, 1, dict.fromkeys(RECORD_TABLES, 0)
    hashes_at: dict[int, str] = {}
    for seq, table, row_id, ts, prev_hash, digest in conn.execute(
        "SELECT seq, tbl, row_id, ts, prev_hash, hash FROM chain ORDER BY seq"
    ):
        n = expected - 1
        if seq != expected:
            return _bad(f"sequence gap: expected seq {expected}; chain entries were removed", n, n, seq, table, row_id)
        if table not in counts:
            return _bad(f"unknown table {table!r} in the chain", n, n, seq, table, row_id)
        if prev_hash != prev:
            return _bad("prev_hash does not link to the previous entry (rows removed or reordered)",
                        n, n, seq, table, row_id)
        row = fetch_row(conn, table, row_id)
        if row is None:
            return _bad("the row is missing (deleted after it was written)", n, n, seq, table, row_id)
        if entry_hash(seq, table, row_id, ts, row, prev) != digest:
            return _bad("hash mismatch: the row or its chain entry was changed after it was written",
                        n, n, seq, table, row_id)
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
            return ChainReport(False, rows, head_seq, f"{table} row {first} is not in the chain (inserted around"
                               " the application)", None, table, first)
    if anchor is None:
        if head_seq == 0 and not anchor_problem:
            return ChainReport(True, 0, 0)
        return ChainReport(False, rows, head_seq, f"cannot check the tail: {anchor_problem or 'no anchor file'}")
    if anchor.seq > head_seq:
        return ChainReport(False, rows, head_seq, f"chain ends at seq {head_seq} but the anchor records seq {anchor.seq}: "
                           "rows were removed from the end", anchor_seq=anchor.seq)
    if hashes_at.get(anchor.seq) != anchor.hash:
        return ChainReport(False, rows, head_seq,
                           f"seq {anchor.seq} differs from the anchored hash: the chain was rewritten",
                           bad_seq=anchor.seq, anchor_seq=anchor.seq)
    return ChainReport(True, rows, head_seq, anchor_seq=anchor.seq)


@dataclass(frozen=True)
class Anchor:
    """The chain head as last written outside the database."""

    seq: int
    hash: str
    written_at: str


def load_key(path: Path, create: bool) -> bytes:
    """The station HMAC key (32 random bytes, hex in a 0600 file); created only when asked."""
    if create:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise AnchorError(f"station key {path} cannot be created: {exc.strerror or exc}; the folder must be"
                              " writable and have free space") from None
        else:
            try:
                with os.fdopen(fd, "w", encoding="ascii") as f:
                    f.write(os.urandom(32).hex() + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                _fsync_dir(path.parent)
            except OSError as exc:  # a half-written key would lock the station out later: remove it
                path.unlink(missing_ok=True)
                raise AnchorError(f"station key {path} cannot be written: {exc.strerror or exc}; free disk space"
                                  " and retry") from None
    try:
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise AnchorError(f"station key {path} is readable by other users; run `chmod 600 {path}`")
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        raise AnchorError(f"station key {path} is missing; restore it from the station backup") from None
    except ValueError:
        raise AnchorError(f"station key {path} is not 64 hex digits; restore it from the station backup") from None
    except OSError as exc:
        raise AnchorError(f"station key {path} cannot be read: {exc.strerror or exc}; check its owner and"
                          " permissions (the station's account must read it)") from None


def _mac(key: bytes, seq: int, digest: str, written_at: str) -> str:
    body = canonical({"seq": seq, "hash": digest, "written_at": written_at})
    return hmac.new(key, ANCHOR_TAG + body, "sha256").hexdigest()


def read_anchor(path: Path, key: bytes) -> Anchor | None:
    """The anchor in `path` (None when there is none); AnchorError if it fails its HMAC."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        anchor = Anchor(int(data["seq"]), str(data["hash"]), str(data["written_at"]))
        mac = str(data["mac"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AnchorError(f"anchor file {path} is unreadable ({exc}); it was damaged or replaced") from None
    if not hmac.compare_digest(mac, _mac(key, anchor.seq, anchor.hash, anchor.written_at)):
        raise AnchorError(f"anchor file {path} fails its HMAC: it was edited or comes from another station")
    return anchor


def write_anchor(path: Path, key: bytes, seq: int, digest: str, written_at: str) -> None:
    """Move the anchor forward to (seq, digest): temp file, fsync, rename, fsync the folder.

    A lock file serialises writers of several processes, and a lower seq never replaces a
    higher one, so the anchor only moves forward.
    """
    import fcntl  # POSIX only; the station runs on Linux

    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        current = read_anchor(path, key)
        if current is not None and current.seq >= seq:
            return
        body = {"seq": seq, "hash": digest, "written_at": written_at, "mac": _mac(key, seq, digest, written_at)}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # Every writer holds the lock while its temp file exists, so any other one now is left over
        # from a writer that was killed mid-write: remove it, or crashes pile them up.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        with open(tmp, "wb") as f:
            f.write(canonical(body) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # A rename or create is durable only once the directory entry itself is synced.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
