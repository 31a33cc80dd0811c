"""The one composition root: config -> scorer, library, decision log, ranking pipeline.

Split along its seams: this module builds the station; model hot-swap is in
inspector.station_swap, the library in force in inspector.station_library, and the per-frame
path in inspector.frame.path. `Station.inspect(frame)`: one image encode, one matrix product
against the cached description embeddings, a verdict. Nothing on it touches the database;
recording an inspection is a separate, explicit step (`Station.record`) so a caller decides what is a record.
The model is the registry's active one, else the configured one (inspector.station_model); a
running station switches model with `switch_model` / `follow_registry` without stopping the line.
"""

from __future__ import annotations

from pathlib import Path

from inspector.config import StationConfig
from inspector.errors import InspectorError, ModelLoadError
from inspector.frame.path import FramePath, frame_sha256
from inspector.frame.ranking import RankingIndex, VerdictPolicy
from inspector.frame.scorer import Scorer, load_scorer
from inspector.frame.scoring import ScoringSettings
from inspector.library.labels import Library, load_library
from inspector.station_library import LibraryRefresh
from inspector.station_model import (
    ActiveModelError,
    ModelChoice,
    ModelState,
    choose_model,
    compile_model,
    load_choice,
)
from inspector.station_swap import ModelSwap
from inspector.store.decision_log import DecisionLog

__all__ = ["Station", "frame_sha256"]


def _load_for_open(log: DecisionLog, choice: ModelChoice, device: str | None) -> Scorer:
    """Load the chosen model; an active model that fails is refused on the record, never replaced."""
    try:
        return load_choice(choice, device)
    except InspectorError as exc:
        if choice.source != "registry":
            raise
        db = log.sdb.path
        log.record_event(
            "model_load_failed",
            {"ref": choice.ref, "error": str(exc)[:1000], "action": "the station refused to start"},
            None,
            subject=choice.model_id or choice.ref,
        )
        raise ActiveModelError(
            f"the active model {str(choice.model_id)[:12]} cannot be loaded from {choice.ref}: {exc}. The station"
            " does not run another model in its place. Restore that checkpoint from a backup, or return to an"
            f" earlier model: `inspector model list --db {db}`, then `inspector model rollback MODEL --db {db}"
            " --user QA_USER --reason WHY`"
        ) from exc


class Station(FramePath, LibraryRefresh, ModelSwap):
    """A model (scorer + the library in force compiled for it) and (optionally) the decision log.

    The model is one immutable ModelState, replaced whole by `adopt` / `switch_model` /
    `refresh_library` on the thread that owns the log (the GUI thread). Other threads (the
    capture loop, heatmaps) read `station.model` once per piece of work, so a frame is never
    ranked by one model against another model's description embeddings.
    """

    def __init__(
        self,
        scorer: Scorer,
        library: Library,
        library_version: int = 0,
        log: DecisionLog | None = None,
        policy: VerdictPolicy = VerdictPolicy(),
        *,
        ref: str = "",
        source: str = "caller",
        scoring: ScoringSettings = ScoringSettings(),
        product_id: str = "",
    ) -> None:
        self.log, self.policy, self.scoring, self.product_id = log, policy, scoring, product_id
        self._model = compile_model(
            scorer,
            library,
            library_version,
            log,
            ref or scorer.model_id,
            source,
            scoring.caption_templates,
            scoring.example_prior,
        )
        # Told of every committed inspection (search indexer, drift monitor); must not block.
        self.recorded_listeners = []
        self.refresh_good_model()

    @classmethod
    def open(
        cls, config: StationConfig, *, with_log: bool = True, scorer: Scorer | None = None, announce: bool = True
    ) -> Station:
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
            return cls(
                scorer,
                load_library(config.library.path),
                ref=config.model.ref,
                source="configuration",
                scoring=config.scoring,
                product_id=config.camera.product_id,
            )
        Path(config.database.path).parent.mkdir(parents=True, exist_ok=True)
        log = DecisionLog.open(
            config.database.path,
            max_failures=config.database.max_failed_logins,
            lockout_s=config.database.lockout_minutes * 60,
            witness=config.witness,
        )
        try:
            choice = choose_model(log, config.model.ref)
            if scorer is None:
                scorer = _load_for_open(log, choice, config.model.device)
            elif choice.model_id is not None and scorer.model_id != choice.model_id:
                raise ModelLoadError(
                    f"the registry's active model is {choice.model_id[:12]}, but the station loaded"
                    f" {scorer.model_id[:12]} (a promotion or rollback happened while it started);"
                    " start the station again"
                )
            log.library.seed_if_empty(load_library(config.library.path), str(config.library.path))
            version, library = log.library.in_force()
            station = cls(
                scorer,
                library,
                version,
                log,
                ref=choice.ref,
                source=choice.source,
                scoring=config.scoring,
                product_id=config.camera.product_id,
            )
            if announce:
                log.record_event(
                    "model_loaded",
                    {"ref": choice.ref, "source": choice.source, "why": choice.why, "configured": config.model.ref},
                    None,
                    subject=scorer.model_id,
                )
            return station
        except BaseException:
            log.close()
            raise

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

    def __enter__(self) -> Station:
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
