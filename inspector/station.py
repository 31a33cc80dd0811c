"""The one composition root: config -> scorer, library, decision log, ranking pipeline.

`Station.inspect(frame)` is the per-frame path: one image encode, one matrix product against
the cached description embeddings, a verdict. Nothing on it touches the database; recording an
inspection is a separate, explicit step (`Station.record`) so a caller decides what is a record.
The model is the registry's active one, else the configured one (inspector.station_model); a
running station switches model with `switch_model` / `follow_registry` without stopping the line.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from collections.abc import Callable
from pathlib import Path

import numpy as np

from inspector.config import StationConfig
from inspector.store.decision_log import DecisionLog
from inspector.errors import InspectorError, ModelLoadError
from inspector.library.labels import Library, load_library
from inspector.frame.ranking import RankingIndex, VerdictPolicy, decide, rank
from inspector.frame.records import Frame, InspectionResult
from inspector.frame.scorer import Scorer, load_scorer
from inspector.station_model import (
    ActiveModelError, ModelChoice, ModelState, choose_model, compile_model, load_choice,
)
from inspector.store.users import Session


def frame_sha256(frame: Frame) -> str:
    """SHA-256 of a frame's pixels and shape: the key of an image whose file bytes are unknown."""
    h = hashlib.sha256(f"{frame.rgb.shape}".encode())
    h.update(np.ascontiguousarray(frame.rgb).tobytes())
    return h.hexdigest()


def _load_for_open(log: DecisionLog, choice: ModelChoice, device: str | None) -> Scorer:
    """Load the chosen model; an active model that fails is refused on the record, never replaced."""
    try:
        return load_choice(choice, device)
    except InspectorError as exc:
        if choice.source != "registry":
            raise
        db = log.sdb.path
        log.record_event("model_load_failed", {"ref": choice.ref, "error": str(exc)[:1000],
                                               "action": "the station refused to start"}, None,
                         subject=choice.model_id or choice.ref)
        raise ActiveModelError(
            f"the active model {str(choice.model_id)[:12]} cannot be loaded from {choice.ref}: {exc}. The station"
            " does not run another model in its place. Restore that checkpoint from a backup, or return to an"
            f" earlier model: `inspector model list --db {db}`, then `inspector model rollback MODEL --db {db}"
            " --user QA_USER --reason WHY`") from exc


class Station:
    """A model (scorer + the library in force compiled for it) and (optionally) the decision log.

    The model is one immutable ModelState, replaced whole by `adopt` / `switch_model` /
    `refresh_library` on the thread that owns the log (the GUI thread). Other threads (the
    capture loop, heatmaps) read `station.model` once per piece of work, so a frame is never
    ranked by one model against another model's description embeddings.
    """

    def __init__(self, scorer: Scorer, library: Library, library_version: int = 0,
                 log: DecisionLog | None = None, policy: VerdictPolicy = VerdictPolicy(), *,
                 ref: str = "", source: str = "caller") -> None:
        self.log, self.policy = log, policy
        # Told of every committed inspection (search indexer, drift monitor: issue 17); must not block.
        self.recorded_listeners: list[Callable[[InspectionResult], None]] = []
        self._model = compile_model(scorer, library, library_version, log, ref or scorer.model_id, source)

    @classmethod
    def open(cls, config: StationConfig, *, with_log: bool = True, scorer: Scorer | None = None,
             announce: bool = True) -> "Station":
        """Build the station from its configuration. On a new database the configured library is
        stored as version 1 (a chained event records its source).

        The model is the registry's active one when the database has one, else config.model.ref;
        an active model that fails to load is refused (ActiveModelError names the file and the fix),
        never replaced. `scorer`: that model already loaded (the app loads it in a worker); it must
        be the registered one. The choice is logged as a 'model_loaded' event unless `announce` is
        False (a warm-up open whose station never inspects).
        """
        if not with_log:
            scorer = scorer or load_scorer(config.model.ref, config.model.device)
            return cls(scorer, load_library(config.library.path), ref=config.model.ref, source="configuration")
        Path(config.database.path).parent.mkdir(parents=True, exist_ok=True)
        log = DecisionLog.open(config.database.path)
        try:
            choice = choose_model(log, config.model.ref)
            if scorer is None:
                scorer = _load_for_open(log, choice, config.model.device)
            elif choice.model_id is not None and scorer.model_id != choice.model_id:
                raise ModelLoadError(f"the registry's active model is {choice.model_id[:12]}, but the station loaded"
                                     f" {scorer.model_id[:12]} (a promotion or rollback happened while it started);"
                                     " start the station again")
            log.library.seed_if_empty(load_library(config.library.path), str(config.library.path))
            version, library = log.library.in_force()
            station = cls(scorer, library, version, log, ref=choice.ref, source=choice.source)
            if announce:
                log.record_event("model_loaded", {"ref": choice.ref, "source": choice.source, "why": choice.why,
                                                  "configured": config.model.ref}, None, subject=scorer.model_id)
            return station
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
    def model(self) -> ModelState:
        """The model in use, as one consistent snapshot (read it once per frame or heatmap)."""
        return self._model

    @property
    def scorer(self) -> Scorer:
        return self._model.scorer

    @property
    def index(self) -> RankingIndex:
        return self._model.index

    @property
    def model_id(self) -> str:
        return self._model.model_id

    @property
    def explainer(self):
        """Grad-CAM for the station's model, built on first use (None for scorers without a torch model)."""
        return self._model.explainer

    # --- the model in use ------------------------------------------------------------------

    def prepare_model(self, ref: str, *, model_id: str | None = None, device: str | None = None) -> ModelState:
        """Load `ref` and compile the library in force for it; safe on any thread; the station is unchanged.

        model_id: the registered id the weights must have. Raises ModelLoadError (or DataError) for a
        missing, truncated, altered or pickled checkpoint, or one holding other weights.
        """
        source = "registry" if model_id is not None else "caller"
        scorer = load_choice(ModelChoice(ref, source, model_id), device or self.scorer.device)
        return self.compile_for(scorer, ref, source)

    def compile_for(self, scorer: Scorer, ref: str, source: str = "caller") -> ModelState:
        """A ModelState of `scorer` with the library in force; safe on any thread (own database connection)."""
        if self.log is None:
            index = self._model.index
            return compile_model(scorer, index.library, index.library_version, None, ref, source)
        with DecisionLog.open(self.log.sdb.path, create=False) as log:
            version, library = log.library.in_force()
            return compile_model(scorer, library, version, log, ref, source)

    def adopt(self, state: ModelState, reason: str = "") -> None:
        """Run `state` from the next frame on (call on the thread that owns the log); a logged event."""
        previous = self._model
        if state.model_id == previous.model_id:
            return
        self._model = state  # one assignment: a frame already being ranked finishes with the old model
        if self.log is not None:
            self.log.record_event("model_switched", {"ref": state.ref, "source": state.source, "why": state.why,
                                                     "previous": previous.model_id, "reason": reason},
                                  None, subject=state.model_id)
        self.refresh_library()  # a version published while the new model loaded

    def switch_model(self, ref: str, *, model_id: str | None = None, reason: str = "") -> str:
        """Load `ref`, compile the library for it, then swap; the new model id.

        On any fault (ModelLoadError, DataError) the station keeps the model it had, and the
        failure is a 'model_switch_failed' event. A GUI does the loading in a worker instead
        (prepare_model there, adopt on the GUI thread); this is that, on one thread.
        """
        try:
            state = self.prepare_model(ref, model_id=model_id)
        except InspectorError as exc:
            self.record_switch_failure(ref, model_id, str(exc))
            raise
        self.adopt(state, reason)
        return state.model_id

    def record_switch_failure(self, ref: str, model_id: str | None, message: str) -> None:
        """Log that a model could not be switched to and which model the station kept."""
        if self.log is not None:
            self.log.record_event("model_switch_failed", {"ref": ref, "error": message[:1000], "kept": self.model_id},
                                  None, subject=model_id or ref)

    def registry_choice(self) -> ModelChoice | None:
        """The registry's active model when the station runs another (after a promotion or rollback)."""
        if self.log is None:
            return None
        choice = choose_model(self.log, "")
        return None if choice.model_id in (None, self.model_id) else choice

    def follow_registry(self, reason: str = "the registry's active model changed") -> str | None:
        """Switch to the registry's active model if the station runs another; its id, or None."""
        choice = self.registry_choice()
        if choice is None:
            return None
        return self.switch_model(choice.ref, model_id=choice.model_id, reason=reason)

    # --- the library in force --------------------------------------------------------------

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

    def inspect(self, frame: Frame, image_sha256: str | None = None, top_k: int | None = None) -> InspectionResult:
        """Rank one frame against the library and propose a verdict (nothing is stored)."""
        # One read of the model: the GUI may swap in a new library version or a new model on another
        # thread while a capture worker ranks; encode, rank and verdict must use the same one.
        model = self._model
        index = model.index
        t0 = time.perf_counter()
        embedding = model.scorer.embed_images([frame.rgb])[0]
        t1 = time.perf_counter()
        ranking = rank(embedding, index, model.scorer.logit_scale, top_k=top_k)
        verdict = decide(ranking, index, self.policy)
        t2 = time.perf_counter()
        return InspectionResult(
            frame=frame, ranking=ranking, verdict=verdict,
            image_sha256=image_sha256 or frame_sha256(frame),
            timings_ms={"encode": 1000 * (t1 - t0), "rank": 1000 * (t2 - t1)}, embedding=embedding,
        )

    def record(self, result: InspectionResult, user: Session) -> InspectionResult:
        """Commit the inspection; the returned copy carries its id (acknowledged after COMMIT)."""
        if self.log is None:
            raise InspectorError("this station was opened without a database; nothing can be recorded")
        recorded = replace(result, inspection_id=self.log.record_inspection(result, user))
        self.notify_recorded(recorded)
        return recorded

    def notify_recorded(self, result: InspectionResult) -> None:
        """Tell the listeners of a committed inspection. The record is already safe, so a failing
        listener (search indexer, drift monitor) must not stop the line; its failure is logged."""
        for listener in list(self.recorded_listeners):
            try:
                listener(result)
            except Exception:  # noqa: BLE001
                logging.getLogger(__name__).exception("a recorded-inspection listener failed")
