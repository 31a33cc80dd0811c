"""The side file of search vectors: `<station.db>.search`, one SQLite file beside the database.

Rows are (inspection id, model id, slot, float16 vector): slot 0 is the global embedding, 1.. the
strongest local ones. It is a cache: deleting the file loses nothing that a backfill cannot redo,
so it is not chained and needs no migration of the station database.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from inspector.errors import InspectorError

_SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS vectors (inspection_id INTEGER NOT NULL, model_id TEXT NOT NULL,"
        " slot INTEGER NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,"
        " PRIMARY KEY (model_id, inspection_id, slot)) WITHOUT ROWID"
    ),
)


class SearchStoreError(InspectorError):
    """The search side file could not be opened, read or written."""


def store_path(db_path: str | Path) -> Path:
    """Where the search vectors of the station database at `db_path` live."""
    p = Path(db_path).expanduser().absolute()
    return p.with_name(p.name + ".search")


class VectorStore:
    """Read and write search vectors; one connection per thread (opened on first use there)."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = store_path(db_path)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
                conn.execute("PRAGMA synchronous=NORMAL")  # a cache: a lost tail is re-embedded
                for statement in _SCHEMA:
                    conn.execute(statement)
            except sqlite3.Error as exc:
                raise SearchStoreError(f"search vectors {self.path}: {exc}; check the disk and permissions") from exc
            self._local.conn = conn
        return conn

    def put(self, inspection_id: int, model_id: str, vectors: np.ndarray) -> None:
        """Store (replace) one inspection's vectors for one model."""
        v = np.asarray(vectors, np.float32)
        if v.ndim != 2 or not np.isfinite(v).all():
            raise SearchStoreError(f"inspection {inspection_id}: vectors must be a finite [n, dim] array")
        rows = [
            (int(inspection_id), model_id, slot, v.shape[1], v[slot].astype(np.float16).tobytes())
            for slot in range(v.shape[0])
        ]
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM vectors WHERE model_id = ? AND inspection_id = ?", (model_id, int(inspection_id)))
            conn.executemany("INSERT INTO vectors VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise SearchStoreError(f"search vectors {self.path} not written: {exc}") from exc

    def counts(self) -> dict[str, int]:
        """{model id: inspections with vectors for it}."""
        rows = self._conn().execute("SELECT model_id, COUNT(*) FROM vectors WHERE slot = 0 GROUP BY model_id")
        return {m: int(n) for m, n in rows}

    def embedded_ids(self, model_id: str) -> set[int]:
        """The inspections that have vectors for `model_id`."""
        rows = self._conn().execute("SELECT inspection_id FROM vectors WHERE model_id = ? AND slot = 0", (model_id,))
        return {int(r[0]) for r in rows}

    def load(
        self, model_id: str, after_id: int = 0, ids: Iterable[int] | None = None, upto: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(inspection id per row, [rows, dim] float32) for `model_id`: inspections in (after_id, upto], or `ids`."""
        conn = self._conn()
        if ids is None:
            cur = conn.execute(
                "SELECT inspection_id, vector FROM vectors WHERE model_id = ? AND inspection_id > ?"
                " AND inspection_id <= ? ORDER BY inspection_id, slot",
                (model_id, int(after_id), int(2**62 if upto is None else upto)),
            )
            got = cur.fetchall()
        else:
            got = []
            for i in ids:
                got += conn.execute(
                    "SELECT inspection_id, vector FROM vectors WHERE model_id = ? AND inspection_id = ? ORDER BY slot",
                    (model_id, int(i)),
                ).fetchall()
        if not got:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        owners = np.fromiter((r[0] for r in got), np.int64, len(got))
        matrix = np.frombuffer(b"".join(r[1] for r in got), np.float16).reshape(len(got), -1).astype(np.float32)
        return owners, matrix

    def bytes_on_disk(self) -> int:
        """The side file's size with its WAL (for the storage figure)."""
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal")) if p.exists())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
