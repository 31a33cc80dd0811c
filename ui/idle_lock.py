"""Idle lock: after a configurable time without keyboard or mouse input, sign the user out.

The time comes from QSettings ("security/idle_lock_s", default 600 s; 0 turns the lock off).
Camera frames are not activity: a station nobody touches for that long is locked.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSettings, QTimer, Signal
from PySide6.QtWidgets import QApplication

DEFAULT_IDLE_S = 600
_ACTIVITY = {
    QEvent.Type.KeyPress,
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseMove,
    QEvent.Type.Wheel,
    QEvent.Type.TouchBegin,
}


def idle_seconds(settings: QSettings) -> float:
    """The configured idle time in seconds (0 = never lock)."""
    try:
        return max(0.0, float(settings.value("security/idle_lock_s", DEFAULT_IDLE_S)))
    except (TypeError, ValueError):  # a hand-edited settings file: fall back to the safe default
        return float(DEFAULT_IDLE_S)


class IdleLock(QObject):
    """Watches application-wide input while armed; emits `expired` once when the time runs out."""

    expired = Signal()

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self._timer = QTimer(self, singleShot=True, timeout=self._expire)
        self._armed = False

    def arm(self) -> None:
        """Start watching (a user signed in)."""
        seconds = idle_seconds(self.settings)
        if seconds <= 0:
            return
        self._timer.setInterval(int(seconds * 1000))
        if not self._armed:
            QApplication.instance().installEventFilter(self)
            self._armed = True
        self._timer.start()

    def disarm(self) -> None:
        """Stop watching (signed out, or the window closes)."""
        self._timer.stop()
        if self._armed:
            QApplication.instance().removeEventFilter(self)
            self._armed = False

    @property
    def armed(self) -> bool:
        return self._armed

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in _ACTIVITY:
            self._timer.start()  # restart: activity pushes the lock back
        return False

    def _expire(self) -> None:
        self.disarm()
        self.expired.emit()
