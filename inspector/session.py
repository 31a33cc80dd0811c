"""The one composition root: config -> scorer, library, decision log, ranking pipeline.

`Station.inspect(frame)` is the per-frame path: one image encode, one matrix product against
the cached description embeddings, a verdict. Nothing on it touches the database; recording an
inspection is a separate, explicit step (`Station.record`) so a caller decides what is a record.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from inspector.config import StationConfig
from inspector.decision_log import DecisionLog
from inspector.errors import InspectorError
from inspector.library import Library, load_library
from inspector.ranking import RankingIndex, VerdictPolicy, build_index, decide, rank
from inspector.records import Frame, InspectionResult
from inspector.scorer import Scorer, load_scorer
from inspector.users import Session


def frame_sha256(frame: Frame) -> str:
    """SHA-256 of a frame's pixels and shape: the key of an image whose file bytes are unknown."""
    h = hashlib.sha256(f"{frame.rgb.shape}".encode())
    h.update(np.ascontiguousarray(frame.rgb).tobytes())
    return h.hexdigest()


class Station:
    """A scorer, the library in force, its embeddings and (optionally) the decision log."""

    def __init__(self, scorer: Scorer, library: Library, library_version: int = 0,
                 log: DecisionLog | None = None, policy: VerdictPolicy = VerdictPolicy()) -> None:
        self.scorer, self.log, self.policy = scorer, log, policy
        self._memory_cache: dict[str, np.ndarray] = {}
        self.index = self._build_index(library, library_version)

    @classmethod
    def open(cls, config: StationConfig, *, with_log: bool = True, scorer: Scorer | None = None) -> "Station":
        """Build the station from its configuration. On a new database the configured library is
        stored as version 1 (a chained event records its source)."""
        scorer = scorer or load_scorer(config.model.ref, config.model.device)
        if not with_log:
            return cls(scorer, load_library(config.library.path))
        Path(config.database.path).parent.mkdir(parents=True, exist_ok=True)
        log = DecisionLog.open(config.database.path)
        try:
            log.library.seed_if_empty(load_library(config.library.path), str(config.library.path))
            version, library = log.library.in_force()
            return cls(scorer, library, version, log)
        except BaseException:
            log.close()
            raise

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

    def __enter__(self) -> "Station":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model_id(self) -> str:
        return self.scorer.model_id

    @property
    def explainer(self):
        """Grad-CAM for the station's model, built on first use (None for scorers without a torch model)."""
        if getattr(self, "_explainer", None) is None:
            bundle = getattr(self.scorer, "bundle", None)
            if bundle is None:
                return None
            from models.explain import Explainer

            self._explainer = Explainer(bundle)
        return self._explainer

    def refresh_library(self) -> bool:
        """Pick up a new library version (QA edits are live on the next frame); True if it changed."""
        if self.log is None:
            return False
        version, library = self.log.library.in_force()
        if version == self.index.library_version:
            return False
        self.index = self._build_index(library, version)
        return True

    def index_for(self, library: Library, version: int = 0) -> RankingIndex:
        """Compile any library (e.g. an unpublished draft) against this model, through the same
        per-text embedding cache as the library in force; the index in force is not changed."""
        return self._build_index(library, version)

    def _build_index(self, library: Library, version: int) -> RankingIndex:
        return build_index(library, self._embed_texts_cached, self.scorer.model_id, version)

    def _embed_texts_cached(self, texts: list[str]) -> np.ndarray:
        # Cached per (model id, text): only descriptions never seen with this model are embedded.
        model_id = self.scorer.model_id
        cached = dict(self._memory_cache)
        if self.log is not None:
            cached.update(self.log.library.get_cached_embeddings(model_id, [t for t in texts if t not in cached]))
        missing = sorted({t for t in texts if t not in cached})
        if missing:
            fresh = np.asarray(self.scorer.embed_texts(missing), dtype=np.float32)
            if self.log is not None:
                self.log.library.put_embeddings(model_id, missing, fresh)
            cached.update(zip(missing, fresh))
        self._memory_cache = {t: cached[t] for t in set(texts)}
        return np.stack([cached[t] for t in texts]).astype(np.float32)

    def inspect(self, frame: Frame, image_sha256: str | None = None, top_k: int | None = None) -> InspectionResult:
        """Rank one frame against the library and propose a verdict (nothing is stored)."""
        t0 = time.perf_counter()
        embedding = self.scorer.embed_images([frame.rgb])[0]
        t1 = time.perf_counter()
        # One read of the index: the GUI may swap in a new library version (refresh_library) on
        # another thread while a capture worker ranks, and rank and verdict must use the same one.
        index = self.index
        ranking = rank(embedding, index, self.scorer.logit_scale, top_k=top_k)
        verdict = decide(ranking, index, self.policy)
        t2 = time.perf_counter()
        return InspectionResult(
            frame=frame, ranking=ranking, verdict=verdict,
            image_sha256=image_sha256 or frame_sha256(frame),
            timings_ms={"encode": 1000 * (t1 - t0), "rank": 1000 * (t2 - t1)},
        )

    def record(self, result: InspectionResult, user: Session) -> InspectionResult:
        """Commit the inspection; the returned copy carries its id (acknowledged after COMMIT)."""
        if self.log is None:
            raise InspectorError("this station was opened without a database; nothing can be recorded")
        return replace(result, inspection_id=self.log.record_inspection(result, user))
