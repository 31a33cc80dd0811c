"""Keeps a running station on the registry's active model, without stopping the line.

A promotion or rollback (from this window's QA view, or `inspector model promote|rollback` on the
same database) changes the registry; `check()` notices it with one small query, loads the new model
and compiles the library for it in a Task, then swaps it in on the GUI thread (Station.adopt: one
assignment, so the capture thread ranks each frame wholly with the old or wholly with the new
model). A model that fails to load is reported once and the station keeps the model it had.
It also follows the library in force: `refresh_library()` (the window's poll, a QA publish) and a
model switch emit `library_changed(version)`, so every view shows the version the station ranks with.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from inspector.errors import InspectorError
from inspector.learning.registry import ModelRegistry
from inspector.station import Station
from inspector.station_model import ModelChoice, ModelState
from ui.widgets.workers import Task


def _prepare(_progress, _cancelled, station: Station, choice: ModelChoice) -> ModelState:
    # Off the GUI thread: seconds of loading and hashing; prepare_model opens its own connection.
    return station.prepare_model(choice.ref, model_id=choice.model_id)


class ModelFollower(QObject):
    """One per station: switches it to the registry's active model when that changes."""

    switching = Signal(str)  # model id being loaded
    switched = Signal(str)  # model id now in use
    failed = Signal(str)  # why the station kept its model (already logged as an event)
    library_changed = Signal(int)  # the library version the station now ranks with

    def __init__(self, station: Station, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self._task: Task | None = None
        self._choice: ModelChoice | None = None
        # A model that failed is not retried on every poll, only after the next registry decision
        # (e.g. a rollback and a new promotion once the file is restored).
        self._failed_at: int | None = None
        self._revision = 0
        self._stopped = False

    @property
    def task(self) -> Task | None:
        """The running (or last) load."""
        return self._task

    def busy(self) -> bool:
        return self._task is not None and self._task.is_running()

    def check(self) -> bool:
        """Start switching if the registry's active model is not the one in use; True if started."""
        if self._stopped or self.busy():
            return False
        try:
            revision = ModelRegistry(self.station.log).revision() if self.station.log is not None else 0
            choice = self.station.registry_choice()
        except InspectorError as exc:
            self.failed.emit(f"cannot read the model registry: {exc}")
            return False
        if choice is None or revision == self._failed_at:
            return False
        self._revision = revision
        self._choice = choice
        self._task = Task(_prepare, self.station, choice, parent=self)
        self._task.finished.connect(self._adopt)
        self._task.failed.connect(self._failed)
        self._task.start()
        self.switching.emit(choice.model_id or choice.ref)
        return True

    def refresh_library(self) -> bool:
        """Pick up a newly published library version (GUI thread); True and `library_changed` if it changed."""
        changed = self.station.refresh_library()
        if changed:
            self.library_changed.emit(self.station.index.library_version)
        return changed

    def stop(self, wait_ms: int = 60_000) -> bool:
        """Shutdown: finish a running load and drop its result; True if nothing is left running."""
        self._stopped = True
        return self._task is None or self._task.wait(wait_ms)

    def _adopt(self, state: ModelState) -> None:
        if self._stopped:
            return
        before = self.station.index.library_version
        try:
            self.station.adopt(state, reason="the registry's active model changed (promotion or rollback)")
        except InspectorError as exc:
            self._failed(str(exc))
            return
        self._failed_at = None
        self.switched.emit(state.model_id)
        if self.station.index.library_version != before:  # a version published while the model loaded
            self.library_changed.emit(self.station.index.library_version)

    def _failed(self, message: str) -> None:
        choice = self._choice
        if choice is None or self._stopped:
            return
        self._failed_at = self._revision
        text = (
            f"the station keeps model {self.station.model_id[:12]}: the active model {str(choice.model_id)[:12]}"
            f" could not be loaded ({message}); restore its checkpoint or roll back to an earlier model"
        )
        try:
            self.station.record_switch_failure(choice.ref, choice.model_id, message)
        except InspectorError as exc:
            text += f" (not logged: {exc})"
        self.failed.emit(text)
