"""A read-only table of log rows (dicts), with chosen columns; trouble rows are marked in red."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

Column = tuple[str, str]  # (row key, header title)
_TROUBLE = QColor("#8b0000")


class RecordTable(QTableWidget):
    """Shows rows as the decision log returns them; `row_at(r)` gives the dict back."""

    def __init__(
        self,
        columns: Sequence[Column],
        trouble: Callable[[dict[str, Any]], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(0, len(columns), parent)
        self._columns = tuple(columns)
        self._trouble = trouble
        self._rows: list[dict[str, Any]] = []
        self.setHorizontalHeaderLabels([title for _, title in self._columns])
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setWordWrap(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)

    def set_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self._rows = list(rows)
        self.setRowCount(len(self._rows))
        for r, row in enumerate(self._rows):
            bad = self._trouble is not None and self._trouble(row)
            for c, (key, _title) in enumerate(self._columns):
                value = row.get(key)
                item = QTableWidgetItem("" if value is None else str(value))
                item.setToolTip(item.text())
                if bad:
                    item.setForeground(QBrush(_TROUBLE))
                self.setItem(r, c, item)

    def row_at(self, r: int) -> dict[str, Any] | None:
        return self._rows[r] if 0 <= r < len(self._rows) else None

    def row_count(self) -> int:
        return len(self._rows)
