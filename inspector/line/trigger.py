"""Trigger in: a PLC or light barrier asks for a capture (MQTT message, OPC UA write, or a call).

`TriggerQueue` is the thread-safe meeting point: the MQTT client's thread and the OPC UA server's
thread `put()` triggers; the capture thread takes them through `TriggeredSource`, a FrameSource
wrapper that reads the camera only while a trigger is pending and tags the frame with the part
(Frame.part -> a `part_identified` event in the inspection's commit). A trigger that gets no frame
within its deadline becomes a `trigger_missed` event. Events are emitted on the capture thread
(the one that owns a database connection), never on the network threads.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from inspector.capture.base import EventSink, FrameSource, SourceHealth
from inspector.errors import InspectorError
from inspector.frame.records import Frame, PartTag, utc_now

_ID = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,127}$")  # printable ASCII, 1-128 characters, no leading blank
MAX_PENDING = 1000  # a runaway trigger source must not grow memory without bound


class TriggerError(InspectorError):
    """A trigger was refused (no or malformed part id, too many pending)."""


@dataclass(frozen=True)
class Trigger:
    part_id: str
    product_id: str
    origin: str  # "mqtt", "opcua", "api"
    at: datetime
    due: float = field(compare=False)  # time.monotonic() by which a frame must have arrived


class TriggerQueue:
    """Pending triggers in arrival order, plus the events (missed, refused) waiting to be logged."""

    def __init__(self, deadline_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.deadline_s, self._clock = deadline_s, clock
        self._pending: deque[Trigger] = deque()
        self._events: deque[tuple[str, dict[str, Any]]] = deque(maxlen=MAX_PENDING)
        self._cond = threading.Condition()
        self.received = self.missed = self.refused = 0

    def put(self, part_id: str, product_id: str = "", origin: str = "api") -> Trigger:
        """Queue a capture request; TriggerError (also queued as a trigger_refused event) when malformed."""
        with self._cond:
            problem = _problem(part_id, product_id, len(self._pending))
            if problem:
                self.refused += 1
                self._events.append(
                    ("trigger_refused", {"origin": origin, "problem": problem, "part_id": str(part_id)[:128]})
                )
                raise TriggerError(problem)
            trigger = Trigger(part_id, product_id, origin, utc_now(), self._clock() + self.deadline_s)
            self._pending.append(trigger)
            self.received += 1
            self._cond.notify_all()
            return trigger

    def refuse(self, origin: str, problem: str) -> None:
        """Note a trigger message that could not even be read (bad JSON ...) as a trigger_refused event."""
        with self._cond:
            self.refused += 1
            self._events.append(("trigger_refused", {"origin": origin, "problem": problem[:300]}))

    def next(self, timeout: float) -> Trigger | None:
        """The oldest live trigger, waiting up to `timeout` s; expired ones become trigger_missed events."""
        end = self._clock() + max(0.0, timeout)
        with self._cond:
            while True:
                self._expire()
                if self._pending:
                    return self._pending[0]
                left = end - self._clock()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def take(self, trigger: Trigger) -> None:
        """The trigger got its frame."""
        with self._cond:
            if self._pending and self._pending[0] is trigger:
                self._pending.popleft()

    def expire(self) -> None:
        """Turn every trigger past its deadline into a trigger_missed event."""
        with self._cond:
            self._expire()

    def _expire(self) -> None:
        now = self._clock()
        while self._pending and self._pending[0].due <= now:
            t = self._pending.popleft()
            self.missed += 1
            self._events.append(
                (
                    "trigger_missed",
                    {
                        "part_id": t.part_id,
                        "product_id": t.product_id,
                        "origin": t.origin,
                        "triggered_at": t.at.isoformat(),
                        "deadline_s": self.deadline_s,
                    },
                )
            )

    def remaining(self, trigger: Trigger) -> float:
        """Seconds left before `trigger` is missed."""
        return max(0.0, trigger.due - self._clock())

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """Take the events not yet logged (call on the thread that logs)."""
        with self._cond:
            out = list(self._events)
            self._events.clear()
            return out


def _problem(part_id: Any, product_id: Any, pending: int) -> str:
    if not isinstance(part_id, str) or not _ID.match(part_id):
        return f"part id {str(part_id)[:40]!r} must be 1-128 printable ASCII characters"
    if not isinstance(product_id, str) or (product_id and not _ID.match(product_id)):
        return f"product id {str(product_id)[:40]!r} must be up to 128 printable ASCII characters"
    if pending >= MAX_PENDING:
        return f"{MAX_PENDING} triggers are already waiting for frames; is the camera delivering?"
    return ""


class TriggeredSource(FrameSource):
    """A source read only on trigger: each frame it returns carries the trigger's part (Frame.part).

    With no trigger pending the camera is not read at all (a watched folder keeps its files); the
    frame paired with a trigger is the next one the camera delivers after it. `on_event` receives
    trigger_missed / trigger_refused on the reading thread.
    """

    def __init__(self, inner: FrameSource, triggers: TriggerQueue, on_event: EventSink | None = None) -> None:
        super().__init__(inner.source_id)
        self.inner, self.triggers, self.on_event = inner, triggers, on_event
        self.backend = inner.backend
        digest = getattr(inner, "digest", None)
        if digest is not None:
            self.digest = digest  # a watched folder names files by their bytes
        requeue = getattr(inner, "requeue", None)
        if requeue is not None:
            self.requeue = requeue

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def health(self) -> SourceHealth:
        return self.inner.health()

    @property
    def is_open(self) -> bool:
        return self.inner.is_open

    def read(self, timeout: float) -> Frame | None:
        try:
            trigger = self.triggers.next(timeout)
            if trigger is None:
                return None
            wait = min(max(0.0, timeout), self.triggers.remaining(trigger))
            frame = self.inner.read(wait)
            if frame is None:
                self.triggers.expire()
                return None
            self.triggers.take(trigger)
            tag = PartTag(trigger.part_id, trigger.product_id, trigger.origin, trigger.at)
            return replace(frame, part=tag)
        finally:
            self._emit()

    def _emit(self) -> None:
        for kind, detail in self.triggers.events():
            if self.on_event is not None:
                self.on_event(kind, {"source_id": self.source_id, **detail})
