"""The station's library in force: QA's published versions are live on the next frame, and any
library (a draft) compiles against the running model through the same embedding cache."""

from __future__ import annotations

import logging
from dataclasses import replace

from inspector.frame.good_parts import GoodModelError, GoodPartModel
from inspector.frame.ranking import RankingIndex
from inspector.library.labels import Library
from inspector.station_model import ModelState
from inspector.store.decision_log import DecisionLog


class LibraryRefresh:
    """Mixed into Station: the methods that follow the library in force."""

    log: DecisionLog | None
    _model: ModelState
    _good: GoodPartModel | None = None
    _good_failed: str = ""

    @property
    def good_model(self) -> GoodPartModel | None:
        """The good-part model in force (inspector.learning.good_model), if QA built one."""
        return self._good

    def refresh_good_model(self) -> bool:
        """Pick up a good-part model QA built or retired; True if it changed. A model whose file is
        missing or altered is not used (frames are then scored without it, and their scoring
        configuration says so); the failure is one station event, not one per poll."""
        if self.log is None:
            return False
        from inspector.learning.good_model import active_good_model_id, load, model_folder

        sha = active_good_model_id(self.log)
        current = self._good.sha256 if self._good is not None else None
        if sha == current or (sha is not None and sha == self._good_failed):
            return False
        try:
            self._good = None if sha is None else load(model_folder(self.log), sha)
        except GoodModelError as exc:
            logging.getLogger(__name__).error("%s", exc)
            self._good, self._good_failed = None, sha or ""
            self.log.record_event("good_model_load_failed", {"error": str(exc)[:1000]}, None, subject=sha or "")
        return self._good is not None or current is not None

    def refresh_library(self) -> bool:
        """Pick up a new library version (QA edits are live on the next frame) and a rebuilt good-part
        model; True if either changed."""
        if self.log is None:
            return False
        good_changed = self.refresh_good_model()
        state = self._model
        version, library = self.log.library.in_force()
        if version == state.index.library_version:
            return good_changed
        self._model = replace(state, index=state.compile(library, version, self.log))
        return True

    def index_for(self, library: Library, version: int = 0) -> RankingIndex:
        """Compile any library (e.g. an unpublished draft) against this model, through the same
        per-text embedding cache as the library in force; the index in force is not changed."""
        return self._model.compile(library, version, self.log)
