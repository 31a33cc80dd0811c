"""Issue 14 finding 7: the cached description embeddings sit outside the chain; vectors moved between
rows (or written by hand) must not be used: they would change every ranking under the same model id
and library version. Each row is MAC'ed with the station key; a row that fails is a cache miss."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from inspector.errors import InspectorError
from inspector.store.decision_log import DecisionLog


def test_swapped_cached_vectors_are_not_used(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with DecisionLog.open(db) as log:
        log.library.put_embeddings("m1", ["a scratch", "a clean surface"], np.array([[1, 0], [0, 1]], np.float32))
        assert set(log.library.get_cached_embeddings("m1", ["a scratch", "a clean surface"])) == {
            "a scratch",
            "a clean surface",
        }
    raw = sqlite3.connect(db, isolation_level=None)
    a, b = (
        raw.execute("SELECT vector FROM embeddings WHERE text = ?", (t,)).fetchone()[0]
        for t in ("a scratch", "a clean surface")
    )
    raw.execute("UPDATE embeddings SET vector = ? WHERE text = 'a scratch'", (b,))
    raw.execute("UPDATE embeddings SET vector = ? WHERE text = 'a clean surface'", (a,))
    raw.execute("INSERT INTO embeddings (model_id, text, dim, vector) VALUES ('m1', 'a dent', 2, ?)", (a,))
    raw.close()
    with DecisionLog.open(db, create=False) as log:
        found = log.library.get_cached_embeddings("m1", ["a scratch", "a clean surface", "a dent"])
        assert found == {}  # every row fails its MAC: all three are recomputed by the caller
        log.library.put_embeddings("m1", ["a scratch"], np.array([[1, 0]], np.float32))
        assert np.array_equal(log.library.get_cached_embeddings("m1", ["a scratch"])["a scratch"], [1, 0])


def test_a_caller_without_the_station_key_cannot_write_a_used_row(tmp_path: Path) -> None:
    """put_embeddings has no permission check (only the station calls it, with vectors its model computed):
    a caller outside the station writes nothing without the key file, and rows it MACs with another key
    are not used."""
    db = tmp_path / "s.db"
    with DecisionLog.open(db) as log:
        log.library.put_embeddings("m1", ["a scratch"], np.array([[1, 0]], np.float32))
    key = db.with_name(db.name + ".key")
    key.rename(tmp_path / "elsewhere.key")
    with DecisionLog.open(db, create=False) as log:
        with pytest.raises(InspectorError, match="key"):
            log.library.put_embeddings("m1", ["a scratch"], np.array([[0, 1]], np.float32))
    (tmp_path / "elsewhere.key").rename(key)
    with DecisionLog.open(db, create=False) as log:
        log.sdb._key = b"\x01" * 32  # a key of the caller's own making
        log.library.put_embeddings("m1", ["a scratch", "a dent"], np.array([[0, 1], [0, 1]], np.float32))
    with DecisionLog.open(db, create=False) as log:
        assert log.library.get_cached_embeddings("m1", ["a scratch", "a dent"]) == {}  # both recomputed
