"""The staged library changes: nothing here is in force until it is published."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QListWidget, QPushButton, QVBoxLayout, QWidget

from inspector.library.draft import Edit


class DraftBox(QGroupBox):
    """Lists the draft's edits (with their reasons) and offers preview, publish, remove, discard."""

    remove_requested = Signal(int)
    discard_requested = Signal()
    preview_requested = Signal()
    publish_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Draft: not in force until published", parent)
        self.edits_list = QListWidget()
        self.edits_list.setWordWrap(True)
        self.remove_button = QPushButton("Remove change")
        self.discard_button = QPushButton("Discard draft")
        self.preview_button = QPushButton("Preview impact")
        self.publish_button = QPushButton("Publish")
        self.remove_button.clicked.connect(self._remove)
        self.discard_button.clicked.connect(self.discard_requested)
        self.preview_button.clicked.connect(self.preview_requested)
        self.publish_button.clicked.connect(self.publish_requested)
        self.edits_list.currentRowChanged.connect(lambda _row: self._update_buttons())
        buttons = QHBoxLayout()
        for button in (self.remove_button, self.discard_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        for button in (self.preview_button, self.publish_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.edits_list)
        layout.addLayout(buttons)
        self._can_edit = False
        self.set_edits([], can_edit=False)

    def set_edits(self, edits: Sequence[Edit], can_edit: bool) -> None:
        """Show the staged edits; buttons follow the role and whether there is anything staged."""
        self._can_edit = can_edit
        self.edits_list.clear()
        for i, edit in enumerate(edits, start=1):
            self.edits_list.addItem(f"{i}. {edit.describe()}  (reason: {edit.reason})")
        if not edits:
            self.edits_list.addItem("No staged changes." if can_edit else "Your role may not change the library.")
        self._count = len(edits)
        self.publish_button.setText(f"Publish {self._count} change{'s' if self._count != 1 else ''}")
        self._update_buttons()

    def _update_buttons(self) -> None:
        staged = self._can_edit and self._count > 0
        for button in (self.discard_button, self.preview_button, self.publish_button):
            button.setEnabled(staged)
        self.remove_button.setEnabled(staged and 0 <= self.edits_list.currentRow() < self._count)

    def _remove(self) -> None:
        row = self.edits_list.currentRow()
        if 0 <= row < self._count:
            self.remove_requested.emit(row)
