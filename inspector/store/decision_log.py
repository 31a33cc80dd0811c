"""DecisionLog: the station's append-only, hash-chained record of inspections, decisions and events.

Every mutating method takes the signed-in Session, checks its permission (a refusal is itself
an event) and returns only after COMMIT. Images are content-addressed PNG files beside the
database (`images/sha256/ab/cd/<hash>.png`, written once: temp file in `images/.incoming`, fsync,
rename); the database holds their hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from inspector.frame.imageio import cv2  # through imageio: OPENCV_IO_MAX_IMAGE_PIXELS must be set first
from inspector.store.chain import ChainReport, fsync_dir
from inspector.store.database import StationDB, StorageError, event_row, open_database, parse_time, storage_hint
from inspector.store.database import utc_stamp
from inspector.errors import InspectorError, LibraryError
from inspector.store.export import ExportSummary, export_bundle
from inspector.library.store import LibraryStore
from inspector.frame.records import Decision, InspectionResult
from inspector.line.outbox import part_event
from inspector.store.users import Session, UserStore, authorize

TimeArg = datetime | str | None


class DecisionError(InspectorError):
    """A decision does not fit its inspection (wrong rank, second answer, missing reason)."""


def image_file(root: Path, sha256: str) -> Path:
    """Where the image with this hash lives; refuses anything but 64 hex digits (no path tricks)."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise InspectorError(f"{sha256!r} is not a SHA-256 hex digest")
    return root / sha256[:2] / sha256[2:4] / f"{sha256}.png"


# A writer holds its temp image only for one PNG write (milliseconds); one older than this was
# left by a writer that was killed mid-write. Removing a live writer's file would only make its
# rename fail (nothing recorded), but this margin keeps even a stalled writer safe.
STALE_TEMP_S = 600.0


def staging_dir(root: Path) -> Path:
    """Where images are written before they are renamed into place: one folder, cheap to sweep."""
    return root.parent / ".incoming"


def encode_png(rgb: np.ndarray) -> bytes:
    """The frame as stored: lossless PNG with OpenCV's defaults (zlib level 1, SUB filter, RLE)."""
    # Measured: with this zlib only an uncompressed PNG (about 1.6x the bytes) encodes much faster.
    # Keeping the settings also keeps the bytes, so the hash, of frames stored by earlier versions.
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InspectorError("the frame could not be encoded as PNG; check the camera's pixel format")
    return buf.tobytes()


def store_image(root: Path, rgb: np.ndarray) -> str:
    """Write the frame as PNG under its content hash (once) and return the hash.

    The hash is SHA-256 of the PNG bytes. They go to a temp file in staging_dir(), fsync, rename
    into place, then every folder that gained a name is fsynced: a committed inspection never
    names a file that a power cut could lose or leave half written.
    """
    data = encode_png(rgb)
    sha = hashlib.sha256(data).hexdigest()
    final = image_file(root, sha)
    if final.exists():
        return sha
    staging = staging_dir(root)
    tmp = staging / f"{sha}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        new_dirs = [d for d in (root.parent, root, final.parent.parent, final.parent) if not d.exists()]
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir(exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)  # same bytes if another writer won the race: harmless
        finally:
            tmp.unlink(missing_ok=True)  # gone after the rename; a partial file after a failed write
        for folder in [final.parent, *(d.parent for d in new_dirs)]:  # the new folders' names too
            fsync_dir(folder)
    except OSError as exc:
        # Disk full, read-only mount, I/O error: the same plain StorageError as a failed commit, and
        # nothing was recorded (the image is written before the transaction that would reference it).
        raise StorageError(f"image file {final} was not written: {exc.strerror or exc}; {storage_hint(exc, root)}"
                           ) from exc
    return sha


def remove_stale_temp_images(root: Path, older_than_s: float = STALE_TEMP_S) -> int:
    """Delete the temp images that writers killed mid-write left in staging_dir(); returns how many.

    Only files older than `older_than_s` go: a live writer's file is younger. Errors (a read-only
    mount, a file another process removed first) are ignored: the files are never referenced.
    """
    cutoff = time.time() - older_than_s
    removed = 0
    try:
        entries = list(os.scandir(staging_dir(root)))
    except OSError:  # no staging folder yet, or it cannot be read
        return 0
    for entry in entries:
        try:
            if entry.name.endswith(".tmp") and entry.is_file(follow_symlinks=False) \
                    and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
    return removed


def _where(clauses: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
    # The SQL snippets are constants from this module; only the values are data, and they are bound.
    used = [(sql, value) for sql, value in clauses if value is not None]
    return (" WHERE " + " AND ".join(sql for sql, _ in used)) if used else "", [v for _, v in used]


class DecisionLog:
    """The station database as the application sees it: records, users, library, verify, export."""

    def __init__(self, sdb: StationDB, max_failures: int = 5) -> None:
        self.sdb = sdb
        self.users = UserStore(sdb, max_failures)
        self.library = LibraryStore(sdb)
        remove_stale_temp_images(sdb.image_root)

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, anchor_every: int = 1, max_failures: int = 5) -> "DecisionLog":
        """Open (or create) the database at `path`; see inspector.store.database.open_database."""
        return cls(open_database(path, create=create, anchor_every=anchor_every), max_failures)

    def close(self) -> None:
        self.sdb.close()

    def __enter__(self) -> "DecisionLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self, name: str, password: str) -> Session:
        """Authenticate (every outcome is logged); raises AuthenticationFailed or AccountLocked."""
        return self.users.authenticate(name, password)

    def image_path(self, sha256: str) -> Path:
        return image_file(self.sdb.image_root, sha256)

    def record_inspection(self, result: InspectionResult, user: Session, store_image_file: bool = True) -> int:
        """Commit a ranked frame (image, full ranking, model id, library version, verdict); returns its id."""
        authorize(self.sdb, user, "decide", "record_inspection")
        if result.inspection_id is not None:
            raise DecisionError(f"inspection {result.inspection_id} is already recorded; record each frame once")
        frame, ranking, verdict = result.frame, result.ranking, result.verdict
        # Checked before the image is written (no orphan file); library versions are never deleted,
        # and the foreign key backs this up inside the transaction.
        if not list(self.sdb.db.query("SELECT 1 AS x FROM library_versions WHERE id = ?", [ranking.library_version])):
            raise LibraryError(f"library version {ranking.library_version} is not in the database; rank with the"
                               " stored library (LibraryStore.in_force) so the version on the record is real")
        sha = store_image(self.sdb.image_root, frame.rgb) if store_image_file else None
        # float()/int(): rankings may carry numpy scalars, which JSON (and the chain) must not see
        candidates = [{"rank": int(c.rank), "label_id": c.label_id, "label_name": c.label_name,
                       "disposition": c.disposition, "description": c.description, "score": float(c.score),
                       "probability": float(c.probability)} for c in ranking.candidates]
        row = {"user": user.name, "captured_at": utc_stamp(frame.captured_at), "source_id": frame.source_id,
               "frame_seq": int(frame.seq), "origin": frame.origin, "width": int(frame.rgb.shape[1]),
               "height": int(frame.rgb.shape[0]), "image_sha256": sha, "frame_sha256": result.image_sha256,
               "model_id": ranking.model_id, "library_version": int(ranking.library_version),
               "candidates": json.dumps(candidates, sort_keys=True), "top_label_id": ranking.top.label_id,
               "disposition": verdict.disposition, "needs_review": int(verdict.needs_review),
               "open_set": int(verdict.open_set), "verdict_reason": verdict.reason,
               "timings": json.dumps({k: float(v) for k, v in result.timings_ms.items()}, sort_keys=True)}
        with self.sdb.transaction():
            inspection_id = self.sdb.append("inspections", row)
            if frame.part is not None:  # the line's part id, in the same commit (inspector.line, issue 18)
                self.sdb.append("events", part_event(inspection_id, frame.part))
        return inspection_id

    def has_frame(self, frame_sha256: str) -> bool:
        """Whether an inspection of these frame bytes is already recorded (a watched folder's backlog)."""
        rows = self.sdb.db.query("SELECT 1 AS x FROM inspections WHERE frame_sha256 = ? LIMIT 1", [frame_sha256])
        return any(True for _ in rows)

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
            raise DecisionError(f"the decision names operator {d.operator!r} but {user.name!r} is signed in;"
                                " a decision is recorded under the signed-in user only")
        with self.sdb.transaction() as db:
            found = list(db.query("SELECT candidates FROM inspections WHERE id = ?", [d.inspection_id]))
            if not found:
                raise DecisionError(f"inspection {d.inspection_id} does not exist; record the inspection first")
            candidates = json.loads(found[0]["candidates"])
            rank = None if d.picked_rank is None else int(d.picked_rank)
            if d.kind in ("confirm", "pick"):
                if not 1 <= (rank or 0) <= len(candidates) or candidates[(rank or 0) - 1]["label_id"] != d.label_id:
                    raise DecisionError(f"inspection {d.inspection_id}: rank {d.picked_rank} is not label {d.label_id!r}")
            corrects_hash = None
            if corrects is None:
                first = list(db.query("SELECT id FROM decisions WHERE inspection_id = ? AND corrects_id IS NULL",
                                      [d.inspection_id]))
                if first:
                    raise DecisionError(f"inspection {d.inspection_id} already has decision {first[0]['id']};"
                                        " a change is a correction (QA)")
            else:
                corrects_hash = self._correctable(corrects, d.inspection_id)
            row = {"inspection_id": int(d.inspection_id), "kind": d.kind, "label_id": d.label_id, "picked_rank": rank,
                   "typed_description": d.typed_description, "comment": d.comment, "operator": user.name,
                   "role": user.role, "printed_name": user.printed_name, "decided_at": utc_stamp(d.decided_at),
                   "override": int(d.kind == "none_of_these" or (d.kind == "pick" and rank != 1)),
                   "corrects_id": corrects, "corrects_hash": corrects_hash, "reason": reason}
            decision_id = self.sdb.append("decisions", row)
        return decision_id

    def _correctable(self, original_id: int, inspection_id: int) -> str:
        rows = list(self.sdb.db.query(
            "SELECT d.inspection_id, c.hash, (SELECT MIN(id) FROM decisions WHERE corrects_id = d.id) AS later"
            " FROM decisions d JOIN chain c ON c.tbl = 'decisions' AND c.row_id = d.id WHERE d.id = ?", [original_id]))
        if not rows:
            raise DecisionError(f"decision {original_id} does not exist")
        if rows[0]["inspection_id"] != inspection_id:
            raise DecisionError(f"decision {original_id} belongs to inspection {rows[0]['inspection_id']},"
                                f" not {inspection_id}")
        if rows[0]["later"] is not None:
            raise DecisionError(f"decision {original_id} was already corrected by {rows[0]['later']}; correct that one")
        return str(rows[0]["hash"])

    def record_event(self, kind: str, detail: Mapping[str, Any] | None = None, user: Session | None = None,
                     subject: str = "") -> int:
        """Commit an audit event (camera fault, model change ...); user None means the station itself."""
        if user is not None:  # a named actor must really be signed in: events are attributable
            authorize(self.sdb, user, None, f"event_{kind}")
        return self._event(kind, detail, user, subject)

    def _event(self, kind: str, detail: Mapping[str, Any] | None, user: Session | None, subject: str) -> int:
        with self.sdb.transaction():
            event_id = self.sdb.append("events", event_row(kind, user.name if user else None, subject, detail))
        return event_id

    def promote_model(self, model_id: str, detail: Mapping[str, Any], user: Session) -> int:
        """Record that a model version is promoted to production (QA only)."""
        authorize(self.sdb, user, "promote_model", "promote_model")
        return self._event("model_promoted", detail, user, model_id)

    def inspections(self, *, from_ts: TimeArg = None, to_ts: TimeArg = None, label: str | None = None,
                    verdict: str | None = None, operator: str | None = None, limit: int = 1000,
                    newest_first: bool = False) -> list[dict[str, Any]]:
        """Inspection rows, oldest first (newest_first: the latest `limit` rows, newest first);
        label = top-ranked label id, verdict = proposed disposition."""
        where, params = _where([("recorded_at >= ?", _t(from_ts)), ("recorded_at < ?", _t(to_ts)),
                                ("top_label_id = ?", label), ("disposition = ?", verdict), ("user = ?", operator)])
        order = " ORDER BY id DESC" if newest_first else " ORDER BY id"
        return list(self.sdb.db.query("SELECT * FROM inspections" + where + order + " LIMIT ?", [*params, limit]))

    def inspection(self, inspection_id: int) -> dict[str, Any] | None:
        """One inspection row by id, or None."""
        rows = list(self.sdb.db.query("SELECT * FROM inspections WHERE id = ?", [int(inspection_id)]))
        return rows[0] if rows else None

    def decisions(self, *, from_ts: TimeArg = None, to_ts: TimeArg = None, operator: str | None = None,
                  label: str | None = None, kind: str | None = None, inspection_id: int | None = None,
                  limit: int = 1000) -> list[dict[str, Any]]:
        """Decision rows, oldest first, each with `corrected_by` (the id of a later correction, or None)."""
        where, params = _where([("recorded_at >= ?", _t(from_ts)), ("recorded_at < ?", _t(to_ts)),
                                ("operator = ?", operator), ("label_id = ?", label), ("kind = ?", kind),
                                ("inspection_id = ?", inspection_id)])
        return list(self.sdb.db.query(
            "SELECT d.*, (SELECT MIN(id) FROM decisions c WHERE c.corrects_id = d.id) AS corrected_by FROM decisions d"
            + where + " ORDER BY id LIMIT ?", [*params, limit]))

    def events(self, *, from_ts: TimeArg = None, to_ts: TimeArg = None, kind: str | None = None,
               user: str | None = None, subject: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Event rows, oldest first."""
        where, params = _where([("recorded_at >= ?", _t(from_ts)), ("recorded_at < ?", _t(to_ts)),
                                ("kind = ?", kind), ("user = ?", user), ("subject = ?", subject)])
        return list(self.sdb.db.query("SELECT * FROM events" + where + " ORDER BY id LIMIT ?", [*params, limit]))

    def verify(self, user: Session | None = None) -> ChainReport:
        """Check the whole chain and the anchor; with a user (auditor) the check is also logged."""
        if user is not None:
            authorize(self.sdb, user, "verify", "verify")
        report = self.sdb.verify()
        if user is not None:
            self._event("verification", {"ok": report.ok, "rows": report.rows, "problem": report.problem}, user, "chain")
        return report

    def export(self, from_ts: datetime | str, to_ts: datetime | str, out_dir: str | Path, user: Session) -> ExportSummary:
        """Write an audit bundle (see inspector.store.export.export_bundle)."""
        return export_bundle(self.sdb, from_ts, to_ts, out_dir, user)


def _t(value: TimeArg) -> str | None:
    return None if value is None else parse_time(value)
