"""The text-embedding cache in the station database, per (model id, description text).

The cache is not a record: each row is MAC'ed with the station key and used only when its MAC
holds (else the text is recomputed). LibraryStore carries these methods (it mixes this class in).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import numpy as np

from inspector.errors import LibraryError
from inspector.store.chain import canonical
from inspector.store.database import StationDB


class EmbeddingCache:
    """get/put cached text embeddings over a StationDB's `embeddings` table."""

    sdb: StationDB

    def get_cached_embeddings(self, model_id: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """{text: float32 vector} for the texts cached for this model; missing texts are absent."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(texts))
        for start in range(0, len(unique), 500):  # stay under SQLite's bound-parameter limit
            chunk = unique[start : start + 500]
            sql = (
                "SELECT text, dim, vector, mac FROM embeddings WHERE model_id = ? AND text IN ("
                + ",".join("?" * len(chunk))
                + ")"
            )
            for row in self.sdb.db.query(sql, [model_id, *chunk]):
                expected = self._mac(model_id, row["text"], row["dim"], row["vector"])
                if row["mac"] is not None and hmac.compare_digest(str(row["mac"]), expected):
                    found[row["text"]] = np.frombuffer(row["vector"], dtype="<f4").astype(np.float32)
        return found

    def _mac(self, model_id: str, text: str, dim: int, vector: bytes) -> str:
        """HMAC of one cache row with the station key: a vector moved to another row or model fails it."""
        body = canonical(
            {"model_id": model_id, "text": text, "dim": int(dim), "vector": hashlib.sha256(vector).hexdigest()}
        )
        return hmac.new(self.sdb.key, b"rankclip-inspector/embedding/v1\x00" + body, "sha256").hexdigest()

    def put_embeddings(self, model_id: str, texts: Sequence[str], array: np.ndarray) -> None:
        """Cache one row of `array` (n x d, finite) per text for this model.

        No permission check, on purpose: no user action reaches this with vectors of its own. The
        station calls it (station_model.embed_cached, library.examples) with what the loaded model just
        computed from these texts, as a side effect of ranking with a library already authorised. A
        caller outside the station cannot corrupt the cache either: a row is used only if its MAC
        holds with the station key (a row written with sqlite3, or MAC'd with any other key, is a cache
        miss and is recomputed), and without the key file this method writes nothing.
        """
        array = np.asarray(array)
        if array.ndim != 2 or array.shape[0] != len(texts) or not np.isfinite(array).all():
            raise LibraryError(f"embeddings must be a finite {len(texts)} x d array, got shape {array.shape}")
        rows = [(model_id, text, array.shape[1], array[i].astype("<f4").tobytes()) for i, text in enumerate(texts)]
        with self.sdb.transaction() as db:
            for row in rows:
                db.execute(
                    "INSERT OR REPLACE INTO embeddings (model_id, text, dim, vector, mac) VALUES (?, ?, ?, ?, ?)",
                    [*row, self._mac(*row)],
                )
