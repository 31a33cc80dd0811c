"""The station's model hot-swap: load a model beside the running one, then switch in one step.

A GUI loads in a worker (`prepare_model` / `compile_for` there, `adopt` on the thread that owns
the log); `switch_model` is both on one thread. A model that fails to load is a logged event and
the station keeps the one it had. `follow_registry` switches to the registry's active model after
a promotion or rollback made elsewhere.
"""

from __future__ import annotations

from inspector.errors import InspectorError
from inspector.frame.scorer import Scorer
from inspector.station_model import ModelChoice, ModelState, choose_model, compile_model, load_choice
from inspector.store.decision_log import DecisionLog


class ModelSwap:
    """Mixed into Station (which provides `scorer`, `model_id` and `refresh_library`): the methods
    that replace its ModelState."""

    log: DecisionLog | None
    _model: ModelState

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
            return compile_model(
                scorer,
                index.library,
                index.library_version,
                None,
                ref,
                source,
                self.scoring.caption_templates,
                self.scoring.example_prior,
            )
        with DecisionLog.open(self.log.sdb.path, create=False) as log:
            version, library = log.library.in_force()
            s = self.scoring
            return compile_model(scorer, library, version, log, ref, source, s.caption_templates, s.example_prior)

    def adopt(self, state: ModelState, reason: str = "") -> None:
        """Run `state` from the next frame on (call on the thread that owns the log); a logged event."""
        previous = self._model
        if state.model_id == previous.model_id:
            return
        self._model = state  # one assignment: a frame already being ranked finishes with the old model
        if self.log is not None:
            self.log.record_event(
                "model_switched",
                {
                    "ref": state.ref,
                    "source": state.source,
                    "why": state.why,
                    "previous": previous.model_id,
                    "reason": reason,
                },
                None,
                subject=state.model_id,
            )
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
            self.log.record_event(
                "model_switch_failed",
                {"ref": ref, "error": message[:1000], "kept": self.model_id},
                None,
                subject=model_id or ref,
            )

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
