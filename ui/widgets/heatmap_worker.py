"""Grad-CAM on request, off the capture path: one Task at a time, only the latest request per slot.

The operator view asks for the selected candidate's heatmap ("main") and the "#1 versus #2"
contrast map ("contrast"). While one runs, a newer request for the same slot replaces an older
waiting one: a heatmap of a part that has already left the screen is never computed.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from inspector.errors import InspectorError
from inspector.frame.explain import Heatmap, explain_candidate
from inspector.frame.records import InspectionResult
from inspector.station import Station
from ui.widgets.workers import Task, keep_alive


@dataclass(frozen=True)
class HeatmapDone:
    """A computed heatmap, what it was asked for, and how long it took."""

    key: Hashable
    heatmap: Heatmap
    ms: float


def _explain(
    _progress, _cancelled, station: Station, result: InspectionResult, rank: int, versus: int | None, key: Hashable
) -> HeatmapDone:
    t0 = time.perf_counter()
    try:
        heat = explain_candidate(station, result, rank, versus)
    except ImportError as exc:  # models/explain.py (or grad-cam) not installed in this build
        raise InspectorError(f"heatmap unavailable: Grad-CAM is not installed ({exc})") from exc
    except (KeyError, ValueError) as exc:  # the part's label left the library since it was ranked
        raise InspectorError(f"heatmap unavailable: the library changed since this part was ranked ({exc})") from exc
    return HeatmapDone(key, heat, 1000 * (time.perf_counter() - t0))


class HeatmapWorker(QObject):
    """Queue of at most one waiting request per slot; signals carry HeatmapDone or a message."""

    ready = Signal(object)  # HeatmapDone
    unavailable = Signal(object, str)  # key, message

    def __init__(self, station: Station, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self._pending: dict[str, tuple] = {}
        self._task: Task | None = None
        self._key: Hashable = None  # the running task's key (one task at a time)
        self._stopped = False

    def request(self, slot: str, key: Hashable, result: InspectionResult, rank: int, versus: int | None = None) -> None:
        """Ask for a heatmap; `key` comes back with the answer so the view can drop stale ones."""
        if self._stopped:
            return
        self._pending[slot] = (result, rank, versus, key)
        if self._task is None:
            self._start_next()

    def busy(self) -> bool:
        return self._task is not None or bool(self._pending)

    def stop(self, wait_ms: int = 0) -> bool:
        """Drop waiting requests; a running one finishes on its own (held by ui.widgets.workers.keep_alive:
        a heatmap touches neither the database nor the session, so it may finish unobserved).
        True if nothing is left running after `wait_ms`."""
        self._stopped = True
        self._pending.clear()
        task, self._task = self._task, None
        if task is None:
            return True
        finished = task.wait(wait_ms)
        for signal in (task.finished, task.failed, task.done):
            # Its answer has nobody to go to, even when it has just finished: its signals may still be
            # queued for this thread, and the view may be deleted before they arrive.
            signal.disconnect()
        if not finished:
            keep_alive(task, task.done)
        return finished

    def _start_next(self) -> None:
        if self._stopped or not self._pending:
            return
        slot = "main" if "main" in self._pending else next(iter(self._pending))
        result, rank, versus, key = self._pending.pop(slot)
        task = Task(_explain, self.station, result, rank, versus, key)
        self._key = key
        task.finished.connect(self.ready)
        task.failed.connect(self._failed)  # a bound slot: Qt drops it with this object, a lambda it would not
        task.done.connect(self._task_done)
        self._task = task
        task.start()

    def _failed(self, message: str) -> None:
        self.unavailable.emit(self._key, message)

    def _task_done(self) -> None:
        # Start the next one from the event loop, not inside the finished task's own signal; the
        # finished task stays referenced until then, so it is not deleted while it emits.
        self._last, self._task = self._task, None
        QTimer.singleShot(0, self._start_next)
