"""The long-lived capture + inference worker: a loop on its own QThread around inspector.frame.live.

The loop reads with a short timeout so it notices a stop request within that time; it emits
InspectionResult records (never tensors), the source's health every half second, and faults as
plain messages. The GUI thread only receives signals; it never waits on the camera or the model.
"""

from __future__ import annotations

import threading
import time
import traceback

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from inspector.errors import CameraError, InspectorError
from inspector.frame.live import LiveCapture
from ui.widgets.workers import keep_alive


class _Loop(QObject):
    result = Signal(object)  # InspectionResult
    health = Signal(object)  # SourceHealth
    fault = Signal(str)
    recovered = Signal()
    ended = Signal()

    def __init__(
        self,
        capture: LiveCapture,
        stop: threading.Event,
        paused: threading.Event,
        read_timeout_s: float,
        retry_s: float,
        health_every_s: float,
    ) -> None:
        super().__init__()
        self._capture, self._stop, self._paused = capture, stop, paused
        self._timeout, self._retry, self._health_every = read_timeout_s, retry_s, health_every_s
        self._opened = False
        capture.warn = self.fault.emit  # a frame the database refused: the window's banner says so

    @Slot()
    def run(self) -> None:
        next_health = 0.0
        try:
            while not self._stop.is_set():
                self._once()
                if time.monotonic() >= next_health:
                    self.health.emit(self._capture.health())
                    next_health = time.monotonic() + self._health_every
        finally:
            try:
                self._capture.close()  # on this thread: the sqlite connection belongs to it
            except Exception as exc:  # noqa: BLE001  shutting down: report, never hang the window
                self.fault.emit(f"the camera or database did not close cleanly: {exc!r}")
            self.ended.emit()

    def _once(self) -> None:
        try:
            if not self._opened:
                self._capture.open()
                self._opened = True
            if self._paused.is_set():  # keep the camera drained, so resuming shows a fresh part
                self._capture.drain(self._timeout)
                return
            result = self._capture.step(self._timeout)
        except CameraError as exc:
            self.fault.emit(self._capture.fault(str(exc), camera=True))
            self._opened = False
            self._stop.wait(self._retry)  # back off; a stop request still ends the wait at once
            return
        except InspectorError as exc:  # e.g. the database refused the user: say so, keep going
            self.fault.emit(self._capture.fault(str(exc), camera=False))
            self._stop.wait(self._retry)
            return
        except Exception as exc:  # noqa: BLE001  a bug must reach the user, not kill the capture thread
            message = f"unexpected error in the capture loop: {exc!r}\n{traceback.format_exc(limit=3)}"
            self.fault.emit(self._capture.fault(message, camera=False))
            self._stop.wait(self._retry)
            return
        if result is not None:
            if self._capture.recovered():
                self.recovered.emit()
            self.result.emit(result)


class CaptureWorker(QObject):
    """Runs a LiveCapture until stop(); connect to the signals, then start()."""

    result = Signal(object)
    health = Signal(object)
    fault = Signal(str)
    recovered = Signal()
    stopped = Signal()

    def __init__(
        self,
        capture: LiveCapture,
        *,
        read_timeout_s: float = 0.25,
        retry_s: float = 1.0,
        health_every_s: float = 0.5,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.capture = capture
        self._stop, self._paused = threading.Event(), threading.Event()
        self._thread = QThread()
        self._loop = _Loop(capture, self._stop, self._paused, read_timeout_s, retry_s, health_every_s)
        self._loop.moveToThread(self._thread)
        self._thread.started.connect(self._loop.run)
        for name in ("result", "health", "fault", "recovered"):
            getattr(self._loop, name).connect(getattr(self, name))
        # Direct: quit from the worker thread itself, so stop() can wait without the GUI event loop.
        self._loop.ended.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self.stopped)

    def start(self) -> None:
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def set_paused(self, paused: bool) -> None:
        """Paused: frames are read and dropped (not ranked, not recorded) until resumed."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def stop(self, wait_ms: int = 3000) -> bool:
        """Ask the loop to end and wait for it (shutdown only); True if the thread ended.

        A read that ignores its timeout (a hung driver) is released by closing the source, which
        every FrameSource allows from another thread.
        """
        self._stop.set()
        if not self._thread.isRunning() or self._thread.wait(wait_ms):
            return True
        source = self.capture.source
        if source is not None:
            source.close()
        if self._thread.wait(wait_ms):
            return True
        keep_alive(self, self.stopped)  # a hung driver: the thread ends when it returns, never destroyed running
        return False

    def wait(self, ms: int = 5000) -> bool:
        """Block until the loop's thread ends (shutdown only)."""
        return self._thread.wait(ms)
