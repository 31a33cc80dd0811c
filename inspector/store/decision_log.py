"""DecisionLog: the station's append-only, hash-chained record of inspections, decisions and events.

Every mutating method takes the signed-in Session, checks its permission (a refusal is itself
an event) and returns only after COMMIT. Images are content-addressed PNG files beside the
database (`images/sha256/ab/cd/<hash>.png`, written once: temp file in `images/.incoming`, fsync,
rename); the database holds their hashes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.errors import InspectorError, LibraryError
from inspector.frame.records import Decision, DecisionCommitted, InspectionResult
from inspector.library.store import LibraryStore
from inspector.line.outbox import part_event
from inspector.store.chain import ChainReport
from inspector.store.database import StationDB, event_row, open_database, utc_stamp
from inspector.store.event_kinds import CORE_EVENT_KINDS, SYSTEM_EVENT_KINDS, SYSTEM_EVENT_PREFIXES
from inspector.store.export import ExportSummary, export_bundle

# images first: it imports cv2 through inspector.frame.imageio, which must set OPENCV_IO_MAX_IMAGE_PIXELS first
from inspector.store.images import (  # noqa: F401  # noqa: F401 - re-exported
    STALE_TEMP_S,
    EvidenceError,
    encode_png,
    image_file,
    read_evidence_image,
    remove_stale_temp_images,
    staging_dir,
    store_image,
)
from inspector.store.queries import RecordQueries
from inspector.store.retention import locate_image
from inspector.store.users import LOCKOUT_S, AccessDenied, Session, UserStore, authorize
from inspector.witness.note import NoteError, load_identity
from inspector.witness.publisher import Publisher, check_with_witness, running_publisher

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from inspector.config import WitnessConfig


class DecisionError(InspectorError):
    """A decision does not fit its inspection (wrong rank, second answer, missing reason)."""


class DecisionLog(RecordQueries):
    """The station database as the application sees it: records, users, library, verify, export."""

    def __init__(self, sdb: StationDB, max_failures: int = 5, lockout_s: float = LOCKOUT_S) -> None:
        self.sdb = sdb
        self.users = UserStore(sdb, max_failures, lockout_s)
        self.library = LibraryStore(sdb)
        self.publisher: Publisher | None = None
        # Told of every committed decision (the drift watch); called after COMMIT, must not block.
        self.decision_listeners: list[Callable[[DecisionCommitted], None]] = []
        remove_stale_temp_images(sdb.image_root)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        create: bool = True,
        anchor_every: int = 1,
        max_failures: int = 5,
        lockout_s: float = LOCKOUT_S,
        witness: WitnessConfig | None = None,
    ) -> DecisionLog:
        """Open (or create) the database at `path`; see inspector.store.database.open_database.

        With a witness URL, checkpoints are published to it in the background (inspector.witness).
        """
        log = cls(open_database(path, create=create, anchor_every=anchor_every), max_failures, lockout_s)
        if witness is not None and witness.url:
            try:
                log.publisher = Publisher(
                    log.sdb.path, log.identity(), witness.url, witness.every_commits, witness.every_s
                ).start()
            except BaseException:
                log.close()
                raise
            log.sdb.on_commit = log.publisher.notify_commit
        elif (running := running_publisher(log.sdb.path)) is not None:  # another connection of this process
            log.sdb.on_commit = running.notify_commit
        return log

    def identity(self) -> Ed25519PrivateKey:
        """The station's Ed25519 identity (<db>.identity, 0600; created on first use): checkpoints, bundles."""
        return load_identity(self.sdb.identity_path, create=True)

    def close(self) -> None:
        if self.publisher is not None:
            self.sdb.on_commit = None
            self.publisher.stop()
        self.sdb.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self, name: str, password: str) -> Session:
        """Authenticate (every outcome is logged); raises AuthenticationFailed or AccountLocked."""
        return self.users.authenticate(name, password)

    def image_path(self, sha256: str) -> Path:
        return locate_image(self.sdb, sha256)  # an archived image is read from its archive folder

    def record_inspection(self, result: InspectionResult, user: Session, store_image_file: bool = True) -> int:
        """Commit a ranked frame (image, full ranking, model id, library version, verdict); returns its id."""
        authorize(self.sdb, user, "decide", "record_inspection")
        if result.inspection_id is not None:
            raise DecisionError(f"inspection {result.inspection_id} is already recorded; record each frame once")
        frame, ranking, verdict = result.frame, result.ranking, result.verdict
        # Checked before the image is written (no orphan file); library versions are never deleted,
        # and the foreign key backs this up inside the transaction.
        if not list(self.sdb.db.query("SELECT 1 AS x FROM library_versions WHERE id = ?", [ranking.library_version])):
            raise LibraryError(
                f"library version {ranking.library_version} is not in the database; rank with the"
                " stored library (LibraryStore.in_force) so the version on the record is real"
            )
        sha = store_image(self.sdb.image_root, frame.rgb) if store_image_file else None
        # float()/int(): rankings may carry numpy scalars, which JSON (and the chain) must not see
        candidates = [
            {
                "rank": int(c.rank),
                "label_id": c.label_id,
                "label_name": c.label_name,
                "disposition": c.disposition,
                "description": c.description,
                "score": float(c.score),
                "probability": float(c.probability),
                "carried_by": c.carried_by,
            }
            for c in ranking.candidates
        ]
        row = {
            "user": user.name,
            "captured_at": utc_stamp(frame.captured_at),
            "source_id": frame.source_id,
            "frame_seq": int(frame.seq),
            "origin": frame.origin,
            "width": int(frame.rgb.shape[1]),
            "height": int(frame.rgb.shape[0]),
            "image_sha256": sha,
            "frame_sha256": result.image_sha256,
            "model_id": ranking.model_id,
            "library_version": int(ranking.library_version),
            "candidates": json.dumps(candidates, sort_keys=True),
            "top_label_id": ranking.top.label_id,
            "disposition": verdict.disposition,
            "needs_review": int(verdict.needs_review),
            "open_set": int(verdict.open_set),
            "verdict_reason": verdict.reason,
            "timings": json.dumps({k: float(v) for k, v in result.timings_ms.items()}, sort_keys=True),
        }
        with self.sdb.transaction() as db:
            inspection_id = self.sdb.append("inspections", row)
            if ranking.scoring_config_id:  # same transaction: an inspection never lacks its configuration
                db.execute(
                    "INSERT OR IGNORE INTO scoring_configs (id, recorded_at, json) VALUES (?, ?, ?)",
                    [ranking.scoring_config_id, utc_stamp(), ranking.scoring_config_json],
                )
                db.execute(
                    "INSERT INTO inspection_scoring (inspection_id, scoring_config_id) VALUES (?, ?)",
                    [inspection_id, ranking.scoring_config_id],
                )
            if result.product_id:  # a side table, like inspection_scoring (migration 0010)
                db.execute(
                    "INSERT INTO inspection_products (inspection_id, product_id) VALUES (?, ?)",
                    [inspection_id, result.product_id],
                )
            if frame.part is not None:  # the line's part id, in the same commit (inspector.line, issue 18)
                self.sdb.append("events", part_event(inspection_id, frame.part))
        return inspection_id

    def record_decision(self, decision: Decision, user: Session) -> int:
        """Commit the operator's first answer to an inspection; returns the decision id."""
        authorize(self.sdb, user, "decide", "record_decision")
        return self._write_decision(decision, user, None, "")

    def correct_decision(self, original_id: int, decision: Decision, reason: str, user: Session) -> int:
        """A correction (QA): a new row that references the decision it replaces, with a reason."""
        authorize(self.sdb, user, "correct", "correct_decision")
        if not reason.strip():
            raise DecisionError("a correction needs a reason; say why the original answer was wrong")
        return self._write_decision(decision, user, original_id, reason.strip())

    def _write_decision(self, d: Decision, user: Session, corrects: int | None, reason: str) -> int:
        if d.operator != user.name:
            raise DecisionError(
                f"the decision names operator {d.operator!r} but {user.name!r} is signed in;"
                " a decision is recorded under the signed-in user only"
            )
        with self.sdb.transaction() as db:
            found = list(
                db.query(
                    "SELECT candidates, model_id, library_version FROM inspections WHERE id = ?", [d.inspection_id]
                )
            )
            if not found:
                raise DecisionError(f"inspection {d.inspection_id} does not exist; record the inspection first")
            candidates = json.loads(found[0]["candidates"])
            rank = None if d.picked_rank is None else int(d.picked_rank)
            if d.kind in ("confirm", "pick"):
                if not 1 <= (rank or 0) <= len(candidates) or candidates[(rank or 0) - 1]["label_id"] != d.label_id:
                    raise DecisionError(
                        f"inspection {d.inspection_id}: rank {d.picked_rank} is not label {d.label_id!r}"
                    )
            corrects_hash = None
            if corrects is None:
                first = list(
                    db.query(
                        "SELECT id FROM decisions WHERE inspection_id = ? AND corrects_id IS NULL", [d.inspection_id]
                    )
                )
                if first:
                    raise DecisionError(
                        f"inspection {d.inspection_id} already has decision {first[0]['id']};"
                        " a change is a correction (QA)"
                    )
            else:
                corrects_hash = self._correctable(corrects, d.inspection_id)
            row = {
                "inspection_id": int(d.inspection_id),
                "kind": d.kind,
                "label_id": d.label_id,
                "picked_rank": rank,
                "typed_description": d.typed_description,
                "comment": d.comment,
                "operator": user.name,
                "role": user.role,
                "printed_name": user.printed_name,
                "decided_at": utc_stamp(d.decided_at),
                "override": int(d.kind == "none_of_these" or (d.kind == "pick" and rank != 1)),
                "corrects_id": corrects,
                "corrects_hash": corrects_hash,
                "reason": reason,
            }
            decision_id = self.sdb.append("decisions", row)
        done = DecisionCommitted(decision_id, d, corrects, found[0]["model_id"], int(found[0]["library_version"]))
        for listener in list(self.decision_listeners):
            try:  # the decision is already safe: a failing listener must not fail the operator's answer
                listener(done)
            except Exception:  # noqa: BLE001
                logging.getLogger(__name__).exception("a decision listener failed")
        return decision_id

    def _correctable(self, original_id: int, inspection_id: int) -> str:
        rows = list(
            self.sdb.db.query(
                "SELECT d.inspection_id, c.hash, (SELECT MIN(id) FROM decisions WHERE corrects_id = d.id) AS later"
                " FROM decisions d JOIN chain c ON c.tbl = 'decisions' AND c.row_id = d.id WHERE d.id = ?",
                [original_id],
            )
        )
        if not rows:
            raise DecisionError(f"decision {original_id} does not exist")
        if rows[0]["inspection_id"] != inspection_id:
            raise DecisionError(
                f"decision {original_id} belongs to inspection {rows[0]['inspection_id']}, not {inspection_id}"
            )
        if rows[0]["later"] is not None:
            raise DecisionError(f"decision {original_id} was already corrected by {rows[0]['later']}; correct that one")
        return str(rows[0]["hash"])

    def record_event(
        self, kind: str, detail: Mapping[str, Any] | None = None, user: Session | None = None, subject: str = ""
    ) -> int:
        """Commit an audit event (camera fault, model change ...); user None means the station itself and
        allows only the station's own kinds (SYSTEM_EVENT_KINDS, SYSTEM_EVENT_PREFIXES)."""
        if kind in CORE_EVENT_KINDS:
            raise AccessDenied(f"event kind {kind!r} is written by the station's own checked actions only")
        if user is not None:  # a named actor must really be signed in: events are attributable
            authorize(self.sdb, user, None, f"event_{kind}")
        elif kind not in SYSTEM_EVENT_KINDS and not kind.startswith(SYSTEM_EVENT_PREFIXES):
            raise AccessDenied(
                f"event kind {kind!r} needs a signed-in user; the station itself records only"
                f" {', '.join(sorted(SYSTEM_EVENT_KINDS))} and"
                f" {'/'.join(p + '*' for p in SYSTEM_EVENT_PREFIXES)} events"
            )
        return self._event(kind, detail, user, subject)

    def _event(self, kind: str, detail: Mapping[str, Any] | None, user: Session | None, subject: str) -> int:
        with self.sdb.transaction():
            event_id = self.sdb.append("events", event_row(kind, user.name if user else None, subject, detail))
        return event_id

    def verify(
        self, user: Session | None = None, witness_url: str | None = None, witness_key: str | None = None
    ) -> ChainReport:
        """Check the whole chain and the anchor; with a user (auditor) the check is also logged.

        With a witness (URL and its verifier key), the chain must also extend the witness's latest
        cosigned checkpoint: that catches a cut tail and a whole-station rollback. An unreachable
        witness leaves report.unchecked saying what could not be checked.
        """
        if user is not None:
            authorize(self.sdb, user, "verify", "verify")
        report = self.sdb.verify()
        if witness_url:
            report = self._witness_check(report, witness_url, witness_key or "")
        if user is not None:
            self._event(
                "verification", {"ok": report.ok, "rows": report.rows, "problem": report.problem}, user, "chain"
            )
        return report

    def _witness_check(self, report: ChainReport, url: str, key: str) -> ChainReport:
        try:
            identity = load_identity(self.sdb.identity_path, create=False)
        except NoteError as exc:
            return replace(
                report,
                unchecked=f"{exc}: the station never published a checkpoint; rollback and a cut tail were not checked",
            )
        self.sdb.conn.execute("BEGIN")
        try:
            found = check_with_witness(self.sdb.conn, identity, url, key)
        finally:
            self.sdb.conn.execute("COMMIT")
        if found.outcome == "tampered":
            return replace(report, ok=False, problem=report.problem or found.message, witness=found.message)
        if found.outcome == "unreachable":
            return replace(report, unchecked=found.message)
        return replace(report, witness=found.message)

    def export(
        self,
        from_ts: datetime | str,
        to_ts: datetime | str,
        out_dir: str | Path,
        user: Session,
        selection: Mapping[str, Collection[int]] | None = None,
    ) -> ExportSummary:
        """Write an audit bundle (see inspector.store.export.export_bundle; selection: only those rows)."""
        return export_bundle(self.sdb, from_ts, to_ts, out_dir, user, selection)
