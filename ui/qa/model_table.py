"""The station's registered models, newest first, with their headline figures."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.learning.registry import RegisteredModel

_COLUMNS = ("Model", "State", "Confirm. top-1", "Typed top-1", "Registered (UTC)", "By", "Reason")


def _top1(model: RegisteredModel, name: str) -> str:
    side = model.figures.get("candidate") or model.figures.get("baseline") or {}
    value = (side.get(name) or {}).get("top1")
    return "-" if value is None else f"{value:.3f}"


class ModelTable(QGroupBox):
    """'Models on this station': one row per registered model; one row selectable."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Models on this station", parent)
        self.models: list[RegisteredModel] = []
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setWordWrap(False)  # long reasons elide; the tooltip has them whole
        QVBoxLayout(self).addWidget(self.table)

    def show_models(self, models: list[RegisteredModel], running: str) -> None:
        """List `models` (`running`: the id the station runs) and keep the selection, else select the first."""
        selected = self.selected()
        self.models = models
        self.table.setRowCount(len(models))
        for r, m in enumerate(models):
            state = m.state + (" · running" if m.model_id == running else "")
            cells = (
                m.model_id[:12],
                state,
                _top1(m, "confirmations"),
                _top1(m, "typed_defects"),
                m.registered_at[:16].replace("T", " "),
                m.registered_by,
                m.reason,
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{m.model_id}\n{m.checkpoint}\n{m.reason}")
                self.table.setItem(r, c, item)
        if selected is not None:
            self.select(selected.model_id)
        elif models:
            self.table.selectRow(0)

    def selected(self) -> RegisteredModel | None:
        rows = self.table.selectionModel().selectedRows()
        return self.models[rows[0].row()] if rows and rows[0].row() < len(self.models) else None

    def select(self, model_id: str) -> bool:
        """Select the model with this id; False if it is not listed."""
        for r, m in enumerate(self.models):
            if m.model_id == model_id:
                self.table.selectRow(r)
                return True
        return False

    def active(self) -> str | None:
        """The id of the registry's active model, if one is listed."""
        return next((m.model_id for m in self.models if m.state == "active"), None)
