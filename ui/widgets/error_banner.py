"""A non-blocking error banner at the top of the window: the latest fault, until dismissed or cleared.

Never a dialog: the operator keeps working while it shows. Esc-free on purpose (Esc belongs to
the operator view's inline edit); the Dismiss button or a recovery clears it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from ui.widgets import palette


class ErrorBanner(QWidget):
    """Red strip with the message and a count of repeats; hidden when there is nothing to say."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        bg, fg = palette.TROUBLE["fault"]
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(f"ErrorBanner {{ background: {bg}; }} QLabel {{ color: {fg}; font-weight: bold; }}")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dismiss = QPushButton("Dismiss")
        self.dismiss.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # never steal the operator's keyboard
        self.dismiss.clicked.connect(self.clear)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.dismiss)
        self.message, self.repeats = "", 0
        self.setVisible(False)

    def show_error(self, message: str) -> None:
        """Show `message`; the same message again only counts up."""
        first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
        self.repeats = self.repeats + 1 if first_line == self.message else 1
        self.message = first_line
        self.label.setText(first_line + (f"  (×{self.repeats})" if self.repeats > 1 else ""))
        self.label.setToolTip(message)
        self.setVisible(True)

    def clear(self) -> None:
        self.message, self.repeats = "", 0
        self.setVisible(False)
