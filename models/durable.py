"""Durable file writes: the one atomic-write helper of the project (no torch here).

It lives in the lowest layer so that both sides use it: checkpoints (models) and the station's
anchor file (inspector). A file written with `atomic_write` is either the old one or the new one
after a crash or power cut, never half written; its name is durable once the call returns.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make the names in `folder` durable: a create or rename survives a power cut only after this."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Create or replace `path` with `data`: temp file in the same folder (0600), fsync, rename, fsync the folder.

    The temp file is named `.NAME.*.tmp`, so a writer killed mid-write leaves only such a file, which
    the caller may sweep (the anchor does, under its lock).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def create_secret_file(path: Path, nbytes: int = 32) -> bool:
    """Create `path` (0600, exclusively) holding `nbytes` random bytes as hex; False if it already exists.

    The bytes are fsynced and the name made durable; a file that could not be written whole is
    removed again, since a half-written key would lock its owner out later. OSError otherwise.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(os.urandom(nbytes).hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(path.parent)
    except OSError:
        path.unlink(missing_ok=True)
        raise
    return True
