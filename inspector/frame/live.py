"""The station's live capture path without Qt: read a frame, rank it, commit it, report faults.

A GUI runs `LiveCapture` on one worker thread (open, step, step, ..., close all on that thread):
it opens its own connection to the station database, because a sqlite connection belongs to the
thread that opened it. The inspection is committed when it is *shown*, not when it is answered,
so every part the station saw is in the audit trail, answered or not.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from inspector.capture.base import EventSink, FrameSource, SourceHealth
from inspector.store.decision_log import DecisionLog
from inspector.errors import InspectorError
from inspector.frame.records import InspectionResult, utc_now
from inspector.station import Station
from inspector.store.users import MATRIX, Session

SourceFactory = Callable[[EventSink], FrameSource]


class LiveCapture:
    """One source and one database connection, driven by one thread."""

    def __init__(self, station: Station, make_source: SourceFactory, user: Session | None) -> None:
        self.station, self.user = station, user
        self._make_source = make_source
        self.source: FrameSource | None = None
        self._log: DecisionLog | None = None
        # An auditor (or nobody) may watch the live view, but only a role that decides records parts.
        self.records = station.log is not None and user is not None and "decide" in MATRIX.get(user.role, ())
        self.on_event: EventSink | None = None  # also told about every camera event (e.g. the GUI)

    def open(self) -> None:
        """Connect the database (own connection) and the source; call on the capture thread."""
        if self.station.log is not None and self._log is None:
            self._log = DecisionLog.open(self.station.log.sdb.path, create=False)
        if self.source is None:
            self.source = self._make_source(self._source_event)
        self.source.open()

    def step(self, timeout: float) -> InspectionResult | None:
        """Wait up to `timeout` s for a frame; rank it, commit it (if this user records) and return it."""
        if self.source is None:
            raise InspectorError("the live capture is not open; call open() first")
        frame = self.source.read(timeout)
        if frame is None:
            return None
        waited_ms = max(0.0, (utc_now() - frame.captured_at).total_seconds() * 1000)
        digest = getattr(self.source, "digest", None)  # a watched folder names files by their bytes
        result = self.station.inspect(frame, image_sha256=digest(frame) if digest else None)
        result = replace(result, timings_ms={"capture": waited_ms, **result.timings_ms})
        if self.records and self._log is not None and self.user is not None:
            t0 = time.perf_counter()
            inspection_id = self._log.record_inspection(result, self.user)
            timings = {**result.timings_ms, "record": 1000 * (time.perf_counter() - t0)}
            result = replace(result, inspection_id=inspection_id, timings_ms=timings)
            self.station.notify_recorded(result)  # issue 17: search indexer, drift monitor
        return result

    def drain(self, timeout: float) -> bool:
        """Read and drop one frame (paused: nobody is looking, so nothing is ranked or recorded)."""
        if self.source is None:
            raise InspectorError("the live capture is not open; call open() first")
        return self.source.read(timeout) is not None

    def reopen(self) -> None:
        """Close and reopen the source after a fault (the database connection stays)."""
        if self.source is not None:
            self.source.close()
            self.source.open()

    def health(self) -> SourceHealth | None:
        """The source's state and counters (never blocks)."""
        return None if self.source is None else self.source.health()

    def log_event(self, kind: str, detail: dict[str, Any]) -> None:
        """Record a station event (camera fault ...) through this thread's connection."""
        if self._log is not None:
            subject = str(detail.get("source_id", self.source.source_id if self.source else ""))
            self._log.record_event(kind[:40], detail, user=None, subject=subject)

    def close(self) -> None:
        """Release the source and this thread's connection; idempotent."""
        try:
            if self.source is not None:
                self.source.close()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def _source_event(self, kind: str, detail: dict[str, Any]) -> None:
        # Camera faults, reconnects and recoveries are audit events, attributed to the source.
        self.log_event(f"camera_{kind}", detail)
        if self.on_event is not None:
            self.on_event(kind, detail)


class RateMeter:
    """Events per minute over a sliding window (parts per minute on the status line)."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s, self._clock = window_s, clock
        self._times: deque[float] = deque()

    def tick(self) -> None:
        """Count one event now."""
        self._times.append(self._clock())
        self._trim()

    def per_minute(self) -> float | None:
        """Events per minute in the window; None before two events (one part is not a rate)."""
        self._trim()
        if len(self._times) < 2:
            return None
        # n events span n-1 intervals; measured up to now, so the figure falls when the line stops.
        return 60.0 * (len(self._times) - 1) / max(self._clock() - self._times[0], 1e-9)

    def _trim(self) -> None:
        cutoff = self._clock() - self.window_s
        while self._times and self._times[0] < cutoff:
            self._times.popleft()
