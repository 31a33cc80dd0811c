"""The station's one live loop, without Qt: read a frame, rank it, commit it, report faults.

Both the GUI's capture worker (ui/operator/capture_worker.py) and headless `inspector watch`
drive `LiveCapture`: open, step, step, ..., close, all on one thread. It records through its own
database connection unless handed one (a sqlite connection belongs to the thread that opened it).
The inspection is committed when it is *shown*, not when it is answered, so every part the
station saw is in the audit trail, answered or not.

Storage faults (disk full, read-only, I/O error) never stop the loop: the frame is reported as
not recorded, a watched folder offers the file again, and once writes succeed a
`storage_recovered` event summarises the outage. Camera events are audit events; one that cannot
be logged is reported and counted, never dropped silently.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from inspector.capture.base import EventSink, FrameSource, SourceHealth
from inspector.errors import InspectorError
from inspector.frame.records import InspectionResult, utc_now
from inspector.station import Station
from inspector.store.anchor import AnchorError
from inspector.store.database import AnchorWriteError, StorageError, utc_stamp
from inspector.store.decision_log import DecisionLog
from inspector.store.users import MATRIX, Session

SourceFactory = Callable[[EventSink], FrameSource]
Warn = Callable[[str], None]


class StorageOutage:
    """Writes the database refused since the last good one: a `storage_recovered` event's detail."""

    def __init__(self) -> None:
        self.frames = self.unacknowledged = 0
        self.events: dict[str, int] = {}
        self.first_error = self.since = ""

    def note(self, exc: Exception) -> None:
        if not self.first_error:
            self.first_error, self.since = str(exc), utc_stamp()

    def __bool__(self) -> bool:
        return bool(self.frames or self.unacknowledged or self.events)

    def detail(self) -> dict[str, Any]:
        return {
            "frames_not_recorded": self.frames,
            "frames_stored_not_acknowledged": self.unacknowledged,
            "events_not_logged": dict(self.events),
            "first_error": self.first_error,
            "since": self.since,
        }


class LiveCapture:
    """One source and one database connection, driven by one thread.

    record: None records when the user's role decides (an auditor may watch the live view);
    True always tries (a refusal is then the caller's error). log: a connection of the driving
    thread to use (not closed here); None opens one in open(). refresh_library: pick up a newly
    published library before each frame (only when the station's log belongs to this thread).
    warn: told one line for each problem as it happens (stderr, the window's banner).
    """

    def __init__(
        self,
        station: Station,
        make_source: SourceFactory,
        user: Session | None,
        *,
        record: bool | None = None,
        log: DecisionLog | None = None,
        refresh_library: bool = False,
        warn: Warn | None = None,
    ) -> None:
        self.station, self.user = station, user
        self._make_source = make_source
        self.source: FrameSource | None = None
        self._log, self._own_log = log, log is None
        decides = user is not None and "decide" in MATRIX.get(user.role, ())
        self.records = station.log is not None and user is not None and (decides if record is None else record)
        self._refresh = refresh_library
        self.warn: Warn = warn or (lambda _message: None)  # a GUI sets it to its fault signal
        self.outage = StorageOutage()
        self._last_fault = ""  # the problem reported last, until frames are recorded again
        self._fault_logged = False  # whether it was an audit event of its own (fault()), not a warning
        self.idle = False  # whether the last step's read timed out (no frame at all)
        self.on_event: EventSink | None = None  # also told about every camera event (e.g. the GUI)

    def open(self) -> None:
        """Connect the database (own connection) and the source; call on the capture thread."""
        if self.station.log is not None and self._log is None:
            self._log = DecisionLog.open(self.station.log.sdb.path, create=False)
        if self.source is None:
            self.source = self._make_source(self.source_event)
        self.source.open()

    def step(self, timeout: float) -> InspectionResult | None:
        """Wait up to `timeout` s for a frame; rank it, commit it (if this user records) and return it.

        None when no frame came, or when the frame could not be recorded (reported through `warn`;
        a watched folder's file is offered again). CameraError passes through to the caller.
        """
        source = self._require_source()
        frame = source.read(timeout)
        self.idle = frame is None
        if frame is None:
            return None
        if self._refresh:
            self.station.refresh_library()
        waited_ms = max(0.0, (utc_now() - frame.captured_at).total_seconds() * 1000)
        digest = getattr(source, "digest", None)  # a watched folder names files by their bytes
        result = self.station.inspect(frame, image_sha256=digest(frame) if digest else None)
        result = replace(result, timings_ms={"capture": waited_ms, **result.timings_ms})
        if not (self.records and self._log is not None and self.user is not None):
            return result
        t0 = time.perf_counter()
        try:
            inspection_id = self._log.record_inspection(result, self.user)
        except AnchorWriteError as exc:  # stored, but its id is unknown here: not acknowledged
            self.outage.note(exc)
            self.outage.unacknowledged += 1
            self._problem(
                f"frame {frame.seq} ({frame.origin or frame.source_id}) is stored but NOT acknowledged: {exc}"
            )
            return None
        except (StorageError, AnchorError) as exc:
            # Not acknowledged and the loop keeps running: the next frame is stored as soon as the
            # disk has room again.
            self.outage.note(exc)
            self.outage.frames += 1
            requeue = getattr(source, "requeue", None)  # a watched folder can offer an unrecorded file again
            again = isinstance(exc, StorageError) and requeue is not None and requeue(frame)
            self._problem(
                f"frame {frame.seq} ({frame.origin or frame.source_id}) was NOT recorded: {exc}"
                + ("; the file will be tried again" if again else "")
            )
            return None
        timings = {**result.timings_ms, "record": 1000 * (time.perf_counter() - t0)}
        result = replace(result, inspection_id=inspection_id, timings_ms=timings)
        self._close_outage()
        self.station.notify_recorded(result)  # search indexer, drift monitor: after COMMIT only
        return result

    def drain(self, timeout: float) -> bool:
        """Read and drop one frame (paused: nobody is looking, so nothing is ranked or recorded)."""
        return self._require_source().read(timeout) is not None

    def reopen(self) -> None:
        """Close and reopen the source after a fault (the database connection stays)."""
        if self.source is not None:
            self.source.close()
            self.source.open()

    def health(self) -> SourceHealth | None:
        """The source's state and counters (never blocks)."""
        return None if self.source is None else self.source.health()

    def log_event(self, kind: str, detail: dict[str, Any]) -> bool:
        """Record a station event through this thread's connection; False (reported, counted) if refused."""
        if self._log is None:
            return True
        subject = str(detail.get("source_id", self.source.source_id if self.source else ""))
        try:
            self._log.record_event(kind[:40], detail, user=None, subject=subject)
        except (StorageError, AnchorError) as exc:  # never silently: reported now, a count in the log later
            self.outage.note(exc)
            self.outage.events[kind] = self.outage.events.get(kind, 0) + 1
            what = detail.get("message") or detail.get("error") or detail.get("file") or ""
            self.warn(f"event {kind!r} ({what}) was NOT logged: {exc}")
            return False
        return True

    def source_event(self, kind: str, detail: dict[str, Any]) -> None:
        """A camera event (fault, reconnect, skipped file): told to `on_event`, logged as `camera_<kind>`."""
        if self.on_event is not None:
            self.on_event(kind, detail)
        self.log_event(f"camera_{kind}", detail)

    def fault(self, message: str, camera: bool) -> str:
        """A fault of the loop itself: one audit event per distinct fault (not one per retry); the message."""
        if message != self._last_fault:
            self._last_fault, self._fault_logged = message, True
            if not self.log_event("camera_fault" if camera else "capture_error", {"message": message[:1000]}):
                message += " (not logged)"
        return message

    def recovered(self) -> bool:
        """Call when frames arrive again: True if a problem was open (a logged fault gets a
        `camera_recovered` event; a storage outage its `storage_recovered` summary)."""
        if not self._last_fault:
            return False
        if self._fault_logged:
            self.log_event("camera_recovered", {"message": "frames arrive again"})
        self._last_fault, self._fault_logged = "", False
        return True

    def close(self) -> None:
        """Release the source and this thread's connection; idempotent."""
        try:
            if self.source is not None:
                self.source.close()
        finally:
            if self._log is not None and self._own_log:
                self._log.close()
                self._log = None

    def _require_source(self) -> FrameSource:
        if self.source is None:
            raise InspectorError("the live capture is not open; call open() first")
        return self.source

    def _close_outage(self) -> None:
        if not self.outage or self._log is None:
            return
        try:
            self._log.record_event(
                "storage_recovered", self.outage.detail(), user=None, subject=str(self._log.sdb.path)
            )
            self.outage = StorageOutage()
        except (StorageError, AnchorError) as exc:
            self.warn(f"the storage outage could not be logged yet: {exc}")

    def _problem(self, message: str) -> None:
        self._last_fault, self._fault_logged = message, False
        self.warn(message)


class RateMeter:
    """Events per minute over a sliding window (parts per minute on the status line).

    No figure until the events span min_span_s: two parts 0.6 s apart at start-up would read as
    100 parts/min on a 1 part/s line. The rate is counted over real time, from the window's first
    event to now, so it also falls when the line stops.
    """

    def __init__(
        self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic, min_span_s: float = 10.0
    ) -> None:
        self.window_s, self.min_span_s, self._clock = window_s, min_span_s, clock
        self._times: deque[float] = deque()

    def tick(self) -> None:
        """Count one event now."""
        self._times.append(self._clock())
        self._trim()

    def per_minute(self) -> float | None:
        """Events per minute in the window; None before two events or before they span min_span_s."""
        self._trim()
        if len(self._times) < 2:
            return None
        span = self._clock() - self._times[0]
        if span < self.min_span_s:
            return None
        # n events span n-1 intervals; measured up to now, so the figure falls when the line stops.
        return 60.0 * (len(self._times) - 1) / span

    def _trim(self) -> None:
        cutoff = self._clock() - self.window_s
        while self._times and self._times[0] < cutoff:
            self._times.popleft()
