"""Retention of evidence images: move old frames to an archive folder, and say where every image is.

A 5 MP frame per part fills a disk in days. `archive_images` (admin, with a reason) copies every
image recorded before a date to an archive folder in the same content-addressed layout
(`images/sha256/ab/cd/<hash>.png`), fsyncs and re-hashes each copy, chains one `images_archived`
event naming the folder and every hash, and only then removes the station's copies. The
inspections keep their hashes, so the chain is untouched and still verifies; `image_report` tells,
per recorded image, present / archived (found in the archive with the right hash, when given one) /
missing / replaced. An image also recorded on or after the date stays (one file serves both).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.errors import InspectorError
from inspector.store.access import authorize
from inspector.store.database import event_row, parse_time, utc_stamp
from inspector.store.images import image_file
from models.durable import fsync_dir

ARCHIVED = "images_archived"


@dataclass(frozen=True)
class ArchiveSummary:
    """What one archive run moved: how many images, where, and those already gone from the station."""

    archived: int
    folder: Path
    missing: tuple[str, ...]
    event_id: int | None


@dataclass
class ImageReport:
    """Where each recorded evidence image is (`log verify --images`)."""

    present: int = 0
    archived: int = 0
    archive_ok: int = 0  # archived images found in the given archive folder with the recorded hash
    missing: list[str] = field(default_factory=list)  # neither here nor archived
    replaced: list[str] = field(default_factory=list)  # here or in the archive, with other bytes
    archive_missing: list[str] = field(default_factory=list)  # archived, but not in the folder given
    archive_checked: bool = False

    @property
    def ok(self) -> bool:
        return not (self.missing or self.replaced or self.archive_missing)

    @property
    def problem(self) -> str:
        """The report when something is wrong, else empty."""
        return "" if self.ok else str(self)

    def __str__(self) -> str:
        found = f" ({self.archive_ok} found in the archive, hash OK)" if self.archive_checked else ""
        head = f"{self.present} present, {self.archived} archived{found}, {len(self.missing)} missing"
        lines = [head + (f", {len(self.replaced)} replaced" if self.replaced else "")]
        lines += [f"  missing: {p}" for p in self.missing[:20]]
        lines += [f"  replaced: {p}" for p in self.replaced[:20]]
        lines += [f"  archived but not in the archive folder: {p}" for p in self.archive_missing[:20]]
        return "\n".join(lines)


def _digest(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def archived_hashes(conn: Any) -> dict[str, str]:
    """{image hash: archive folder} from the chained `images_archived` events (the latest run counts)."""
    found: dict[str, str] = {}
    for (detail,) in conn.execute("SELECT detail FROM events WHERE kind = ? ORDER BY id", (ARCHIVED,)):
        info = json.loads(detail)
        found.update(dict.fromkeys(info["images"], info["folder"]))
    return found


def locate_image(sdb: Any, sha: str) -> Path:
    """Where an image is: the station's store, else the archive folder it was moved to (when that copy
    exists). Readers still check the bytes against the hash (read_evidence_image, verify-export)."""
    here = image_file(sdb.image_root, sha)
    if here.exists():
        return here
    for (detail,) in sdb.conn.execute(  # hex digests only, so the LIKE pattern holds no wildcard
        "SELECT detail FROM events WHERE kind = ? AND detail LIKE ? ORDER BY id DESC", (ARCHIVED, f"%{sha}%")
    ):
        copy = image_file(Path(json.loads(detail)["folder"]) / "images" / "sha256", sha)
        if copy.exists():
            return copy
    return here


def _copy_verified(src: Path, dst: Path, sha: str) -> None:
    """Copy src to dst through a temp file, fsync file and folders, then re-hash the copy on disk."""
    if _digest(dst) != sha:
        new_dirs = [d for d in (dst.parent.parent, dst.parent) if not d.exists()]
        for folder in new_dirs:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        try:
            data = src.read_bytes()
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        for folder in [dst.parent, *(d.parent for d in new_dirs)]:
            fsync_dir(folder)
    if _digest(dst) != sha:  # what is on the archive disk now, not what we meant to write
        raise InspectorError(f"the archive copy {dst} does not hash to {sha[:12]}...; nothing was removed")


def archive_images(log: Any, before: str, folder: str | Path, user: Any, reason: str) -> ArchiveSummary:
    """Move every evidence image recorded before `before` to `folder` (admin); see the module docstring.

    The station's copy of an image is removed only after its archive copy was fsynced, re-hashed
    and the chained event committed: a crash at any point leaves each image in one place at least.
    """
    sdb = log.sdb
    authorize(sdb, user, "config", "archive_images")
    if not reason.strip():
        raise InspectorError("archiving images needs a reason (e.g. the retention rule it follows)")
    cutoff = parse_time(before)
    if cutoff > utc_stamp():
        raise InspectorError(f"--before {before} is in the future: only images already recorded can be archived")
    root = Path(folder).expanduser().absolute()
    station_images = sdb.image_root.parent.resolve()
    inside = root.resolve() == station_images or station_images in root.resolve().parents
    if inside or (root / "images").resolve() == station_images:  # the copy would be the original itself
        raise InspectorError(f"the archive folder {root} is inside the station's image store; choose another disk")
    rows = sdb.conn.execute(
        "SELECT DISTINCT image_sha256 FROM inspections WHERE image_sha256 IS NOT NULL AND recorded_at < ?"
        " AND image_sha256 NOT IN (SELECT image_sha256 FROM inspections WHERE image_sha256 IS NOT NULL"
        " AND recorded_at >= ?) ORDER BY image_sha256",
        (cutoff, cutoff),
    ).fetchall()
    store = root / "images" / "sha256"
    moved, missing = [], []
    for (sha,) in rows:
        src = image_file(sdb.image_root, sha)
        if not src.exists():
            missing.append(sha)  # archived earlier, or lost: image_report tells which
            continue
        if _digest(src) != sha:
            raise InspectorError(
                f"stored image {sha[:12]}... was replaced (its SHA-256 differs): it is not archived;"
                " nothing was removed"
            )
        try:
            _copy_verified(src, image_file(store, sha), sha)
        except OSError as exc:
            raise InspectorError(
                f"image {sha[:12]}... could not be copied to {root}: {exc.strerror or exc}; nothing was removed"
            ) from exc
        moved.append(sha)
    event_id = None
    if moved:
        detail = {"folder": str(root), "before": cutoff, "reason": reason.strip(), "count": len(moved), "images": moved}
        with sdb.transaction():
            event_id = sdb.append("events", event_row(ARCHIVED, user.name, str(root), detail))
        for sha in moved:  # committed: the chain now says where they are
            image_file(sdb.image_root, sha).unlink(missing_ok=True)
    return ArchiveSummary(len(moved), root, tuple(missing), event_id)


def image_report(log: Any, archive: str | Path | None = None) -> ImageReport:
    """Each recorded image: present (hash OK), archived (checked in `archive` when given), missing, replaced."""
    sdb = log.sdb
    archived = archived_hashes(sdb.conn)
    store = Path(archive).expanduser().absolute() / "images" / "sha256" if archive is not None else None
    report = ImageReport(archive_checked=store is not None)
    seen: set[str] = set()
    for inspection_id, sha in sdb.conn.execute(
        "SELECT id, image_sha256 FROM inspections WHERE image_sha256 IS NOT NULL ORDER BY id"
    ):
        if sha in seen:
            continue
        seen.add(sha)
        what = f"inspection {inspection_id}: image {sha[:12]}..."
        digest = _digest(image_file(sdb.image_root, sha))
        if digest is not None:
            if digest == sha:
                report.present += 1
            else:
                report.replaced.append(what)
            continue
        if sha not in archived:
            report.missing.append(what)
            continue
        report.archived += 1
        if store is not None:
            copy = _digest(image_file(store, sha))
            if copy == sha:
                report.archive_ok += 1
            elif copy is None:
                report.archive_missing.append(f"{what} (archived to {archived[sha]})")
            else:
                report.replaced.append(f"{what} (the archive copy)")
    return report
