"""The station database: open with durable pragmas, schema by versioned migrations, write transactions.

The migrations themselves are in inspector.store.migrations; open_database applies them.

Every write goes through StationDB.transaction() (BEGIN IMMEDIATE ... COMMIT) and every record
row through StationDB.append(), which chains it in the same transaction. The caller is
acknowledged only after COMMIT has returned; then the anchor file moves forward.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from inspector.errors import DataError, InspectorError
from inspector.store import model_aliases
from inspector.store.anchor import Anchor, AnchorError, load_key, read_anchor, write_anchor
from inspector.store.chain import RECORD_TABLES, ChainReport, append_entry, head, verify_chain
from inspector.store.migrations import MIGRATIONS
from inspector.store.passwords import fingerprint
from inspector.store.row_seal import USER_ROW_SEAL, seal_user_rows

# Writers wait this long for another process's transaction before giving up (D1: >= 5 s).
BUSY_TIMEOUT_MS = 10_000


class StorageError(InspectorError):
    """The database could not be opened, read or written (disk full, locked, damaged)."""


class AnchorWriteError(AnchorError):
    """The record IS committed, but the anchor file could not be moved forward to it."""


def storage_hint(exc: BaseException, path: Path) -> str:
    """What the operator can do about a failed read or write of the database at `path`."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if name.startswith("SQLITE_FULL") or code in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk holding {path.parent} is full: free space there, then retry"
    if name.startswith("SQLITE_READONLY") or code in (errno.EACCES, errno.EPERM, errno.EROFS) or not _writable(path):
        return (
            f"the database or its folder {path.parent} is read-only (file permissions or a read-only mount);"
            " SQLite must write the database and its -wal and -shm files: make them writable, then retry"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return f"another program held the database locked for over {BUSY_TIMEOUT_MS // 1000} s; retry"
    if name.startswith("SQLITE_IOERR") or code is not None:
        return "the disk reported an I/O error: check the disk and free space (and the system log), then retry"
    return "check free disk space and that no other program holds the database locked, then retry"


def _writable(path: Path) -> bool:
    # os.access honours read-only mounts even for root (EROFS), unlike a permission-bit check.
    target = path if path.exists() else path.parent
    return os.access(target, os.W_OK)


def utc_stamp(when: datetime | None = None) -> str:
    """UTC ISO 8601 with milliseconds and 'Z': sortable as text, the one time format stored."""
    when = datetime.now(UTC) if when is None else when
    if when.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; pass a timezone-aware UTC time")
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: datetime | str) -> str:
    """A filter bound as stored text: aware datetimes, or ISO strings (no zone means UTC; 'Z' allowed)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise DataError(f"time {value!r} is not ISO 8601; write e.g. 2026-05-09 or 2026-05-09T14:30:00Z") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
    return utc_stamp(value)


_EVENT_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def event_row(
    kind: str, user: str | None, subject: str = "", detail: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An events row: kind (lowercase identifier), acting user, subject, detail as sorted JSON."""
    if not _EVENT_KIND.match(kind):
        raise ValueError(f"event kind {kind!r} must be 1-40 lowercase letters, digits or '_'")
    text = json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return {"kind": kind, "user": user, "subject": str(subject), "detail": text}


class StationDB:
    """An open station database; one per thread (sqlite3 connections are not shared)."""

    def __init__(self, path: Path, db: Database, anchor_every: int, may_create_key: bool) -> None:
        self.path, self.db, self.conn = path, db, db.conn
        self.anchor_path = path.with_name(path.name + ".anchor")
        self.key_path = path.with_name(path.name + ".key")
        # The station's Ed25519 identity: signs witness checkpoints and export bundles (created on first use).
        self.identity_path = path.with_name(path.name + ".identity")
        self.on_commit: Callable[[], None] | None = None  # told after each COMMIT (the witness publisher)
        self.image_root = path.parent / "images" / "sha256"
        self._anchor_every = max(1, anchor_every)
        self._may_create_key = may_create_key
        self._key: bytes | None = None
        self._commits = 0
        self._head: tuple[int, str] | None = None
        self._txn_first: int | None = None  # the first seq the open transaction chained
        self._unanchored_from: int | None = None  # the first seq this process committed and has not anchored
        self._columns: dict[str, set[str]] = {}
        self.load_columns()

    def load_columns(self) -> None:
        """Read the record tables' columns: the allow-list for column names in INSERTs."""
        self._columns = {
            t: {r[1] for r in self.conn.execute("SELECT * FROM pragma_table_info(?)", (t,))} for t in RECORD_TABLES
        }

    @property
    def key(self) -> bytes:
        """The station HMAC key; created on the first run of a new database only."""
        if self._key is None:
            self._key = load_key(self.key_path, create=self._may_create_key)
        return self._key

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """BEGIN IMMEDIATE ... COMMIT: the head read and the chain insert cannot interleave across processes."""
        if self.conn.in_transaction:
            raise StorageError("a write transaction is already open on this connection; finish it first")
        _ = self.key  # fails here, before writing, rather than after COMMIT when the key file is missing
        self._head = self._txn_first = None
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"database {self.path} was not changed: {exc}; {storage_hint(exc, self.path)}") from exc
        if self._head is not None:
            self._commits += 1
            if self.on_commit is not None:
                self.on_commit()
            if self._unanchored_from is None:
                self._unanchored_from = self._txn_first
            if self._commits % self._anchor_every == 0:
                try:
                    self.write_anchor(self._head)
                except OSError as exc:
                    raise AnchorWriteError(
                        f"the record IS committed (chain seq {self._head[0]}), but the anchor file"
                        f" {self.anchor_path} could not be updated: {exc}; free disk space or fix"
                        " permissions: until the next commit anchors, a cut tail would go unseen"
                    ) from exc
                except AnchorError as exc:
                    raise AnchorWriteError(
                        f"the record IS committed (chain seq {self._head[0]}), but the anchor was not moved: {exc}"
                    ) from exc

    def append(self, table: str, row: dict[str, Any]) -> int:
        """Insert a record row (stamped recorded_at now) and chain it; inside transaction()."""
        if table not in self._columns or not set(row) <= self._columns[table] - {"id", "recorded_at"}:
            raise StorageError(f"cannot append {sorted(row)} to {table!r}: not a record table or unknown columns")
        values = {"recorded_at": utc_stamp(), **row}
        names = list(values)
        sql = 'INSERT INTO "' + table + '" (' + ", ".join(names) + ") VALUES (" + ", ".join("?" * len(names)) + ")"
        row_id = int(self.db.execute(sql, [values[n] for n in names]).lastrowid)
        self._head = append_entry(self.conn, table, row_id, self.key)
        if self._txn_first is None:
            self._txn_first = self._head[0]
        return row_id

    def add_credential(self, user_name: str, encoded: str) -> None:
        """Store a password hash (inside transaction()); secrets are kept out of the chain and exports."""
        self.db.execute(
            "INSERT INTO credentials (recorded_at, user_name, encoded) VALUES (?, ?, ?)",
            [utc_stamp(), user_name, encoded],
        )

    def write_anchor(self, committed: tuple[int, str] | None = None) -> None:
        """Move the anchor file to a committed chain entry (after COMMIT only): the given one, else the head."""
        seq, digest = committed or head(self.conn)
        if seq:
            write_anchor(self.anchor_path, self.key, seq, digest, utc_stamp(), self._check_anchor)
            self._unanchored_from = None

    def _check_anchor(self, current: Anchor | None, torn: bool) -> None:
        """Refuse to move the anchor over a chain that does not extend it (write_anchor's check).

        No file: created only for a chain this process started (seq 1), never re-created for a
        deleted one. The chain must still hold the anchored entry unchanged (a rewrite below the
        anchor stays visible). A slot left unreadable is a power loss only if a commit the anchor
        missed is still there, before this process's own (the crash came after its COMMIT).
        """
        first = self._unanchored_from or head(self.conn)[0]
        if current is None:
            if first != 1:
                raise AnchorError(
                    f"anchor file {self.anchor_path} is missing for a chain of {first - 1}+ entries:"
                    " it was deleted; it is not re-created (that would hide a cut tail): restore it"
                    " from the station backup"
                )
            return
        stored = self.conn.execute("SELECT hash FROM chain WHERE seq = ?", (current.seq,)).fetchone()
        if stored is None or stored[0] != current.hash:
            raise AnchorError(
                f"chain entry {current.seq} no longer holds the anchored hash: the chain was rewritten"
                " or cut below the anchor; run `inspector log verify`"
            )
        if (
            torn
            and self.conn.execute("SELECT 1 FROM chain WHERE seq > ? AND seq < ?", (current.seq, first)).fetchone()
            is None
        ):
            raise AnchorError(
                f"anchor file {self.anchor_path} has an unreadable slot but no commit after the anchor"
                f" (seq {current.seq}) is missing from it: the newer slot was destroyed and the tail cut"
            )

    def anchor_problem(self) -> str:
        """'' unless the chain no longer holds the entry the anchor file names: a tail cut or rewritten.

        One read of the anchor file and one indexed SELECT, cheap enough for every sign-in; the full
        check is `log verify`. The anchor is read first: it only ever names committed entries. A
        missing or damaged anchor file is left to the next commit and to verify (a power loss can
        leave a slot unreadable), so this finds only what a valid anchor proves.
        """
        try:
            anchor = read_anchor(self.anchor_path, self.key)
        except AnchorError:
            return ""
        if anchor is None:
            return ""
        stored = self.conn.execute("SELECT hash FROM chain WHERE seq = ?", (anchor.seq,)).fetchone()
        if stored is None:
            return f"chain entry {anchor.seq}, named by the anchor file, is gone: the log's tail was cut"
        if stored[0] != anchor.hash:
            return f"chain entry {anchor.seq} no longer holds the anchored hash: the log was rewritten"
        return ""

    def verify(self) -> ChainReport:
        """Recompute the whole chain in one read snapshot and compare its tail with the anchor."""
        anchor: Anchor | None = None
        problem = ""
        try:  # the anchor is read first: concurrent writers can only move it past our snapshot's head
            anchor = read_anchor(self.anchor_path, self.key)
        except AnchorError as exc:
            problem = str(exc)
        self.conn.execute("BEGIN")
        try:
            return verify_chain(self.conn, anchor, self.key, problem)
        finally:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        """Anchor any commits not yet anchored (anchor_every > 1), then close."""
        if self._anchor_every > 1 and self._commits % self._anchor_every:
            self.write_anchor()
        self.conn.close()


def _private_file(path: Path) -> None:
    """Create the database file 0600 in a 0700 folder (SQLite gives its -wal and -shm files the same
    mode); an existing one of ours readable by others is tightened: the file holds password hashes."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            try:
                st = name.stat()
                if st.st_uid == os.getuid() and st.st_mode & 0o077:
                    name.chmod(st.st_mode & 0o700)
            except OSError:  # missing side file, or a read-only copy: nothing to tighten
                pass


def seal_credentials(station: StationDB) -> None:
    """Chain the fingerprint of every account's current password hash as found at the upgrade.

    From here on a hash inserted behind the application's back matches no chained event (sign-in and
    `log verify` refuse it). Earlier rows could not be told apart, so the upgrade trusts them.
    """
    found = station.conn.execute(
        "SELECT user_name, encoded FROM credentials c"
        " WHERE id = (SELECT MAX(id) FROM credentials WHERE user_name = c.user_name) ORDER BY id"
    ).fetchall()
    for name, encoded in found:
        station.append(
            "events",
            event_row(
                "credential_sealed",
                None,
                name,
                {"credential": fingerprint(name, encoded), "reason": "sealed at the upgrade"},
            ),
        )


def open_database(path: str | Path, *, create: bool = True, anchor_every: int = 1) -> StationDB:
    """Open (or create) the station database: WAL, synchronous=FULL, foreign keys, busy timeout, migrations."""
    path = Path(path).expanduser().absolute()
    if not create and not path.is_file():
        raise StorageError(
            f"database {path} does not exist; pass the right --db, or create it with `inspector user add`"
        )
    conn: sqlite3.Connection | None = None
    try:
        _private_file(path)
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        for pragma in (
            f"busy_timeout={BUSY_TIMEOUT_MS}",
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "trusted_schema=OFF",
        ):
            conn.execute("PRAGMA " + pragma).fetchall()
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            raise StorageError(f"database {path} cannot use WAL mode; keep it on a local disk")
        db = Database(conn)
        new = "chain" not in db.table_names() or head(conn)[0] == 0
        station = StationDB(path, db, anchor_every, may_create_key=create and new)
        if MIGRATIONS.pending(db):
            with station.transaction():
                pending = [m.name for m in MIGRATIONS.pending(db)]  # re-read under the write lock
                MIGRATIONS.apply(db)
                station.load_columns()
                for name in pending:
                    station.append("events", event_row("schema_migration", None, name))
                if "0006_credential_seals" in pending:
                    seal_credentials(station)
                if "0010_user_row_seals" in pending:
                    seal_user_rows(
                        station.conn, lambda name, d: station.append("events", event_row(USER_ROW_SEAL, None, name, d))
                    )
                if model_aliases.MIGRATION in pending:
                    for kind, subject, detail in model_aliases.legacy_bindings(station.conn):
                        station.append("events", event_row(kind, None, subject, detail))
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, OSError):  # the folder or a side file: the same plain message, never a traceback
            raise StorageError(
                f"cannot open database {path}: {exc.strerror or exc} ({exc.filename or path});"
                f" {storage_hint(exc, path)}"
            ) from exc
        raise StorageError(f"cannot open database {path}: {exc}; {storage_hint(exc, path)}") from exc
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    return station
