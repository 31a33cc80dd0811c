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
