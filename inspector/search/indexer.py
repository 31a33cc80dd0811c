"""Keeping the search vectors up to date: new inspections as they are committed, older ones (and
all of them after a model change) by a throttled backfill on a background thread.

Search never waits for this: until the current model's vectors cover the history, the model with
the most vectors answers (inspector.search.service), labelled so.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from inspector.errors import InspectorError
from inspector.frame.imageio import read_image_file
from inspector.frame.scorer import Scorer
from inspector.search.embed import N_LOCAL, search_vectors
from inspector.search.vectors import VectorStore
from inspector.store.decision_log import DecisionLog

Progress = Callable[[int, int], None]  # (done, total) of the current backfill


def pending_ids(log: DecisionLog, store: VectorStore, model_id: str) -> list[int]:
    """Inspections with a stored image but no vectors of `model_id`, newest first (recent history first)."""
    have = store.embedded_ids(model_id)
    rows = log.sdb.db.query("SELECT id FROM inspections WHERE image_sha256 IS NOT NULL ORDER BY id DESC")
    return [int(r["id"]) for r in rows if int(r["id"]) not in have]


def backfill(
    log: DecisionLog,
    store: VectorStore,
    scorer: Scorer,
    *,
    limit: int | None = None,
    pause_s: float = 0.0,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
    n_local: int = N_LOCAL,
) -> int:
    """Embed the stored images of inspections that lack vectors of this scorer's model; how many were done.

    pause_s: sleep between inspections (throttling, so the live line keeps its CPU); should_stop is
    asked before each one. An unreadable image is skipped (it stays pending), never fatal.
    """
    todo = pending_ids(log, store, scorer.model_id)[:limit]
    done = 0
    for n, inspection_id in enumerate(todo):
        if should_stop():
            break
        row = log.inspection(inspection_id)
        try:
            rgb = read_image_file(log.image_path(row["image_sha256"]))
        except (InspectorError, OSError):
            continue
        store.put(inspection_id, scorer.model_id, search_vectors(scorer, rgb, n_local=n_local))
        done += 1
        if progress is not None:
            progress(n + 1, len(todo))
        if pause_s:
            time.sleep(pause_s)
    return done


class SearchIndexer:
    """A daemon thread: new inspections first (submit), then the backfill for the current model.

    scorer_of returns the station's scorer now (a model switch is picked up on the next item);
    is_idle says whether the line is idle (the backfill waits while it is not: between shifts).
    """

    def __init__(
        self,
        db_path: str | Path,
        scorer_of: Callable[[], Scorer],
        *,
        pause_s: float = 0.5,
        is_idle: Callable[[], bool] = lambda: True,
        progress: Progress | None = None,
    ) -> None:
        self.db_path, self.scorer_of, self.pause_s = Path(db_path), scorer_of, pause_s
        self.is_idle, self.progress = is_idle, progress
        self._queue: queue.Queue[tuple[int, np.ndarray, np.ndarray | None, str]] = queue.Queue(maxsize=256)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def submit(self, inspection_id: int, rgb: np.ndarray, embedding: np.ndarray | None, model_id: str) -> None:
        """The hook after an inspection is committed; never blocks (a full queue leaves it to the backfill)."""
        try:
            self._queue.put_nowait((inspection_id, rgb, embedding, model_id))
        except queue.Full:
            pass

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="search-indexer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        store = VectorStore(self.db_path)
        try:
            with DecisionLog.open(self.db_path, create=False) as log:
                while not self._stop.is_set():
                    if self._drain(store):
                        continue
                    if self.is_idle():
                        n = backfill(
                            log,
                            store,
                            self.scorer_of(),
                            limit=16,
                            pause_s=self.pause_s,
                            should_stop=lambda: self._stop.is_set() or not self._queue.empty() or not self.is_idle(),
                            progress=self.progress,
                        )
                        if n:
                            continue
                    self._stop.wait(1.0)
        except InspectorError as exc:  # the search side file or the database: reported, the line goes on
            self.errors.append(str(exc))
        finally:
            store.close()

    def _drain(self, store: VectorStore) -> bool:
        try:
            inspection_id, rgb, embedding, model_id = self._queue.get(timeout=0.05)
        except queue.Empty:
            return False
        scorer = self.scorer_of()
        if scorer.model_id != model_id:
            embedding = None  # ranked by the previous model: embed again with the current one
        store.put(inspection_id, scorer.model_id, search_vectors(scorer, rgb, embedding))
        return True
