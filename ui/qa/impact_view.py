"""Impact preview: re-rank recent logged parts with the draft library before publishing it.

The log is read on the GUI thread (inspector.library.impact.plan_impact: a few small queries, and only
the draft's new descriptions are embedded); the image embedding and ranking run in a Task, with
a progress bar and a cancel button.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.library.impact import NONE_OF_THESE, ImpactReport, plan_impact, run_impact
from inspector.library.labels import Library
from ui.context import AppContext
from ui.widgets.status_line import StatusLine
from ui.widgets.workers import Task

_COLUMNS = ("Inspection", "Recorded (UTC)", "#1 now", "#1 with the draft", "Operator's answer", "Effect")
_EFFECT = {"fixes": "now matches the answer", "breaks": "no longer matches the answer", "": ""}


def _run(progress, cancelled, plan, scorer) -> ImpactReport:
    return run_impact(plan, scorer, progress, cancelled)


class ImpactView(QWidget):
    """Runs the preview for the editor's draft and lists the inspections whose #1 label would change."""

    preview_done = Signal(object)  # the ImpactReport

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.intro = QLabel(
            "Stage a change in the library editor, then preview what it would change on"
            " recently inspected parts before you publish it."
        )
        self.intro.setWordWrap(True)
        self.last_n = QSpinBox()
        self.last_n.setRange(1, 10_000)
        self.last_n.setValue(200)
        self.last_n.setToolTip("How many of the most recent logged inspections to re-rank")
        self.preview_button = QPushButton("Preview impact")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m inspections")
        self.summary = StatusLine()
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.notes = QLabel()
        self.notes.setWordWrap(True)

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Re-rank the last"))
        controls.addWidget(self.last_n)
        controls.addWidget(QLabel("logged inspections"))
        controls.addWidget(self.preview_button)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(controls)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.notes)

        self.preview_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self._draft: Library | None = None
        self._task: Task | None = None
        self._last_progress = (0, 0)
        self._update_buttons()

    @property
    def task(self) -> Task | None:
        """The running (or last) preview task."""
        return self._task

    def set_draft(self, library: Library | None) -> None:
        """The library the editor's draft would put in force (None: nothing staged)."""
        self._draft = library
        if self.table.rowCount() or self.summary.text():
            self.summary.show_info(
                "The draft changed since this preview; preview it again."
                if library is not None
                else "The draft is empty; nothing to preview."
            )
        self._update_buttons()

    def start(self) -> bool:
        """Start a preview of the current draft; False if there is none or the log cannot be read."""
        if self._draft is None or self._running():
            return False
        try:
            plan = plan_impact(self.context.station, self._draft, self.last_n.value())
        except InspectorError as exc:
            self.summary.show_error(f"Cannot preview: {exc}")
            return False
        self.table.setRowCount(0)
        self.notes.clear()
        self.progress.setRange(0, max(1, len(plan.items)))
        self.progress.setValue(0)
        self.summary.show_info(f"Re-ranking {len(plan.items)} inspections with the draft ...")
        self._task = Task(_run, plan, self.context.station.scorer, parent=self)
        self._task.progress.connect(self._on_progress)
        self._task.finished.connect(self._show)
        self._task.failed.connect(
            lambda message: self.summary.show_failure(self.context, "impact_preview", f"Preview failed: {message}")
        )
        self._task.cancelled.connect(self._on_cancelled)
        self._task.done.connect(self._update_buttons)
        self._task.start()
        self._update_buttons()
        return True

    def cancel(self) -> None:
        if self._running():
            self._task.cancel()

    def _running(self) -> bool:
        return self._task is not None and self._task.is_running()

    def _update_buttons(self) -> None:
        running = self._running()
        self.preview_button.setEnabled(self._draft is not None and not running)
        self.cancel_button.setEnabled(running)
        self.last_n.setEnabled(not running)

    def _on_progress(self, done: int, total: int, _text: str) -> None:
        self._last_progress = (done, total)
        self.progress.setValue(done)

    def _on_cancelled(self) -> None:
        done, total = self._last_progress
        self.summary.show_info(f"Preview cancelled after {done} of {total} inspections; nothing is shown.")

    def _show(self, report: ImpactReport) -> None:
        self.table.setRowCount(len(report.changed))
        for r, row in enumerate(report.changed):
            answer = {None: "(no answer)", NONE_OF_THESE: "none of these"}.get(row.answer, row.answer)
            values = (
                str(row.inspection_id),
                row.recorded_at,
                f"{row.old_name} ({row.old_probability:.2f})",
                f"{row.new_name} ({row.new_probability:.2f})",
                answer,
                _EFFECT[row.effect],
            )
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if row.effect == "breaks":  # the one outcome a QA engineer must not miss
                    item.setForeground(QBrush(QColor("#8b0000")))
                self.table.setItem(r, c, item)
        self.progress.setValue(report.checked)
        if report.changed:
            self.summary.show_info(
                f"{len(report.changed)} of {report.checked} inspections would change their #1 label;"
                f" {report.fixes} would now match the operator's answer, {report.breaks} would no longer match."
            )
        else:
            self.summary.show_info(f"None of the {report.checked} inspections would change its #1 label.")
        self.notes.setText("Left out: " + "; ".join(report.notes) if report.notes else "")
        self.preview_done.emit(report)
