"""The one interface every frame source implements, and the bookkeeping they share.

A source is opened, read with a timeout, and closed. `read(timeout)` returns a Frame, or None
when no frame arrived within the timeout; it raises CameraError on a fault or when the source is
closed. `health()` is cheap and never blocks, so a status bar can poll it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import numpy as np

from inspector.errors import CameraError
from inspector.frame.records import Frame, utc_now

SourceState = Literal["closed", "connected", "stalled", "reconnecting", "failed"]
EventSink = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class SourceHealth:
    """A snapshot of a source's state and counters (for the status bar and shift summaries)."""

    source_id: str
    state: SourceState
    frames_delivered: int = 0
    frames_dropped: int = 0  # dropped by a bounded queue (the consumer was slower)
    frames_invalid: int = 0  # garbage, incomplete or undecodable frames, skipped
    last_frame_at: datetime | None = None
    last_error: str = ""
    reconnect_attempts: int = 0
    backend: str = ""  # e.g. "FFMPEG", "V4L2", "harvesters", "folder"
    queue_peak: int = 0  # the most frames a bounded queue has held at once


class FrameSource(ABC):
    """Base class of all sources: open/read/close/health, context manager, shared counters."""

    backend: str = ""

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        self._lock = threading.RLock()
        self._state: SourceState = "closed"
        self._seq = 0  # never reset, so seq stays increasing across close/open
        self._delivered = 0
        self._dropped = 0
        self._invalid = 0
        self._queue_peak = 0
        self._last_frame_at: datetime | None = None
        self._last_error = ""
        self._reconnects = 0

    @abstractmethod
    def open(self) -> None:
        """Connect (idempotent when already open); raise CameraError when that is impossible."""

    @abstractmethod
    def read(self, timeout: float) -> Frame | None:
        """The next frame, or None when none arrived within `timeout` seconds."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; idempotent, and never raises for an already-lost device."""

    def health(self) -> SourceHealth:
        """A snapshot of state and counters; never blocks on the device."""
        with self._lock:
            return SourceHealth(
                source_id=self.source_id,
                state=self._state,
                frames_delivered=self._delivered,
                frames_dropped=self._dropped,
                frames_invalid=self._invalid,
                last_frame_at=self._last_frame_at,
                last_error=self._last_error,
                reconnect_attempts=self._reconnects,
                backend=self.backend,
                queue_peak=self._queue_peak,
            )

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source_id!r}, state={self._state!r})"

    # --- helpers for subclasses -----------------------------------------------------------

    def _require_open(self) -> None:
        if self._state == "closed":
            raise CameraError(f"source {self.source_id!r} is closed; call open() (or use `with`) before read()")

    def _set_state(self, state: SourceState, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._last_error = error

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._last_error = message

    def _note_invalid(self, message: str) -> None:
        with self._lock:
            self._invalid += 1
            self._last_error = message

    def _make_frame(self, rgb: Any, origin: str = "", captured_at: datetime | None = None) -> Frame | None:
        """Stamp a valid RGB buffer as the next Frame; count and skip anything else."""
        problem = rgb_problem(rgb)
        if problem:
            self._note_invalid(f"source {self.source_id!r} delivered an invalid frame ({problem}); skipped")
            return None
        with self._lock:
            frame = Frame(
                rgb=rgb,
                captured_at=captured_at or utc_now(),
                source_id=self.source_id,
                seq=self._seq,
                origin=origin,
            )
            self._seq += 1
            return frame

    def _delivered_frame(self, frame: Frame) -> Frame:
        """Count a frame handed to the caller and remember when."""
        with self._lock:
            self._delivered += 1
            self._last_frame_at = utc_now()
        return frame


def rgb_problem(rgb: Any) -> str:
    """Why `rgb` is not a usable RGB uint8 HxWx3 frame, or "" when it is."""
    if not isinstance(rgb, np.ndarray):
        return f"not an array but {type(rgb).__name__}"
    if rgb.dtype != np.uint8:
        return f"dtype {rgb.dtype}, expected uint8"
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        return f"shape {rgb.shape}, expected HxWx3"
    return ""


def to_utc(timestamp: float) -> datetime:
    """A POSIX timestamp as an aware UTC datetime (records never hold naive times)."""
    return datetime.fromtimestamp(timestamp, tz=UTC)
