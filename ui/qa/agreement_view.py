"""Agreement figures from operator decisions: per-label table, bar chart and confusion table.

The figures come from inspector.learning.agreement over a chosen period; this view only lays them out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.learning.agreement import AgreementReport, compute_agreement
from ui.context import AppContext
from ui.qa.agreement_chart import AgreementChart, ChartRow
from ui.widgets.status_line import StatusLine

PERIODS: dict[str, timedelta | None] = {
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "All time": None,
}
_COLUMNS = ("Label", "Answers", "Top-1", "Top-3", "Model #1", "Precision")
_TIPS = (
    "The operator's answer",
    "Answered inspections with this label",
    "Share the model ranked #1",
    "Share the model ranked among its first three",
    "Answered inspections the model ranked this label #1",
    "Of those, the share the operators confirmed",
)
_CONFUSED = QColor("#fde9c8")  # off-diagonal counts: where the model and the operators disagree


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _table(columns: int) -> QTableWidget:
    table = QTableWidget(0, columns)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table


class AgreementView(QWidget):
    """How often the model's #1 (and top 3) held the label the operators chose, per label."""

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.period = QComboBox()
        self.period.addItems(list(PERIODS))
        self.period.setCurrentText("Last 30 days")
        self.refresh_button = QPushButton("Refresh")
        self.summary = StatusLine()
        self.labels_table = _table(len(_COLUMNS))
        self.labels_table.setHorizontalHeaderLabels(_COLUMNS)
        for column, tip in enumerate(_TIPS):
            self.labels_table.horizontalHeaderItem(column).setToolTip(tip)
        self.labels_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.labels_table.verticalHeader().setVisible(False)
        self.chart = AgreementChart()
        self.confusion = _table(0)
        caption = QLabel(
            "Confusion: rows are the model's #1 label, columns the operator's answer (corrections"
            " applied; rejected images left out)."
        )
        caption.setWordWrap(True)

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Period:"))
        controls.addWidget(self.period)
        controls.addWidget(self.refresh_button)
        controls.addStretch(1)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.labels_table)
        top.addWidget(self.chart)
        top.setStretchFactor(0, 1)
        top.setStretchFactor(1, 1)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(caption)
        bottom_layout.addWidget(self.confusion)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)

        self.refresh_button.clicked.connect(self.refresh)
        self.period.currentTextChanged.connect(lambda _text: self.refresh())
        self.report: AgreementReport | None = None
        self.refresh()

    def refresh(self) -> None:
        """Recompute the figures for the chosen period."""
        span = PERIODS[self.period.currentText()]
        since = None if span is None else datetime.now(UTC) - span
        try:
            report = compute_agreement(
                self.context.station.log, from_ts=since, library=self.context.station.index.library
            )
        except InspectorError as exc:
            self.summary.show_error(f"Cannot compute agreement: {exc}")
            return
        self.report = report
        self._show(report)

    def _show(self, report: AgreementReport) -> None:
        if report.answered:
            text = (
                f"{report.answered} answered inspections: top-1 agreement {_pct(report.top1_rate)},"
                f" top-3 {_pct(report.top3_rate)}; {report.none_of_these} 'none of these',"
                f" {report.rejected} rejected images left out, {report.unanswered} without an answer."
            )
        else:
            text = "No answered inspections in this period."
        self.summary.show_info(
            text + (" Only the first inspections of the period were read." if report.truncated else "")
        )
        table = self.labels_table
        table.setRowCount(len(report.labels))
        for r, row in enumerate(report.labels):
            values = (
                row.label_name,
                str(row.answered),
                _pct(row.top1_rate),
                _pct(row.top3_rate),
                str(row.proposed),
                _pct(row.precision),
            )
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(f"{row.label_name} [{row.label_id}]")
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(r, c, item)
        self.chart.set_rows(
            [
                ChartRow(row.label_name, row.top1_rate, row.top3_rate, row.answered)
                for row in report.labels
                if row.answered
            ]
        )
        self._show_confusion(report)

    def _show_confusion(self, report: AgreementReport) -> None:
        cm, names = report.confusion, report.names
        self.confusion.setRowCount(len(cm.rows))
        self.confusion.setColumnCount(len(cm.columns))
        self.confusion.setVerticalHeaderLabels([f"model: {names.get(r, r)}" for r in cm.rows])
        self.confusion.setHorizontalHeaderLabels([names.get(c, c) for c in cm.columns])
        for r, model in enumerate(cm.rows):
            for c, answer in enumerate(cm.columns):
                n = cm.counts[r][c]
                item = QTableWidgetItem(str(n) if n else "")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if model == answer:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                elif n:
                    item.setBackground(QBrush(_CONFUSED))
                self.confusion.setItem(r, c, item)
