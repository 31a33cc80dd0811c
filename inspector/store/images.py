"""Evidence images: content-addressed PNG files beside the database, written once, checked on every read.

`images/sha256/ab/cd/<hash>.png`: the name is the SHA-256 of the bytes, which the inspection
records. Written through a temp file in `images/.incoming` (fsync, rename); read back through
read_evidence_image, which refuses a file whose bytes no longer match its name.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np

from inspector.errors import InspectorError
from inspector.frame.imageio import cv2  # through imageio: OPENCV_IO_MAX_IMAGE_PIXELS must be set first
from inspector.store.database import StorageError, storage_hint
from models.durable import fsync_dir


def image_file(root: Path, sha256: str) -> Path:
    """Where the image with this hash lives; refuses anything but 64 hex digits (no path tricks)."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise InspectorError(f"{sha256!r} is not a SHA-256 hex digest")
    return root / sha256[:2] / sha256[2:4] / f"{sha256}.png"


class EvidenceError(InspectorError):
    """A stored evidence image is missing, or its bytes no longer hash to the recorded SHA-256."""


def read_evidence_image(path: Path) -> np.ndarray:
    """A stored image, decoded only after its bytes hash to the SHA-256 it was recorded (and named) under.

    Every reader of evidence (audit view, heatmaps, impact re-ranking) goes through here: a file
    replaced on disk is refused, never shown or re-ranked as if it were the inspected frame.
    """
    from inspector.frame.imageio import decode_image

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EvidenceError(
            f"image {path.name} is missing or unreadable ({exc.strerror or exc}); restore it from the"
            " backup or its archive bundle"
        ) from None
    if hashlib.sha256(data).hexdigest() != path.stem:
        raise EvidenceError(
            f"image {path.name} was replaced: its SHA-256 differs from the recorded one; restore it"
            " from the backup or its archive bundle"
        )
    return decode_image(data, str(path))


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
        for folder in new_dirs:  # parents first; private: 0700 folders, 0600 files (frames may show people)
            folder.mkdir(mode=0o700, exist_ok=True)
        staging.mkdir(mode=0o700, exist_ok=True)
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
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
        raise StorageError(
            f"image file {final} was not written: {exc.strerror or exc}; {storage_hint(exc, root)}"
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
            if (
                entry.name.endswith(".tmp")
                and entry.is_file(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime < cutoff
            ):
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
    return removed
