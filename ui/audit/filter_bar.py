"""The audit filter: period (UTC, ISO text), operator, label and proposed verdict."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from inspector.library.labels import DISPOSITIONS
from inspector.store.audit import AuditFilter

ANY = "(any)"


def _combo(items: Sequence[str]) -> QComboBox:
    combo = QComboBox()
    combo.addItems([ANY, *items])
    return combo


class AuditFilterBar(QWidget):
    """Builds an AuditFilter; times are typed as ISO 8601 in UTC (exact, and what the records hold)."""

    applied = Signal()

    def __init__(self, operators: Sequence[str], labels: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.from_edit, self.to_edit = QLineEdit(), QLineEdit()
        for edit, example in ((self.from_edit, "2026-05-01"), (self.to_edit, "2026-05-09T14:30Z")):
            edit.setPlaceholderText(f"e.g. {example}")
            edit.setToolTip("UTC, ISO 8601; empty = no bound. 'To' is exclusive.")
            edit.returnPressed.connect(self.applied)
        self.operator = _combo(operators)
        self.label = _combo(labels)
        self.verdict = _combo(DISPOSITIONS)
        self.apply_button = QPushButton("Apply filter")
        self.apply_button.clicked.connect(self.applied)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for title, widget in (
            ("From (UTC):", self.from_edit),
            ("To (UTC):", self.to_edit),
            ("Operator:", self.operator),
            ("Label:", self.label),
            ("Verdict:", self.verdict),
        ):
            layout.addWidget(QLabel(title))
            layout.addWidget(widget)
        layout.addWidget(self.apply_button)

    def current(self, limit: int = 1000) -> AuditFilter:
        """The filter as entered (times are checked by the core when the filter is applied)."""

        def value(combo: QComboBox) -> str | None:
            return None if combo.currentText() == ANY else combo.currentText()

        return AuditFilter(
            self.from_edit.text().strip() or None,
            self.to_edit.text().strip() or None,
            value(self.operator),
            value(self.label),
            value(self.verdict),
            limit,
        )
