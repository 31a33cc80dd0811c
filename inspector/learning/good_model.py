"""Build, retire and find the station's good-part model (inspector.frame.good_parts) under QA control.

Only parts an operator (or QA) CONFIRMED as an "accept" label count: an unconfirmed pass may be a
missed defect. The confirmed good parts are split by inspector.learning.pairs' fixed rule (a share
held out by image hash): the bank is built from the rest, the threshold from the held-out ones.
The file lies beside the database (`good_models/<sha256>.safetensors`); which one is in force is
a chained event (`good_model_built` / `good_model_retired`), so the record says who built it from
what and why, and every inspection's scoring configuration names the one its verdict consulted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from inspector.errors import InspectorError
from inspector.frame.good_parts import (
    CELLS,
    DEFAULT_CELLS,
    DEFAULT_INPUT_SIZE,
    MAX_BANK,
    MID_INPUT_SIZE,
    GoodModelError,
    GoodPartModel,
    basis_of,
    fit,
    frame_rows,
    load,
    own_settings,
    row_spec,
    save,
)
from inspector.frame.scorer import Scorer, score_frame
from inspector.frame.scoring import ScoringSettings
from inspector.learning.pairs import TrainingPair, build_training_set
from inspector.learning.sources import source_from_log
from inspector.store.database import event_row
from inspector.store.decision_log import DecisionLog, read_evidence_image
from inspector.store.users import Session, authorize

BUILT, RETIRED = "good_model_built", "good_model_retired"
MIN_BANK_PARTS = 8  # fewer confirmed good parts than this say nothing about a line's variation
MIN_CALIBRATION_PARTS = 4
HELDOUT_FRACTION = 0.25


def model_folder(log: DecisionLog) -> Path:
    """Where the station's good-part model files live (beside the database, like its images)."""
    return log.sdb.path.parent / "good_models"


def confirmed_good_parts(log: DecisionLog) -> tuple[tuple[TrainingPair, ...], tuple[TrainingPair, ...]]:
    """(bank, calibration): the confirmed parts whose label was an "accept" label in the library
    version they were inspected under; corrections and rejected images follow the pairs' rules."""
    pairs = build_training_set([source_from_log(log)], HELDOUT_FRACTION, seed=0)
    accept: dict[int, set[str]] = {}

    def good(p: TrainingPair) -> bool:
        if p.library_version not in accept:
            labels = log.library.labels(p.library_version) if p.library_version else []
            accept[p.library_version] = {s.id for s in labels if s.disposition == "accept"}
        return p.label_id in accept[p.library_version]

    return tuple(filter(good, pairs.train)), tuple(filter(good, pairs.heldout))


def check_can_build(
    log: DecisionLog, user: Session, reason: str
) -> tuple[tuple[TrainingPair, ...], tuple[TrainingPair, ...]]:
    """The (bank, calibration) parts, after checking the user (QA), the reason and the counts; a caller
    may run it before loading a model, so a build that cannot happen fails at once."""
    authorize(log.sdb, user, "edit_library", "good_model_build")
    if not reason.strip():
        raise InspectorError("building a good-part model needs a reason (it is recorded)")
    bank_pairs, cal_pairs = confirmed_good_parts(log)
    if len(bank_pairs) < MIN_BANK_PARTS or len(cal_pairs) < MIN_CALIBRATION_PARTS:
        raise InspectorError(
            f"too few confirmed good parts for a good-part model: {len(bank_pairs)} for the bank (need"
            f" {MIN_BANK_PARTS}) and {len(cal_pairs)} held out for its threshold (need {MIN_CALIBRATION_PARTS});"
            " confirm more good parts first"
        )
    return bank_pairs, cal_pairs


def build_good_model(
    log: DecisionLog,
    scorer: Scorer,
    settings: ScoringSettings,
    user: Session,
    reason: str,
    *,
    max_bank: int = MAX_BANK,
    cells: str = DEFAULT_CELLS,
    input_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GoodPartModel:
    """Encode the confirmed good parts with the station's model and front end, fit, store, put in force.

    QA only (edit_library). Refused, with the counts, when there are too few confirmed good parts.
    cells: "global" (the validated default), "local" or "mid" (the trunk's mid-level statistics);
    input_size: its own forward's short side (0: the ranking's; another size costs a second forward
    per frame). Left out: 0 for "mid" (its rows ride the ranking's forward), else 448.
    """
    if cells not in CELLS:
        raise InspectorError(f"cells must be one of {', '.join(CELLS)}, got {cells!r}")
    if input_size is None:
        input_size = MID_INPUT_SIZE if cells == "mid" else DEFAULT_INPUT_SIZE
    bank_pairs, cal_pairs = check_can_build(log, user, reason)
    total, done = len(bank_pairs) + len(cal_pairs), 0
    basis: dict | None = None
    encoded: list[list] = [[], []]
    for group, pairs in enumerate((bank_pairs, cal_pairs)):
        for pair in pairs:
            row = log.inspection(pair.inspection_id) or {}
            rgb = read_evidence_image(Path(pair.image_path))  # refuses a replaced image file
            own = own_settings(settings, input_size)
            scored = score_frame(scorer, rgb, own, str(row.get("source_id", "")), mid=cells == "mid")
            basis = basis or basis_of(scored.config.as_dict(), cells, input_size, row_spec(scored, cells))
            encoded[group].append(frame_rows(scored, cells))
            done += 1
            if progress is not None:
                progress(done, total)
    info = {
        "bank_parts": len(bank_pairs),
        "calibration_parts": len(cal_pairs),
        "inspections": sorted(p.inspection_id for p in bank_pairs + cal_pairs),
        "built_by": user.name,
        "reason": reason,
    }
    model = save(fit(encoded[0], encoded[1], basis or {}, info, max_bank), model_folder(log))
    detail = {
        "sha256": model.sha256,
        "threshold": model.threshold,
        "bank_parts": len(bank_pairs),
        "calibration_parts": len(cal_pairs),
        "bank_rows": model.info["bank_rows"],
        "basis": model.basis,
        "reason": reason,
    }
    with log.sdb.transaction():  # a core event kind: written here, after the permission check
        log.sdb.append("events", _event_row(BUILT, user, model.sha256, detail))
    return model


def retire_good_model(log: DecisionLog, user: Session, reason: str) -> str:
    """Stop using the good-part model in force (QA); its id. The file stays for the record."""
    authorize(log.sdb, user, "edit_library", "good_model_retire")
    current = active_good_model_id(log)
    if current is None:
        raise InspectorError("no good-part model is in force")
    if not reason.strip():
        raise InspectorError("retiring a good-part model needs a reason (it is recorded)")
    with log.sdb.transaction():
        log.sdb.append("events", _event_row(RETIRED, user, current, {"reason": reason}))
    return current


def _event_row(kind: str, user: Session, subject: str, detail: dict) -> dict:
    return event_row(kind, user.name, subject, detail)


def active_good_model_id(log: DecisionLog) -> str | None:
    """The SHA-256 of the good-part model in force (the latest build not retired since), or None."""
    rows = list(
        log.sdb.db.query(
            "SELECT kind, subject FROM events WHERE kind IN (?, ?) ORDER BY id DESC LIMIT 1", [BUILT, RETIRED]
        )
    )
    return str(rows[0]["subject"]) if rows and rows[0]["kind"] == BUILT else None


def good_model_history(log: DecisionLog) -> list[dict]:
    """Every build and retirement, newest first (for `good-model show` and the QA view)."""
    rows = log.sdb.db.query(
        "SELECT recorded_at, kind, user, subject, detail FROM events WHERE kind IN (?, ?) ORDER BY id DESC",
        [BUILT, RETIRED],
    )
    return [{**r, "detail": json.loads(r["detail"])} for r in rows]


def load_active(log: DecisionLog) -> GoodPartModel | None:
    """The good-part model in force, hash-checked (GoodModelError if its file is missing or altered)."""
    sha = active_good_model_id(log)
    return None if sha is None else load(model_folder(log), sha)


__all__ = [
    "GoodModelError",
    "active_good_model_id",
    "build_good_model",
    "check_can_build",
    "confirmed_good_parts",
    "good_model_history",
    "load_active",
    "retire_good_model",
]
