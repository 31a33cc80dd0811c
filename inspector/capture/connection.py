"""One connection of ResilientSource to its inner source, from factory() to abandonment.

A session turns the inner source into a stream of items: ("connected", source_id), ("frame",
Frame), ("error", message) for a fault worth a reconnect, ("fatal", message) for a factory that
cannot build a source at all (a config fault: retrying would only hide it).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from inspector.capture.base import FrameSource
from inspector.errors import CameraError

Item = tuple[str, Any]
Counters = tuple[int, int, int, str]  # invalid, dropped, queue peak, inner backend


def _build(factory: Callable[[], FrameSource]) -> tuple[FrameSource | None, Item]:
    """Create and open one inner source; report the outcome as an item."""
    try:
        inner = factory()
    except CameraError as exc:
        return None, ("error", str(exc))
    except Exception as exc:  # noqa: BLE001  any other failure to *build* is a configuration fault
        return None, ("fatal", f"{type(exc).__name__}: {exc}")
    try:
        inner.open()
    except CameraError as exc:
        return inner, ("error", str(exc))
    return inner, ("connected", inner.source_id)


def _close_quietly(inner: FrameSource | None) -> None:
    if inner is None:
        return
    try:
        inner.close()
    except Exception:  # noqa: BLE001, S110  closing a lost device may fail; it is already abandoned
        pass


def _inner_error(inner: FrameSource | None) -> str:
    return "" if inner is None else inner.health().last_error


def _inner_counters(inner: FrameSource | None) -> tuple[int, int, str]:
    if inner is None:
        return 0, 0, ""
    h = inner.health()
    return h.frames_invalid, h.frames_dropped, h.backend


class InlineSession:
    """Opens and reads the inner source on the caller's thread (deterministic; no hang guard)."""

    def __init__(self, factory: Callable[[], FrameSource]) -> None:
        self._factory = factory
        self._inner: FrameSource | None = None
        self._status: deque[Item] = deque()

    def start(self) -> None:
        self._inner, outcome = _build(self._factory)
        self._status.append(outcome)

    def poll(self, timeout: float, frames: bool = True) -> Item | None:
        if self._status:
            return self._status.popleft()
        if not frames or self._inner is None:
            return None
        try:
            frame = self._inner.read(timeout)
        except CameraError as exc:
            return ("error", str(exc))
        return None if frame is None else ("frame", frame)

    def counters(self) -> Counters:
        invalid, dropped, backend = _inner_counters(self._inner)
        return invalid, dropped, 0, backend

    def last_error(self) -> str:
        """The inner source's last error message ("" when none)."""
        return _inner_error(self._inner)

    def abandon(self) -> None:
        _close_quietly(self._inner)


class ThreadSession:
    """Opens and reads the inner source in a daemon thread feeding a bounded, drop-oldest queue.

    A thread stuck inside the inner source (a hung driver call) is abandoned, never joined.
    """

    def __init__(self, factory: Callable[[], FrameSource], queue_size: int, poll_s: float) -> None:
        self._factory, self._poll_s = factory, poll_s
        self._cond = threading.Condition()
        self._frames: deque[Any] = deque()
        self._size = max(1, queue_size)
        self._status: deque[Item] = deque()
        self._stop = threading.Event()
        self._inner: FrameSource | None = None
        self.dropped = self.peak = 0
        self._thread = threading.Thread(target=self._run, name="resilient-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _post(self, item: Item) -> None:
        with self._cond:
            self._status.append(item)
            self._cond.notify_all()

    def _run(self) -> None:
        inner, outcome = _build(self._factory)
        self._inner = inner
        if self._stop.is_set():  # abandoned while opening
            _close_quietly(inner)
            return
        self._post(outcome)
        if outcome[0] != "connected" or inner is None:
            return
        try:
            while not self._stop.is_set():
                frame = inner.read(self._poll_s)
                if frame is not None and not self._stop.is_set():
                    self._push(frame)
        except CameraError as exc:
            self._post(("error", str(exc)))
        except Exception as exc:  # noqa: BLE001  an inner bug must reach the watchdog, not kill a thread silently
            self._post(("error", f"{type(exc).__name__} in the camera driver: {exc}"))
        finally:
            _close_quietly(inner)

    def _push(self, frame: Any) -> None:
        with self._cond:
            if len(self._frames) >= self._size:
                self._frames.popleft()  # drop the oldest: the operator needs the newest part
                self.dropped += 1
            self._frames.append(frame)
            self.peak = max(self.peak, len(self._frames))
            self._cond.notify_all()

    def poll(self, timeout: float, frames: bool = True) -> Item | None:
        def ready() -> bool:
            return bool(self._status) or (frames and bool(self._frames))

        with self._cond:
            self._cond.wait_for(ready, timeout=timeout)
            if self._status and (self._status[0][0] == "connected" or not frames or not self._frames):
                return self._status.popleft()
            if frames and self._frames:
                return ("frame", self._frames.popleft())
            return None

    def counters(self) -> Counters:
        invalid, dropped, backend = _inner_counters(self._inner)
        return invalid, dropped + self.dropped, self.peak, backend

    def last_error(self) -> str:
        """The inner source's last error message ("" when none)."""
        return _inner_error(self._inner)

    def abandon(self) -> None:
        self._stop.set()
        inner = self._inner
        if inner is not None:
            # Closing may itself hang on a vanished device (pypylon#235): do it off the caller's thread.
            threading.Thread(target=_close_quietly, args=(inner,), name="resilient-closer", daemon=True).start()
