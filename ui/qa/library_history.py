"""The library's version history: who changed it, when (UTC) and why, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

_COLUMNS = ("Version", "When (UTC)", "Who", "Why")


class LibraryHistory(QTableWidget):
    """A read-only table of LibraryStore.history()."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(_COLUMNS), parent)
        self.setHorizontalHeaderLabels(_COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setWordWrap(False)
        header = self.horizontalHeader()
        for column in range(3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)

    def set_history(self, rows: Sequence[dict[str, Any]]) -> None:
        """Show the versions, newest first."""
        ordered = list(reversed(rows))
        self.setRowCount(len(ordered))
        for r, row in enumerate(ordered):
            for c, value in enumerate((f"v{row['version']}", row["recorded_at"], row["user"], row["reason"])):
                item = QTableWidgetItem(str(value))
                item.setToolTip(str(value))
                self.setItem(r, c, item)
