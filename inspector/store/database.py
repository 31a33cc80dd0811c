"""The station database: open with durable pragmas, schema by versioned migrations, write transactions.

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
from sqlite_utils.migrations import Migrations

from inspector.errors import DataError, InspectorError
from inspector.store.anchor import Anchor, AnchorError, load_key, read_anchor, write_anchor
from inspector.store.chain import RECORD_TABLES, ChainReport, append_entry, head, verify_chain
from inspector.store.passwords import fingerprint

# Writers wait this long for another process's transaction before giving up (D1: >= 5 s).
BUSY_TIMEOUT_MS = 10_000

_TABLES = [
    "CREATE TABLE chain (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, row_id INTEGER NOT NULL, ts TEXT NOT NULL,"
    " prev_hash TEXT NOT NULL, hash TEXT NOT NULL, UNIQUE (tbl, row_id)) STRICT",
    "CREATE TABLE library_versions (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, name TEXT NOT NULL,"
    " description TEXT NOT NULL, user TEXT NOT NULL, reason TEXT NOT NULL) STRICT",
    "CREATE TABLE library_labels (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL,"
    " version INTEGER NOT NULL REFERENCES library_versions(id), label_id TEXT NOT NULL, position INTEGER NOT NULL,"
    " name TEXT NOT NULL, disposition TEXT NOT NULL, severity INTEGER NOT NULL, threshold REAL, scope TEXT NOT NULL,"
    " retired INTEGER NOT NULL, UNIQUE (version, label_id)) STRICT",
    "CREATE TABLE library_descriptions (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL,"
    " version INTEGER NOT NULL REFERENCES library_versions(id), label_id TEXT NOT NULL, position INTEGER NOT NULL,"
    " text TEXT NOT NULL, retired INTEGER NOT NULL, UNIQUE (version, label_id, text)) STRICT",
    "CREATE TABLE users (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, name TEXT NOT NULL,"
    " version INTEGER NOT NULL, role TEXT NOT NULL, printed_name TEXT NOT NULL, active INTEGER NOT NULL,"
    " changed_by TEXT, reason TEXT NOT NULL,"
    " UNIQUE (name, version)) STRICT",
    # Secrets stay out of the chain and out of exports; password changes are chained as events.
    "CREATE TABLE credentials (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, user_name TEXT NOT NULL,"
    " encoded TEXT NOT NULL) STRICT",
    "CREATE TABLE inspections (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, user TEXT NOT NULL,"
    " captured_at TEXT NOT NULL, source_id TEXT NOT NULL, frame_seq INTEGER NOT NULL, origin TEXT NOT NULL,"
    " width INTEGER NOT NULL, height INTEGER NOT NULL, image_sha256 TEXT, frame_sha256 TEXT NOT NULL,"
    " model_id TEXT NOT NULL, library_version INTEGER NOT NULL REFERENCES library_versions(id),"
    " candidates TEXT NOT NULL, top_label_id TEXT NOT NULL, disposition TEXT NOT NULL, needs_review INTEGER NOT NULL,"
    " open_set INTEGER NOT NULL, verdict_reason TEXT NOT NULL, timings TEXT NOT NULL) STRICT",
    "CREATE TABLE decisions (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL,"
    " inspection_id INTEGER NOT NULL REFERENCES inspections(id), kind TEXT NOT NULL, label_id TEXT,"
    " picked_rank INTEGER, typed_description TEXT NOT NULL, comment TEXT NOT NULL, operator TEXT NOT NULL,"
    " role TEXT NOT NULL, printed_name TEXT NOT NULL, decided_at TEXT NOT NULL, override INTEGER NOT NULL,"
    " corrects_id INTEGER REFERENCES decisions(id), corrects_hash TEXT, reason TEXT NOT NULL) STRICT",
    "CREATE TABLE events (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, kind TEXT NOT NULL, user TEXT,"
    " subject TEXT NOT NULL, detail TEXT NOT NULL) STRICT",
    # A cache, not a record: recomputable, so it may be replaced and is not chained.
    "CREATE TABLE embeddings (model_id TEXT NOT NULL, text TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,"
    " PRIMARY KEY (model_id, text)) STRICT",
    "CREATE INDEX chain_ts ON chain (ts)",
    "CREATE INDEX inspections_time ON inspections (recorded_at)",
    "CREATE INDEX decisions_time ON decisions (recorded_at)",
    "CREATE INDEX decisions_inspection ON decisions (inspection_id)",
    # One first answer per inspection; every later change is a correction row.
    "CREATE UNIQUE INDEX decisions_first ON decisions (inspection_id) WHERE corrects_id IS NULL",
    "CREATE INDEX events_time ON events (recorded_at)",
    "CREATE INDEX events_subject ON events (subject, kind)",
    "CREATE INDEX users_name ON users (name, version)",
    "CREATE INDEX credentials_user ON credentials (user_name, id)",
    "CREATE TRIGGER chain_gapless BEFORE INSERT ON chain"
    " WHEN NEW.seq <> (SELECT IFNULL(MAX(seq), 0) + 1 FROM chain)"
    " BEGIN SELECT RAISE(ABORT, 'chain seq must follow the head'); END",
]


def _append_only(tables: tuple[str, ...]) -> list[str]:
    return [
        f"CREATE TRIGGER {t}_no_{verb.lower()} BEFORE {verb} ON {t}"
        f" BEGIN SELECT RAISE(ABORT, '{t} is append-only: a change is a new row'); END"
        for t in tables
        for verb in ("UPDATE", "DELETE")
    ]


# The record tables of the first schema, spelled out: RECORD_TABLES grows with later migrations,
# whose tables do not exist yet when 0001 runs on a new database; each migration guards its own.
_INITIAL_RECORDS = (
    "library_versions",
    "library_labels",
    "library_descriptions",
    "users",
    "inspections",
    "decisions",
    "events",
)
_TRIGGERS = _append_only((*_INITIAL_RECORDS, "chain", "credentials"))
# The model registry (inspector.learning.registry): a model row once, then its state changes as new rows.
_REGISTRY = [
    "CREATE TABLE model_registry (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, model_id TEXT NOT NULL UNIQUE,"
    " parent_id TEXT, data_hash TEXT NOT NULL, recipe TEXT NOT NULL, figures TEXT NOT NULL, checkpoint TEXT NOT NULL,"
    " user TEXT NOT NULL, reason TEXT NOT NULL) STRICT",
    "CREATE TABLE model_states (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL,"
    " model_id TEXT NOT NULL REFERENCES model_registry(model_id),"
    " state TEXT NOT NULL CHECK (state IN ('candidate', 'active', 'retired')), user TEXT NOT NULL,"
    " reason TEXT NOT NULL) STRICT",
    "CREATE INDEX model_states_model ON model_states (model_id, id)",
]

MIGRATIONS = Migrations("inspector")


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    # One statement at a time: executescript() would COMMIT the surrounding transaction.
    for statement in _TABLES + _TRIGGERS:
        db.execute(statement)


@MIGRATIONS(name="0002_frame_index")
def _frame_index(db: Database) -> None:
    # A watched folder asks "was this file already inspected?" for every file in its backlog.
    db.execute("CREATE INDEX inspections_frame ON inspections (frame_sha256)")


@MIGRATIONS(name="0003_model_registry")
def _model_registry(db: Database) -> None:
    for statement in _REGISTRY + _append_only(("model_registry", "model_states")):
        db.execute(statement)


@MIGRATIONS(name="0004_chain_mac")
def _chain_mac(db: Database) -> None:
    # Entries from here on carry an HMAC with the station key (chain.entry_mac): rows added around the
    # application need the key. Older entries stay as they are, covered by the hashes chained after them.
    db.execute("ALTER TABLE chain ADD COLUMN mac TEXT")


@MIGRATIONS(name="0005_embedding_mac")
def _embedding_mac(db: Database) -> None:
    # The cache is outside the chain but changes every ranking: each row is MAC'ed with the station key
    # (inspector.library.store), and a row without a valid MAC is a cache miss, recomputed.
    db.execute("ALTER TABLE embeddings ADD COLUMN mac TEXT")


@MIGRATIONS(name="0006_credential_seals")
def _credential_seals(db: Database) -> None:
    # The seals themselves are chained events, written by seal_credentials() right after this runs:
    # chain entries need the station key, which migrations do not hold.
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


@MIGRATIONS(name="0007_scoring_configs")
def _scoring_configs(db: Database) -> None:
    # How each inspection's scores were made (inspector.frame.scoring.ScoringConfig). A side table, not a
    # column: the chain hashes whole inspections rows, so a new column would change every old row's hash.
    # The config row is content-addressed (id = SHA-256 of its canonical JSON), so it verifies itself.
    db.execute(
        "CREATE TABLE scoring_configs (id TEXT PRIMARY KEY, recorded_at TEXT NOT NULL, json TEXT NOT NULL) STRICT"
    )
    db.execute(
        "CREATE TABLE inspection_scoring (inspection_id INTEGER PRIMARY KEY REFERENCES inspections(id),"
        " scoring_config_id TEXT NOT NULL REFERENCES scoring_configs(id)) STRICT"
    )


@MIGRATIONS(name="0008_library_examples")
def _library_examples(db: Database) -> None:
    # Library format 2: example images of a label, named by the SHA-256 of the stored PNG, one row
    # per (version, label, image) like library_descriptions (inspector.library.examples).
    db.execute(
        "CREATE TABLE library_examples (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL,"
        " version INTEGER NOT NULL REFERENCES library_versions(id), label_id TEXT NOT NULL,"
        " position INTEGER NOT NULL, sha256 TEXT NOT NULL, reason TEXT NOT NULL, box TEXT NOT NULL,"
        " retired INTEGER NOT NULL, UNIQUE (version, label_id, sha256)) STRICT"
    )
    for statement in _append_only(("library_examples",)):
        db.execute(statement)


@MIGRATIONS(name="0009_line_outbox")
def _line_outbox(db: Database) -> None:
    # Delivery state, not a record (so not chained, and updated in place): per line output, the
    # chain seq up to which the broker or PLC has acknowledged every inspection and decision.
    db.execute(
        "CREATE TABLE line_outbox (output TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at TEXT NOT NULL) STRICT"
    )


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
