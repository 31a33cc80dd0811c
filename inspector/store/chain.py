"""The hash chain over every record row: canonical bytes, entry hashes, append, verify, anchor.

One global sequence covers all record tables: entry `seq` stores the table and row id it covers,
the previous entry's hash and SHA-256(DOMAIN_TAG || canonical(entry) || prev_hash). The chain
alone cannot see a cut-off tail, so the head (seq, hash) is also written to an anchor file next
to the database, HMAC'ed with the station key (see write_anchor; two slots rewritten in place by
turns, so that moving it costs one fdatasync).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
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
    "inspections", "decisions", "events", "model_registry", "model_states", "library_examples",
)
_ROW_SQL = {t: 'SELECT * FROM "' + t + '" WHERE id = ?' for t in RECORD_TABLES}


class ChainError(InspectorError):
    """The chain cannot be written (a table outside the allow-list, a missing row)."""


class AnchorError(InspectorError):
    """The anchor file or the station key file is missing, unreadable or fails its HMAC."""


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


def verify_chain(conn: sqlite3.Connection, anchor: "Anchor | None", anchor_problem: str = "") -> ChainReport:
    """Recompute every entry in seq order; report the first bad one, then unchained rows, then the anchor.

    Read the anchor before calling (a concurrent writer may only move it forward) and call
    inside a read transaction so that counts and entries come from one snapshot.
    """
    prev, expected, counts = GENESIS, 1, dict.fromkeys(RECORD_TABLES, 0)
    hashes_at: dict[int, str] = {}
    scans: dict[str, _TableScan] = {}
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
        scan = scans.get(table)
        if scan is None:
            scan = scans[table] = _TableScan(conn, table)
        recomputed = scan.entry_hash(seq, row_id, ts, prev)
        if recomputed is None:
            return _bad("the row is missing (deleted after it was written)", n, n, seq, table, row_id)
        if recomputed != digest:
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
                fsync_dir(path.parent)
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


# Anchor file format 2: two slots, rewritten in place by turns; each fills its own page, so writing
# one never rewrites the other's. A slot is one line: the canonical record {"hash", "mac", "seq",
# "written_at"} padded with spaces. The valid slot with the higher seq is the anchor; a write cut
# off by a power loss can only damage the slot being written, and the other still holds the anchor
# before it. Format 1, the bare record replaced by rename on every write, is still read, and the
# next write converts it.
ANCHOR_SLOT_BYTES = 4096
ANCHOR_FILE_BYTES = 2 * ANCHOR_SLOT_BYTES
_BLANK_SLOT = b" " * (ANCHOR_SLOT_BYTES - 1) + b"\n"
_READ_LIMIT = 1 << 16  # more than either format holds; a longer file is damaged either way


class _DamagedSlot(Exception):
    """A slot that is neither blank nor a valid record; the message says why."""


@dataclass(frozen=True)
class _AnchorFile:
    """An anchor file as read: each slot's anchor (None when blank or damaged) and which are damaged."""

    legacy: bool  # format 1: a single record
    slots: tuple[Anchor | None, ...]
    damaged: tuple[tuple[int, str], ...]  # (slot, why)

    @property
    def current(self) -> Anchor | None:
        """The valid slot with the highest seq: the anchor."""
        return max((a for a in self.slots if a is not None), key=lambda a: a.seq, default=None)

    def slot_to_write(self) -> int:
        """Any slot but the current anchor's: a damaged or blank one, else the older anchor's."""
        current = self.current
        return 0 if current is None else 1 - self.slots.index(current)

    def problem(self, path: Path) -> str:
        """Why the file cannot be trusted as it is; empty when no slot is damaged."""
        if not self.damaged:
            return ""
        what = ", ".join(why if self.legacy else f"slot {slot} {why}" for slot, why in self.damaged)
        if self.current is None:
            return f"anchor file {path} {what}: it was edited, damaged or comes from another station"
        return (f"anchor file {path}: {what}: it was edited, or a power loss cut off an anchor write (then the"
                " next commit rewrites that slot)")


def _record(key: bytes, anchor: Anchor) -> bytes:
    """The anchor and its HMAC as canonical JSON: a format-1 file's content, a format-2 slot's line."""
    return canonical({"seq": anchor.seq, "hash": anchor.hash, "written_at": anchor.written_at,
                      "mac": _mac(key, anchor.seq, anchor.hash, anchor.written_at)})


def _slot(key: bytes, anchor: Anchor) -> bytes:
    """One format-2 slot holding this anchor."""
    record = _record(key, anchor)
    if len(record) >= ANCHOR_SLOT_BYTES:
        raise ValueError(f"an anchor record of {len(record)} bytes does not fit a {ANCHOR_SLOT_BYTES}-byte slot")
    return record.ljust(ANCHOR_SLOT_BYTES - 1) + b"\n"


def _parse_slot(data: bytes, key: bytes) -> Anchor | None:
    """The anchor a slot (or a whole format-1 file) holds; None when blank, _DamagedSlot when damaged."""
    text = data.strip()
    if not text:
        return None
    try:
        record = json.loads(text)
        anchor = Anchor(int(record["seq"]), str(record["hash"]), str(record["written_at"]))
        expected = _mac(key, anchor.seq, anchor.hash, anchor.written_at).encode("ascii")
        valid = hmac.compare_digest(str(record["mac"]).encode("utf-8"), expected)
    except (ValueError, KeyError, TypeError) as exc:  # also invalid UTF-8 from a torn write
        raise _DamagedSlot(f"is unreadable ({exc})") from None
    if not valid:
        raise _DamagedSlot("fails its HMAC")
    return anchor


def _load(data: bytes, key: bytes) -> _AnchorFile:
    """Parse an anchor file's bytes; a file of any other size than format 2 is read as format 1."""
    legacy = len(data) != ANCHOR_FILE_BYTES
    chunks = (data,) if legacy else (data[:ANCHOR_SLOT_BYTES], data[ANCHOR_SLOT_BYTES:])
    slots: list[Anchor | None] = []
    damaged: list[tuple[int, str]] = []
    for index, chunk in enumerate(chunks):
        try:
            slots.append(_parse_slot(chunk, key))
        except _DamagedSlot as exc:
            slots.append(None)
            damaged.append((index, str(exc)))
    if not damaged and all(s is None for s in slots):  # every write leaves a record: this file was emptied
        damaged.append((0, "is empty"))
    return _AnchorFile(legacy, tuple(slots), tuple(damaged))


@contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[None]:
    """Hold the anchor's lock file: writers exclusively, readers shared (never a slot half rewritten).

    A reader that cannot open the lock file (none yet, a read-only copy) reads without it: no
    writer rewrites a slot of a file whose lock file is missing, since every writer creates it first.
    """
    import fcntl  # POSIX only; the station runs on Linux

    lock_path = path.with_name(path.name + ".lock")
    flags = (os.O_RDWR | os.O_CREAT) if exclusive else os.O_RDONLY
    fd: int | None = None
    try:
        fd = os.open(lock_path, flags, 0o666)  # the umask applies, as with open(..., "a+b") before
    except OSError:
        if exclusive:
            raise
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _read_file(fd: int) -> bytes:
    return os.pread(fd, _READ_LIMIT, 0)


def read_anchor(path: Path, key: bytes) -> Anchor | None:
    """The anchor in `path` (None when there is no file); AnchorError if any slot is damaged or forged."""
    try:
        with _locked(path, exclusive=False):
            fd = os.open(path, os.O_RDONLY)
            try:
                data = _read_file(fd)
            finally:
                os.close(fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AnchorError(f"anchor file {path} is unreadable ({exc}); it was damaged or replaced") from None
    found = _load(data, key)
    if found.damaged:
        raise AnchorError(found.problem(path))
    return found.current


def anchor_record(path: Path, key: bytes) -> bytes | None:
    """The current anchor as one canonical JSON line with its HMAC (a format-1 file), for export bundles.

    None when there is no anchor file; AnchorError as read_anchor.
    """
    anchor = read_anchor(path, key)
    return None if anchor is None else _record(key, anchor) + b"\n"


def write_anchor(path: Path, key: bytes, seq: int, digest: str, written_at: str) -> None:
    """Move the anchor forward to (seq, digest); a lower seq never replaces a higher one.

    Writers of all processes take turns on the lock file. A format-2 file gets the slot that does
    not hold the current anchor rewritten in place, then one fdatasync: no rename, no folder sync.
    A missing or format-1 file is written whole, once: temp file, fsync, rename, fsync the folder.
    """
    slot = _slot(key, Anchor(seq, digest, written_at))
    with _locked(path, exclusive=True):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            _write_whole(path, slot + _BLANK_SLOT)
            return
        try:
            found = _load(_read_file(fd), key)
            current = found.current
            if found.damaged and (found.legacy or current is None):
                # Nothing valid to keep, and perhaps another station's file: never overwrite it silently.
                raise AnchorError(found.problem(path))
            if current is not None and current.seq >= seq:
                return
            if found.legacy:
                _write_whole(path, slot + _BLANK_SLOT)
            else:
                _write_slot(fd, slot, found.slot_to_write())
        finally:
            os.close(fd)


def _write_slot(fd: int, slot: bytes, index: int) -> None:
    """Rewrite one slot in place; fdatasync suffices, as the file's size and name never change."""
    if os.pwrite(fd, slot, index * ANCHOR_SLOT_BYTES) != len(slot):
        raise OSError(errno.EIO, "short write to the anchor file")
    os.fdatasync(fd)


def _write_whole(path: Path, data: bytes) -> None:
    """Create or replace the anchor file atomically: temp file, fsync, rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Every writer holds the lock while its temp file exists, so any other one now is left over
    # from a writer that was killed mid-write: remove it, or crashes pile them up.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make the names in `folder` durable: a create or rename survives a power cut only after this."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
