"""ResilientSource: a watchdog around any source: stall detection, capped backoff, reconnects.

All decisions (stalled? retry now? recovered?) are taken inside the caller's read(), so events
reach `on_event` on the caller's thread and a fake clock drives them deterministically. With
`threaded=True` (the default) the inner source is opened and read in a reader thread that can
be abandoned, so read() returns within its timeout even when the inner source hangs.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inspector.capture.base import EventSink, FrameSource, SourceHealth
from inspector.capture.connection import InlineSession, Item, ThreadSession
from inspector.errors import CameraError
from inspector.frame.records import Frame


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff; `jitter=1` is AWS "full jitter": uniform(0, min(cap, base*2^n))."""

    base: float = 0.5
    cap: float = 30.0
    jitter: float = 1.0  # 0 = no jitter (exact schedule), 1 = full jitter

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay before retry `attempt` (0-based)."""
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before retry `attempt`: the ceiling scaled down by up to `jitter`."""
        return self.ceiling(attempt) * (1.0 - self.jitter * rng.random())


class ResilientSource(FrameSource):
    """Wraps `inner_factory()` sources; reconnects forever (or `max_attempts`) with backoff.

    Events to `on_event(kind, details)`: connected, stalled, disconnected, reconnect_scheduled,
    reconnect_attempt, reconnect_failed, recovered, failed, closed, frame_invalid (garbage frames
    the inner source skipped since the last report) and frames_dropped (frames the bounded queue
    dropped because the consumer was slower), both with the `count` since the last report and
    the `total`. Each `details` carries source_id and a `message` fit for the audit log.
    """

    backend = "resilient"

    def __init__(
        self,
        inner_factory: Callable[[], FrameSource],
        stall_after_s: float = 2.0,
        backoff: Backoff = Backoff(),
        on_event: EventSink | None = None,
        *,
        queue_size: int = 8,
        threaded: bool = True,
        open_timeout_s: float | None = None,
        max_attempts: int | None = None,
        poll_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        source_id: str | None = None,
    ) -> None:
        super().__init__(source_id or "camera")
        self._fixed_id = source_id is not None
        self._factory, self._stall_after_s, self._backoff = inner_factory, stall_after_s, backoff
        self._on_event = on_event
        self._queue_size, self._threaded, self._poll_s = queue_size, threaded, poll_s
        self._open_timeout_s = stall_after_s if open_timeout_s is None else open_timeout_s
        self._max_attempts = max_attempts
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()
        self._session: InlineSession | ThreadSession | None = None
        self._failures = 0  # consecutive failed tries since the last good frame: the backoff index
        self._next_attempt_at: float | None = None
        self._progress_at = 0.0  # last frame, or start of the current try
        self._fault_at: float | None = None  # when the current outage began
        self._had_frame = False
        self._fatal = ""
        self._past_invalid = self._past_dropped = 0
        self._invalid_reported = self._dropped_reported = 0  # already announced as events

    # --- public API ---------------------------------------------------------------------------

    def open(self) -> None:
        if self._state != "closed":
            return
        self._fatal, self._failures, self._fault_at = "", 0, None
        self._set_state("reconnecting")
        self._start_session()
        deadline = self._clock() + self._open_timeout_s
        session = self._session
        while session is self._session and self._state == "reconnecting" and session is not None:
            self._handle(session.poll(max(0.0, deadline - self._clock()), frames=False))
            if self._clock() >= deadline:
                break  # a hanging open is left to the stall check in read()
        if self._fatal:
            raise CameraError(self._fatal)

    def read(self, timeout: float) -> Frame | None:
        self._require_open()
        deadline = self._clock() + max(0.0, timeout)
        while True:
            if self._fatal:
                raise CameraError(self._fatal)
            now = self._clock()
            if self._session is not None and now - self._progress_at >= self._stall_after_s:
                self._on_silence(now)
            if self._session is None and self._next_attempt_at is not None and now >= self._next_attempt_at:
                self._retry(now)
            if self._session is not None:
                wait = min(deadline, self._progress_at + self._stall_after_s) - now
                frame = self._handle(self._session.poll(max(0.0, wait)))
                self._report_losses()
                if frame is not None:
                    return frame
            else:
                until = deadline if self._next_attempt_at is None else min(deadline, self._next_attempt_at)
                self._sleep(max(0.0, until - now))
            if self._clock() >= deadline and not self._fatal:
                return None

    def close(self) -> None:
        if self._state == "closed":
            return
        self._drop_session()
        self._report_losses()  # after the drop: the counters are final, so the events add up to them
        self._next_attempt_at = None
        self._set_state("closed")
        self._emit("closed", f"camera {self.source_id!r} closed")

    def health(self) -> SourceHealth:
        h = super().health()
        session = self._session
        invalid, dropped, peak, backend = session.counters() if session else (0, 0, 0, "")
        state = h.state
        # Report a silence as it happens, even when nobody is calling read() to act on it.
        if state == "connected" and self._clock() - self._progress_at >= self._stall_after_s:
            state = "stalled"
        return dataclasses.replace(
            h,
            state=state,
            frames_invalid=self._past_invalid + invalid,
            frames_dropped=self._past_dropped + dropped,
            queue_peak=max(h.queue_peak, peak),
            backend=f"resilient/{backend}" if backend else "resilient",
        )

    # --- state machine ------------------------------------------------------------------------

    def _emit(self, kind: str, message: str, **details: Any) -> None:
        if self._on_event is not None:
            self._on_event(kind, {"source_id": self.source_id, "message": message, **details})

    def _start_session(self) -> None:
        if self._threaded:
            self._session = ThreadSession(self._factory, self._queue_size, self._poll_s)
        else:
            self._session = InlineSession(self._factory)
        self._progress_at = self._clock()
        self._session.start()

    def _report_losses(self) -> None:
        # Garbage frames are skipped and a full queue drops frames on the reader thread; announce
        # them here, on the caller's thread, so each lost frame is accounted for in the audit log
        # (batched per read: the counts add up to the health() counters).
        session = self._session
        invalid, dropped = session.counters()[:2] if session is not None else (0, 0)
        invalid, dropped = invalid + self._past_invalid, dropped + self._past_dropped
        if invalid > self._invalid_reported:
            count, self._invalid_reported = invalid - self._invalid_reported, invalid
            last = session.last_error() if session is not None else ""
            self._emit(
                "frame_invalid",
                f"camera {self.source_id!r} delivered {count} invalid frame(s), skipped"
                + (f": {last}" if last else ""),
                count=count,
                total=invalid,
            )
        if dropped > self._dropped_reported:
            count, self._dropped_reported = dropped - self._dropped_reported, dropped
            self._emit(
                "frames_dropped",
                f"camera {self.source_id!r}: {count} frame(s) dropped, not inspected:"
                " the station could not keep up with the camera",
                count=count,
                total=dropped,
            )

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            invalid, dropped, peak, _ = session.counters()
            self._past_invalid += invalid
            self._past_dropped += dropped
            self._queue_peak = max(self._queue_peak, peak)
            session.abandon()

    def _handle(self, item: Item | None) -> Frame | None:
        if item is None:
            return None
        kind, payload = item
        now = self._clock()
        if kind == "frame":
            return self._deliver(payload, now)
        if kind == "connected":
            if not self._fixed_id and self.source_id == "camera":
                self.source_id = str(payload)
            self._progress_at = now
            self._set_state("connected")
            self._emit("connected", f"camera {self.source_id!r} connected", attempt=self._failures)
        elif kind == "error":
            self._drop_session()
            self._set_state("reconnecting", str(payload))  # before emitting: listeners read health()
            if self._had_frame and self._fault_at is None:
                self._emit("disconnected", f"camera {self.source_id!r} lost: {payload}", error=payload)
            else:
                self._emit("reconnect_failed", f"camera {self.source_id!r}: {payload}", error=payload)
            self._schedule(now, str(payload))
        elif kind == "fatal":
            self._drop_session()
            self._fatal = f"camera {self.source_id!r} cannot be built: {payload}; fix the source settings"
            self._set_state("failed", self._fatal)
            self._emit("failed", self._fatal, error=payload)
        return None

    def _deliver(self, frame: Frame, now: float) -> Frame:
        self._progress_at, self._had_frame = now, True
        if self._fault_at is not None:
            downtime = now - self._fault_at
            self._emit(
                "recovered", f"camera {self.source_id!r} recovered after {downtime:.1f} s",
                attempts=self._failures, downtime_s=downtime,
            )  # fmt: skip
            self._fault_at = None
        self._failures = 0
        self._set_state("connected")
        with self._lock:
            frame = dataclasses.replace(frame, seq=self._seq, source_id=self.source_id)
            self._seq += 1
        return self._delivered_frame(frame)

    def _on_silence(self, now: float) -> None:
        silent = now - self._progress_at
        self._drop_session()
        if self._state == "connected":
            message = f"camera {self.source_id!r} did not deliver a frame for {silent:.1f} s"
            self._set_state("stalled", message)
            self._emit("stalled", message, silent_s=silent)
        else:
            message = f"no frame within {silent:.1f} s of reconnect attempt {self._failures}"
            self._emit("reconnect_failed", f"camera {self.source_id!r}: {message}", error=message)
        self._schedule(now, message)

    def _schedule(self, now: float, reason: str) -> None:
        if self._fault_at is None:
            self._fault_at = now
        if self._max_attempts is not None and self._reconnects >= self._max_attempts:
            self._fatal = f"camera {self.source_id!r} gave up after {self._reconnects} reconnect attempts: {reason}"
            self._set_state("failed", self._fatal)
            self._emit("failed", self._fatal, error=reason)
            return
        delay = self._backoff.delay(self._failures, self._rng)
        self._failures += 1
        self._next_attempt_at = now + delay
        message = f"{reason}; reconnecting (attempt {self._failures}, next in {delay:.1f} s)"
        self._set_state("stalled" if self._state == "stalled" else "reconnecting", message)
        self._emit("reconnect_scheduled", message, attempt=self._failures, delay_s=delay)

    def _retry(self, now: float) -> None:
        self._next_attempt_at = None
        with self._lock:
            self._reconnects += 1
        self._set_state("reconnecting")
        self._emit(
            "reconnect_attempt", f"camera {self.source_id!r}: reconnect attempt {self._failures}",
            attempt=self._failures,
        )  # fmt: skip
        self._start_session()
