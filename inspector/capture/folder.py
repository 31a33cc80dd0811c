"""A watched folder as a frame source: the backlog the database has not seen, then new arrivals.

Polling, not inotify: it works the same on network shares and on every OS, and a camera's
"save image" rate is far below what a 0.2 s poll can follow.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.capture.base import EventSink, FrameSource, to_utc
from inspector.errors import CameraError, ImageDecodeError
from inspector.frame.imageio import DEFAULT_MAX_BYTES, decode_image
from inspector.frame.records import Frame

DEFAULT_PATTERNS: tuple[str, ...] = ("*.png", "*.jpg", "*.jpeg", "*.tif", "*.tiff", "*.bmp")
_DIGESTS_KEPT = 4096  # seq -> SHA-256 for frames not yet recorded by the caller


@dataclass
class _Pending:
    signature: tuple[int, int]  # (size, mtime_ns): a change means the file is still being written
    stable_since: float
    failures: int = 0


class FolderSource(FrameSource):
    """Frames from image files in `path`, oldest first, each file at most once by content.

    `seen(sha256_hex)` tells whether the caller's database already holds a file's bytes; the
    key is the SHA-256 of the file (see `digest()` to record it). A file is read once its size
    and mtime have not changed for `settle_s`; a decode failure is retried `decode_retries`
    times (a slow copy can pause longer than settle_s) and then reported and skipped.
    """

    backend = "folder"

    def __init__(
        self,
        path: str | os.PathLike[str],
        seen: Callable[[str], bool] | None = None,
        settle_s: float = 0.5,
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        *,
        poll_s: float = 0.2,
        decode_retries: int = 2,
        on_event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        source_id: str | None = None,
    ) -> None:
        self.path = Path(path)
        super().__init__(source_id or f"folder:{self.path.name or self.path}")
        self._seen = seen
        self._settle_s, self._poll_s, self._retries = settle_s, poll_s, decode_retries
        self._patterns = tuple(p.lower() for p in patterns)
        self._on_event = on_event
        self._clock, self._sleep = clock, sleep
        self._pending: dict[Path, _Pending] = {}
        self._done: dict[Path, tuple[int, int]] = {}
        self._hashes: set[str] = set()
        self._digests: OrderedDict[int, str] = OrderedDict()
        self._paths: OrderedDict[int, Path] = OrderedDict()  # seq -> file, for requeue()

    def open(self) -> None:
        if not self.path.is_dir():
            message = f"folder {str(self.path)!r} does not exist or is not a directory; create it or fix SOURCE"
            self._note_error(message)
            raise CameraError(message)
        self._set_state("connected")

    def close(self) -> None:
        self._set_state("closed")

    def read(self, timeout: float) -> Frame | None:
        self._require_open()
        deadline = self._clock() + max(0.0, timeout)
        while True:
            frame = self._next_frame()
            if frame is not None:
                return self._delivered_frame(frame)
            remaining = deadline - self._clock()
            if remaining <= 0:
                return None
            self._sleep(min(self._poll_s, remaining))

    def digest(self, frame: Frame) -> str | None:
        """The SHA-256 (hex) of the file bytes `frame` came from: the key `seen()` is asked about."""
        return self._digests.get(frame.seq)

    def requeue(self, frame: Frame) -> bool:
        """Offer `frame`'s file again (after it settles anew): the caller could not record it, e.g.
        because the disk was full. The file stays on disk, so the frame is retried, not lost.
        Returns False when the file is unknown (or was forgotten); the frame is then not retried."""
        path = self._paths.get(frame.seq)
        if path is None:
            return False
        self._done.pop(path, None)
        self._hashes.discard(self._digests.get(frame.seq, ""))
        return True

    # --- internals ----------------------------------------------------------------------------

    def _emit(self, kind: str, **details: Any) -> None:
        if self._on_event is not None:
            self._on_event(kind, {"source_id": self.source_id, **details})

    def _scan(self) -> None:
        try:
            entries = list(os.scandir(self.path))
        except OSError as exc:
            message = f"folder {str(self.path)!r} cannot be listed ({exc.strerror or exc}); check that it still exists"
            self._set_state("failed", message)
            raise CameraError(message) from exc
        now, present = self._clock(), set()
        for entry in entries:
            name = entry.name.lower()
            # Dot-files are the usual "still being written" names of copy tools; skip them.
            if name.startswith(".") or not any(fnmatch.fnmatchcase(name, p) for p in self._patterns):
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except OSError:
                continue  # vanished between listing and stat: nothing to process
            path, sig = Path(entry.path), (st.st_size, st.st_mtime_ns)
            present.add(path)
            if self._done.get(path) == sig:
                continue
            pending = self._pending.get(path)
            if pending is None or pending.signature != sig:
                self._pending[path] = _Pending(sig, now, pending.failures if pending else 0)
        # Forget files that are gone, so memory follows the folder's contents.
        for gone in [p for p in self._pending if p not in present]:
            del self._pending[gone]
        for gone in [p for p in self._done if p not in present]:
            del self._done[gone]

    def _next_frame(self) -> Frame | None:
        self._scan()
        now = self._clock()
        ready = [
            (p.signature[1], path.name, path)
            for path, p in self._pending.items()
            if now - p.stable_since >= self._settle_s
        ]
        for _, _, path in sorted(ready):
            frame = self._process(path)
            if frame is not None:
                return frame
        return None

    def _process(self, path: Path) -> Frame | None:
        pending = self._pending[path]
        try:
            # Size first, and never more than the limit read: a huge file costs a stat, not its bytes.
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                data = b"" if size > DEFAULT_MAX_BYTES else f.read(size + 1)  # +1: it grew meanwhile
                st = os.fstat(f.fileno())  # after the read: a file still growing fails the settle check below
        except OSError as exc:
            self._reject(path, pending, f"cannot read {path.name!r}: {exc.strerror or exc}", "file_unreadable")
            return None
        if max(st.st_size, len(data)) > DEFAULT_MAX_BYTES:
            self._reject(
                path,
                pending,
                f"{path.name!r} is {max(st.st_size, len(data)) / 1e6:.1f} MB, over the"
                f" {DEFAULT_MAX_BYTES / 1e6:.0f} MB limit for images",
                "file_rejected",
            )
            return None
        if (st.st_size, st.st_mtime_ns) != pending.signature:
            self._pending[path] = _Pending((st.st_size, st.st_mtime_ns), self._clock(), pending.failures)
            return None  # still growing: wait for it to settle again
        sha = hashlib.sha256(data).hexdigest()
        if sha in self._hashes or (self._seen is not None and self._seen(sha)):
            reason = "duplicate" if sha in self._hashes else "seen"
            self._finish(path, pending)
            self._emit("file_skipped", file=path.name, sha256=sha, reason=reason)
            return None
        try:
            rgb = decode_image(data, path.name)
        except ImageDecodeError as exc:
            if pending.failures < self._retries:
                # Maybe a slow writer paused longer than settle_s: wait one more settle period.
                self._pending[path] = _Pending(pending.signature, self._clock(), pending.failures + 1)
                return None
            self._reject(path, pending, str(exc), "file_rejected")
            return None
        self._finish(path, pending)
        self._hashes.add(sha)
        frame = self._make_frame(rgb, origin=path.name, captured_at=to_utc(st.st_mtime))
        if frame is not None:
            self._digests[frame.seq] = sha
            self._paths[frame.seq] = path
            while len(self._digests) > _DIGESTS_KEPT:
                self._digests.popitem(last=False)
            while len(self._paths) > _DIGESTS_KEPT:
                self._paths.popitem(last=False)
        return frame

    def _finish(self, path: Path, pending: _Pending) -> None:
        self._pending.pop(path, None)
        self._done[path] = pending.signature

    def _reject(self, path: Path, pending: _Pending, message: str, kind: str) -> None:
        self._finish(path, pending)
        self._note_invalid(f"{message}; file skipped")
        self._emit(kind, file=path.name, error=message)
