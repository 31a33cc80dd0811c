"""Search the inspection history: text and example queries against the stored vectors.

The vectors answering a query belong to one model. Normally that is the station's model; while a
re-embedding after a model change is under way the model with the most embedded inspections
answers (its text tower embeds the query), and the answer says so (`stale`, `coverage`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import DataError, InspectorError
from inspector.frame.imageio import read_image_file
from inspector.frame.scorer import Scorer
from inspector.search.ann import FilteredIndex
from inspector.search.embed import search_vectors, unit
from inspector.search.meta import STATE_FILTERS, InspectionColumns, SearchFilter
from inspector.search.vectors import VectorStore
from inspector.store.decision_log import DecisionLog

NO_FILTER = SearchFilter()
JSON_KEYS = ("inspection_id", "score", "image_sha256", "captured_at", "label", "decided_label")


@dataclass(frozen=True)
class SearchHit:
    """One ranked past inspection. decided_label: the label of the answer in force, "none_of_these",
    or None (no answer yet, or the image was rejected)."""

    inspection_id: int
    score: float
    image_sha256: str | None
    captured_at: str
    label: str
    decided_label: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchAnswer:
    """The hits, and which model's vectors answered (stale: not the station's current model)."""

    hits: list[SearchHit]
    vectors_model: str
    current_model: str
    embedded: int  # inspections with vectors of vectors_model
    total: int  # inspections recorded

    @property
    def stale(self) -> bool:
        return self.vectors_model != self.current_model

    def note(self) -> str:
        """One line for a status bar: coverage, and the stale label while re-embedding runs."""
        text = f"{len(self.hits)} results; {self.embedded} of {self.total} inspections searchable"
        if self.stale:
            text += (
                f"; answered from model {self.vectors_model[:12]}'s vectors while the current model"
                f" {self.current_model[:12]} re-embeds"
            )
        return text


class SearchService:
    """Owns the in-memory index of one model's vectors and the filter columns; one per thread."""

    def __init__(self, log: DecisionLog, store: VectorStore | None = None) -> None:
        self.log = log
        self.store = store or VectorStore(log.sdb.path)
        self.columns = InspectionColumns()
        self._index: FilteredIndex | None = None
        self._index_model = ""
        self._loaded_upto = 0
        self._row_pos = np.zeros(0, np.int64)  # per index row: its inspection's position in self.columns

    def answering_model(self, current: str) -> str:
        """The current model if it has vectors for at least as many inspections as any other, else that other."""
        counts = self.store.counts()
        best = max(counts, key=lambda m: (counts[m], m == current), default=current)
        return current if counts.get(current, 0) >= counts.get(best, 0) else best

    def _sync(self, model_id: str) -> FilteredIndex:
        self.columns.refresh(self.log)
        if self._index is None or self._index_model != model_id:
            self._index, self._index_model, self._loaded_upto = None, model_id, 0
            self._row_pos = np.zeros(0, np.int64)
        # Only inspections the columns know: a vector may be written for one committed a moment ago.
        newest = int(self.columns.ids[-1]) if len(self.columns) else 0
        owners, vectors = self.store.load(model_id, after_id=self._loaded_upto, upto=newest)
        if self._index is None or (self._index.dim == 0 and len(owners)):
            self._index = FilteredIndex(vectors.shape[1] if len(owners) else 0)
        if len(owners):
            self._index.add(owners, vectors)
            self._row_pos = np.concatenate([self._row_pos, np.searchsorted(self.columns.ids, owners)])
            self._loaded_upto = int(owners.max())
        self._index.flush()
        return self._index

    def search(
        self,
        query: np.ndarray,
        model_id: str,
        current_model: str,
        f: SearchFilter = NO_FILTER,
        k: int = 10,
        exclude: int | None = None,
    ) -> SearchAnswer:
        """The k inspections nearest to `query` (a vector of `model_id`) that pass the filter."""
        if f.state is not None and f.state not in STATE_FILTERS:
            raise DataError(f"decision state {f.state!r} is not one of {', '.join(STATE_FILTERS)}")
        if k < 1:
            raise DataError(f"--top must be at least 1, got {k}")
        index = self._sync(model_id)
        hits: list[tuple[int, float]] = []
        if len(index):
            keep = self.columns.mask(f)
            if exclude is not None:
                keep = np.ones(len(self.columns), bool) if keep is None else keep.copy()
                keep[self.columns.ids == exclude] = False
            row_mask = None if keep is None else keep[self._row_pos]
            hits = index.search(unit(query), row_mask, k)
        return SearchAnswer(self._hydrate(hits), model_id, current_model, index.n_owners, len(self.columns))

    def _hydrate(self, hits: list[tuple[int, float]]) -> list[SearchHit]:
        if not hits:
            return []
        ids = [i for i, _ in hits]
        marks = ",".join("?" * len(ids))
        rows = {
            r["id"]: r
            for r in self.log.sdb.db.query(
                f"SELECT id, image_sha256, captured_at, top_label_id FROM inspections WHERE id IN ({marks})", ids
            )
        }
        answers: dict[int, dict[str, Any]] = {}
        for d in self.log.sdb.db.query(
            f"SELECT inspection_id, kind, label_id FROM decisions WHERE inspection_id IN ({marks}) ORDER BY id", ids
        ):
            answers[int(d["inspection_id"])] = d  # the newest row is the answer in force
        out = []
        for i, score in hits:
            r, d = rows[i], answers.get(i)
            decided = (
                None
                if d is None or d["kind"] == "reject_image"
                else ("none_of_these" if d["kind"] == "none_of_these" else d["label_id"])
            )
            out.append(
                SearchHit(
                    int(i), round(float(score), 6), r["image_sha256"], r["captured_at"], r["top_label_id"], decided
                )
            )
        return out

    # --- queries ---------------------------------------------------------------------------------

    def text(
        self, scorer: Scorer, text: str, current_model: str, f: SearchFilter = NO_FILTER, k: int = 10
    ) -> SearchAnswer:
        """Inspections whose image (or a tile of it) is nearest to the description `text`."""
        if not text.strip():
            raise DataError("the search text is empty; describe what to look for, e.g. 'crack near the edge'")
        return self.search(scorer.embed_texts([text.strip()])[0], scorer.model_id, current_model, f, k)

    def like(
        self, scorer: Scorer, ref: str, current_model: str, f: SearchFilter = NO_FILTER, k: int = 10
    ) -> SearchAnswer:
        """Inspections that look like `ref`: a logged inspection id, or an image file."""
        exclude = None
        if ref.strip().isdigit():
            exclude = int(ref)
            query = self._inspection_vector(scorer, exclude)
        else:
            path = Path(ref).expanduser()
            if not path.is_file():
                raise DataError(f"{ref!r} is neither an inspection id nor an image file")
            query = scorer.embed_images([read_image_file(path)])[0]
        return self.search(query, scorer.model_id, current_model, f, k, exclude=exclude)

    def _inspection_vector(self, scorer: Scorer, inspection_id: int) -> np.ndarray:
        row = self.log.inspection(inspection_id)
        if row is None:
            raise DataError(f"inspection {inspection_id} does not exist")
        _, stored = self.store.load(scorer.model_id, ids=[inspection_id])
        if len(stored):
            return stored[0]
        if not row["image_sha256"]:
            raise DataError(f"inspection {inspection_id} has no stored image to search by")
        return search_vectors(scorer, read_image_file(self.log.image_path(row["image_sha256"])), n_local=0)[0]


def answer_lines(answer: SearchAnswer) -> list[str]:
    """The hits as JSON lines with exactly JSON_KEYS."""
    return [json.dumps(h.as_json(), sort_keys=False) for h in answer.hits]


def scorer_error(model_id: str) -> InspectorError:
    return InspectorError(
        f"the vectors of model {model_id[:12]} answer this search, but that model cannot be"
        " loaded to embed the query; wait for the re-embedding to finish"
    )
