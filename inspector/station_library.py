"""The station's library in force: QA's published versions are live on the next frame, and any
library (a draft) compiles against the running model through the same embedding cache."""

from __future__ import annotations

from dataclasses import replace

from inspector.frame.ranking import RankingIndex
from inspector.library.labels import Library
from inspector.station_model import ModelState
from inspector.store.decision_log import DecisionLog


class LibraryRefresh:
    """Mixed into Station: the methods that follow the library in force."""

    log: DecisionLog | None
    _model: ModelState

    def refresh_library(self) -> bool:
        """Pick up a new library version (QA edits are live on the next frame); True if it changed."""
        if self.log is None:
            return False
        state = self._model
        version, library = self.log.library.in_force()
        if version == state.index.library_version:
            return False
        self._model = replace(state, index=state.compile(library, version, self.log))
        return True

    def index_for(self, library: Library, version: int = 0) -> RankingIndex:
        """Compile any library (e.g. an unpublished draft) against this model, through the same
        per-text embedding cache as the library in force; the index in force is not changed."""
        return self._model.compile(library, version, self.log)
