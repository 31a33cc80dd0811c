"""Asks once before a draft goes into force: the staged changes as a diff, their reasons, one version.

The lines come from the core (inspector.library.draft_diff); this dialog only shows them. Publish
is not the default button, so an Enter meant for the reason field cannot publish by accident.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from inspector.library.draft import Edit
from inspector.library.draft_diff import DiffLine

# Pale tints, not alarm colours: what is added, changed, retired.
_TINT = {"added": QColor("#dcefd8"), "changed": QColor("#fff6d5"), "retired": QColor("#ececec")}


class PublishConfirm(QDialog):
    """'Publish these N changes as library version vK?' with Publish / Cancel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Publish the library draft")
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.heading.setStyleSheet("font-weight: bold;")
        self.changes = QListWidget()
        self.changes.setWordWrap(True)
        self.reasons = QListWidget()
        self.reasons.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.publish_button = self.buttons.addButton("Publish", QDialogButtonBox.ButtonRole.AcceptRole)
        self.publish_button.setAutoDefault(False)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(
            QLabel("What changes (+ added, ~ changed, \u2212 retired; retired parts stay in the history):")
        )
        layout.addWidget(self.changes, 3)
        layout.addWidget(QLabel("The reasons recorded with it:"))
        layout.addWidget(self.reasons, 2)
        layout.addWidget(self.buttons)
        self.resize(640, 480)

    def set_draft(self, lines: Sequence[DiffLine], edits: Sequence[Edit], base: int) -> None:
        """Fill the dialog for a draft begun on version `base`."""
        n = len(edits)
        self.heading.setText(
            f"Publish {n} staged change{'s' if n != 1 else ''} as ONE library version, v{base + 1}?"
            f" It replaces v{base} and is in force for the next part."
        )
        self.publish_button.setText(f"Publish as v{base + 1}")
        self.changes.clear()
        for line in lines:
            item = QListWidgetItem(str(line))
            item.setBackground(QBrush(_TINT[line.kind]))
            self.changes.addItem(item)
        self.reasons.clear()
        for i, edit in enumerate(edits, start=1):
            self.reasons.addItem(f"{i}. {edit.describe()}: {edit.reason}")

    def lines(self) -> list[str]:
        """The diff as shown (for tests and screenshots)."""
        return [self.changes.item(i).text() for i in range(self.changes.count())]
