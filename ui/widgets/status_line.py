"""A one-line, non-blocking message under a view: plain for news, red-bordered for trouble.

Used instead of modal dialogs: errors from the core stay visible until the next action, and
colour appears only when something is wrong (the report-by-exception convention).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from inspector.errors import InspectorError
from ui.context import AppContext

_PLAIN = "QLabel { color: #202020; padding: 4px; }"
_TROUBLE = (
    "QLabel { color: #7a0000; background: #fff0f0; border: 1px solid #c00000; border-radius: 3px; padding: 4px; }"
)


class StatusLine(QLabel):
    """Shows the last outcome of an action; selectable so a message can be copied into a report."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.is_error = False
        self.show_info("")

    def show_info(self, text: str) -> None:
        """A neutral message (or clear it with '')."""
        self.is_error = False
        self.setStyleSheet(_PLAIN)
        self.setText(text)

    def show_error(self, text: str) -> None:
        """A problem the user must see; it stays until the next message."""
        self.is_error = True
        self.setStyleSheet(_TROUBLE)
        self.setText(text)

    def show_failure(self, context: AppContext, where: str, text: str) -> None:
        """A failed background task: shown, and logged as a 'ui_error' event (faults belong in the trail)."""
        try:
            context.station.log.record_event("ui_error", {"where": where, "message": text[:1000]}, context.user)
        except InspectorError as exc:  # say so rather than lose it silently
            text += f" (this failure could not be logged: {exc})"
        self.show_error(text)
