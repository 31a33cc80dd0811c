"""Long work off the GUI thread: a QObject worker on a QThread per task.

A task is a plain function `fn(progress, cancelled, *args)`: it reports with
`progress(done, total, text)`, checks `cancelled()` between steps, and returns a record (never a
tensor). The GUI thread only ever receives signals, so it never waits on the model, the camera or
the database.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, SignalInstance, Slot

from inspector.errors import InspectorError

TaskFn = Callable[..., Any]


class _Worker(QObject):
    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, fn: TaskFn, args: tuple, cancel: threading.Event) -> None:
        super().__init__()
        self._fn, self._args, self._cancel = fn, args, cancel

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn(self.progress.emit, self._cancel.is_set, *self._args)
        except InspectorError as exc:  # an expected fault: the message says what to do
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001  a bug must reach the user and the log, not kill the thread
            self.failed.emit(f"unexpected error: {exc!r}\n{traceback.format_exc(limit=3)}")
        else:
            if self._cancel.is_set():
                self.cancelled.emit()
            else:
                self.finished.emit(result)


class Task(QObject):
    """One background run of `fn`; connect to its signals, then start(). cancel() asks it to stop."""

    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()  # after any of finished / failed / cancelled, once the thread has stopped

    def __init__(self, fn: TaskFn, *args: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cancel = threading.Event()
        self._thread = QThread()
        self._worker = _Worker(fn, args, self._cancel)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        for name in ("progress", "finished", "failed", "cancelled"):
            getattr(self._worker, name).connect(getattr(self, name))
        for end in (self._worker.finished, self._worker.failed, self._worker.cancelled):
            # Direct: QThread.quit is thread-safe, and a queued call would wait for the GUI
            # thread's event loop, so a wait() on the GUI thread could never see the thread end.
            end.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self.done)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, ms: int = 5000) -> bool:
        """Block until the thread ends (tests and shutdown only; never in a GUI handler)."""
        return self._thread.wait(ms)


class _Waitable(Protocol):
    def wait(self, ms: int = ...) -> bool: ...


# Workers whose QThread may outlive the view that started them (sign-out, a closed dialog, a
# shutdown that timed out): referenced here until their thread ends, so Qt never destroys a
# running QThread; the app waits for all of them at exit.
_KEPT: list[_Waitable] = []


def keep_alive(worker: _Waitable, done: SignalInstance | None = None) -> None:
    """Hold `worker` until `done` fires (None: until the process ends); idempotent."""
    if any(w is worker for w in _KEPT):
        return
    _KEPT.append(worker)
    if done is not None:
        # Released from the event loop, not inside the worker's own signal (no deletion mid-emit).
        done.connect(lambda: QTimer.singleShot(0, lambda: release(worker)))


def release(worker: _Waitable) -> None:
    """Stop holding `worker` (its thread has ended)."""
    _KEPT[:] = [w for w in _KEPT if w is not worker]


def is_kept(worker: object) -> bool:
    """Whether `worker` is still held."""
    return any(w is worker for w in _KEPT)


def wait_for_workers(ms: int = 60_000) -> bool:
    """At exit: wait for every held worker's thread; True if none is left running."""
    return all(worker.wait(ms) for worker in list(_KEPT))
