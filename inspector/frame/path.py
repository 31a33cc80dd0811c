"""The station's per-frame path: one image encode, one matrix product against the cached
description embeddings, a verdict; recording is a separate, explicit step."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from inspector.errors import InspectorError
from inspector.frame.calibration import policy_for
from inspector.frame.good_parts import GoodPartModel, consult, review_if_unlike
from inspector.frame.ranking import VerdictPolicy, decide, rank
from inspector.frame.records import Frame, InspectionResult
from inspector.frame.scorer import score_frame
from inspector.frame.scoring import ScoringSettings
from inspector.station_model import ModelState
from inspector.store.decision_log import DecisionLog
from inspector.store.users import Session


def frame_sha256(frame: Frame) -> str:
    """SHA-256 of a frame's pixels and shape: the key of an image whose file bytes are unknown."""
    h = hashlib.sha256(f"{frame.rgb.shape}".encode())
    h.update(np.ascontiguousarray(frame.rgb).tobytes())
    return h.hexdigest()


class FramePath:
    """Mixed into Station: rank a frame with one consistent model snapshot; record it."""

    log: DecisionLog | None
    policy: VerdictPolicy
    scoring: ScoringSettings
    recorded_listeners: list[Callable[[InspectionResult], None]]
    product_id: str  # the station's product ([camera] product_id); a line trigger's part names its own
    _model: ModelState
    _good: GoodPartModel | None

    def inspect(self, frame: Frame, image_sha256: str | None = None, top_k: int | None = None) -> InspectionResult:
        """Rank one frame against the library and propose a verdict (nothing is stored)."""
        # One read of the model: the GUI may swap in a new library version or a new model on another
        # thread while a capture worker ranks; encode, rank and verdict must use the same one.
        model = self._model
        index = model.index
        t0 = time.perf_counter()
        # The frame as delivered: global view, native tiles for large frames, the camera's ROI.
        good = self._good  # one read, like the model: QA may rebuild it meanwhile
        # A "mid" good-part model reads the trunk's mid-level statistics off this same forward.
        mid = good is not None and good.cells == "mid"
        scored = score_frame(model.scorer, frame.rgb, self.scoring, frame.source_id, mid=mid)
        config, check = scored.config, None
        if good is not None:  # None back when it was built for another model or front end
            check = consult(good, model.scorer, frame.rgb, self.scoring, frame.source_id, scored)
            config = replace(config, good_model=good.sha256) if check is not None else config
        t1 = time.perf_counter()
        ranking = rank(
            scored.embedding,
            index,
            model.scorer.logit_scale,
            top_k=top_k,
            local=scored.local,
            local_weight=config.local_weight,
            scoring=config,
        )
        # The model's measured thresholds replace the hand-set defaults (inspector.frame.calibration).
        verdict = decide(ranking, index, policy_for(model.calibration, self.policy))
        verdict = review_if_unlike(verdict, check, ranking.top.label_name, ranking.top.disposition)
        t2 = time.perf_counter()
        return InspectionResult(
            frame=frame,
            ranking=ranking,
            verdict=verdict,
            image_sha256=image_sha256 or frame_sha256(frame),
            timings_ms={"encode": 1000 * (t1 - t0), "rank": 1000 * (t2 - t1)},
            embedding=scored.embedding,
            good_part=check,
            local_boxes=getattr(scored.features, "local_boxes", None),
            product_id=frame.part.product_id if frame.part is not None and frame.part.product_id else self.product_id,
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
