"""One inspection as an auditor reviews it: the image (and, on request, where the model that ranked
it looked for its #1 candidate, computed in a Task), the ranked list with scores, the model id, the
library version, the proposed verdict, who decided what and when (UTC), and QA's corrections."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.frame.explain import Heatmap
from inspector.frame.good_parts import unlike_in
from inspector.store.audit import InspectionRecord
from inspector.store.corrections import corrections, in_force
from inspector.store.decision_log import read_evidence_image
from ui.operator.good_part_note import record_note
from ui.widgets import palette
from ui.widgets.workers import Task, keep_alive

# The heatmap of a logged inspection: (record, candidate rank) -> Heatmap, run off the GUI thread.
ExplainFn = Callable[[InspectionRecord, int], Heatmap]

_IMAGE_BOX = 260  # px: large enough to see the part, small enough to leave room for the facts
_RANK_COLUMNS = ("#", "Label", "Best description", "Score", "Probability", "Disposition")


def to_pixmap(rgb: np.ndarray) -> QPixmap:
    """An RGB uint8 HxWx3 array as a QPixmap (copied: the array may go away)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QPixmap.fromImage(QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


def _value() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _hash_field() -> QLineEdit:
    field = QLineEdit()
    field.setReadOnly(True)
    return field


class InspectionDetail(QScrollArea):
    """Read-only detail of one InspectionRecord; empty until set_record(). With `can_correct` (QA) a
    [Correct…] button asks for a correction through `correct_requested`; the view writes it."""

    correct_requested = Signal(object)  # the InspectionRecord shown

    def __init__(
        self,
        explain: ExplainFn | None = None,
        parent: QWidget | None = None,
        *,
        current_model: Callable[[], str] | None = None,
        can_correct: bool = False,
    ) -> None:
        super().__init__(parent)
        self._explain = explain
        self._current_model = current_model  # the station's model id now: an earlier one is loaded first
        self._task: Task | None = None
        self._task_record: InspectionRecord | None = None
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the pane fits its width
        body = QWidget()
        self.title = QLabel("Select an inspection or a decision to see it in full.")
        self.title.setStyleSheet("font-weight: bold; font-size: 14px;")
        self.title.setWordWrap(True)
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumHeight(120)
        self.heatmap = QLabel()  # the #1 candidate's heatmap over the stored image, when asked for
        self.heatmap.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.heatmap.setVisible(False)
        self.heatmap_button = QPushButton("Show where the model looked (#1)")
        self.heatmap_button.setToolTip(
            "A heatmap over the image: where the model that ranked this inspection looked when it chose"
            " its #1 label (an earlier model is loaded again from the model registry)"
        )
        self.heatmap_button.setEnabled(False)
        self.heatmap_button.setVisible(explain is not None)
        self.heatmap_button.clicked.connect(self.show_heatmap)
        self.heatmap_note = _value()
        self.fields: dict[str, QLabel | QLineEdit] = {}
        facts = QFormLayout()
        for key in (
            "Recorded (UTC)",
            "Captured (UTC)",
            "Recorded by",
            "Source",
            "Image size",
            "Model id",
            "Library version",
            "Proposed verdict",
        ):
            # A 64-digit hash cannot wrap: a read-only line shows all of it when scrolled, and copies exactly.
            self.fields[key] = _hash_field() if key == "Model id" else _value()
            facts.addRow(f"{key}:", self.fields[key])
        # What the good-part model said, in the operator's words (hidden when none was consulted).
        self.good_note = _value()
        self.good_note.setVisible(False)
        self.ranking = QTableWidget(0, len(_RANK_COLUMNS))
        self.ranking.setHorizontalHeaderLabels(_RANK_COLUMNS)
        self.ranking.verticalHeader().setVisible(False)
        self.ranking.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.ranking.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.ranking.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.ranking.setWordWrap(False)
        self.decisions = _value()  # who decided what and when: a few lines, selectable for a report
        self.decisions.setStyleSheet("QLabel { background: white; border: 1px solid #c8c8c8; padding: 4px; }")
        self.corrections_title = QLabel("Corrections by QA:")
        self.corrections = _value()  # who corrected what, from -> to, and why
        self.corrections.setStyleSheet("QLabel { background: #fff7e0; border: 1px solid #e0c070; padding: 4px; }")
        self.corrections.setVisible(False)
        self.corrections_title.setVisible(False)
        self.correct_button = QPushButton("Correct…")
        self.correct_button.setToolTip(
            "Record a correction of this inspection's answer (QA): a new record with a reason"
        )
        self.correct_button.setVisible(can_correct)
        self.correct_button.setEnabled(False)
        self.correct_button.clicked.connect(self._correct_clicked)
        layout = QVBoxLayout(body)
        layout.addWidget(self.title)
        layout.addWidget(self.corrections_title)  # under the title: what is in force is read first
        layout.addWidget(self.corrections)
        images = QHBoxLayout()
        images.addWidget(self.image)
        images.addWidget(self.heatmap)
        layout.addLayout(images)
        heat_row = QHBoxLayout()
        heat_row.addWidget(self.heatmap_button)
        heat_row.addWidget(self.heatmap_note, 1)
        layout.addLayout(heat_row)
        layout.addLayout(facts)
        layout.addWidget(self.good_note)
        decided = QHBoxLayout()
        decided.addWidget(QLabel("Decisions (answers and corrections), oldest first:"), 1)
        decided.addWidget(self.correct_button)
        layout.addLayout(decided)
        layout.addWidget(self.decisions)
        layout.addWidget(QLabel("Ranked list as the operator saw it:"))
        layout.addWidget(self.ranking)
        layout.addStretch(1)
        self.setWidget(body)
        self.record: InspectionRecord | None = None

    def set_record(self, record: InspectionRecord, good_model: str = "") -> None:
        """Show one inspection; `good_model`: the good-part model its scoring configuration names."""
        self.record = record
        fixes = corrections(record.decisions)
        self.title.setText(f"Inspection {record.id}" + (" (corrected by QA)" if fixes else ""))
        self._show_image(record)
        self.heatmap.clear()
        self.heatmap.setVisible(False)
        self.heatmap_note.setText("")
        self.heatmap_button.setEnabled(self._task is None and record.image_path is not None and bool(record.candidates))
        verdict = record.disposition + (" (needs review)" if record.needs_review else "")
        verdict += (" (none of the listed)" if record.open_set else "") + f": {record.verdict_reason}"
        values = {
            "Recorded (UTC)": record.recorded_at,
            "Captured (UTC)": record.captured_at,
            "Recorded by": record.recorded_by,
            "Source": record.source_id + (f" ({record.origin})" if record.origin else ""),
            "Image size": f"{record.width} x {record.height}",
            "Model id": record.model_id,
            "Library version": f"v{record.library_version}",
            "Proposed verdict": verdict,
        }
        for key, text in values.items():
            self.fields[key].setText(text)
        note = record_note(good_model, record.verdict_reason)
        self.good_note.setText(note)
        self.good_note.setStyleSheet(
            f"QLabel {{ background: {palette.PALE['review'] if unlike_in(record.verdict_reason) else 'white'};"
            " border: 1px solid #c8c8c8; padding: 4px; }"
        )
        self.good_note.setVisible(bool(note))
        self.fields["Model id"].setCursorPosition(0)  # show the start of the hash, as tables abbreviate it
        self.ranking.setRowCount(len(record.candidates))
        for r, c in enumerate(record.candidates):
            for col, text in enumerate(
                (str(c.rank), c.label_name, c.description, f"{c.score:.3f}", f"{c.probability:.3f}", c.disposition)
            ):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{c.label_name} [{c.label_id}]: {c.description}")
                self.ranking.setItem(r, col, item)
        rows = min(len(record.candidates), 10)  # the whole list in view for a typical library
        self.ranking.setFixedHeight(
            self.ranking.horizontalHeader().height() + 4 + sum(self.ranking.rowHeight(r) for r in range(rows))
        )
        lines = [record.describe_decision(row) for row in record.decisions]
        self.decisions.setText("\n".join(lines) or "No decision was recorded for this inspection.")
        self.corrections.setText(
            "\n".join(f"{c.decided_at}  {c.who}: {c.before} → {c.after}. Reason: {c.reason}" for c in fixes)
        )
        self.corrections.setVisible(bool(fixes))
        self.corrections_title.setVisible(bool(fixes))
        self.correct_button.setEnabled(in_force(list(record.decisions)) is not None)
        self.correct_button.setToolTip(
            "Record a correction of this inspection's answer (QA): a new record with a reason"
            if self.correct_button.isEnabled()
            else "Nothing to correct: this inspection has no answer yet"
        )

    def _correct_clicked(self) -> None:
        if self.record is not None:
            self.correct_requested.emit(self.record)

    def _show_image(self, record: InspectionRecord) -> None:
        if record.image_path is None:
            self.image.setPixmap(QPixmap())
            self.image.setText("No image was stored with this inspection.")
            return
        try:
            pixmap = to_pixmap(read_evidence_image(record.image_path))
        except InspectorError as exc:  # a missing or damaged file is itself an audit finding: say so
            self.image.setPixmap(QPixmap())
            self.image.setText(f"The stored image cannot be shown: {exc}")
            return
        self.image.setPixmap(
            pixmap.scaled(
                _IMAGE_BOX, _IMAGE_BOX, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        )

    def show_heatmap(self) -> None:
        """Compute the #1 candidate's heatmap of the record shown, in a Task; the answer is shown
        only if that record is still the one on screen."""
        if self._explain is None or self.record is None or self._task is not None:
            return
        record, explain = self.record, self._explain
        self.heatmap_button.setEnabled(False)
        earlier = self._current_model is not None and record.model_id != self._current_model()
        self.heatmap_note.setText(
            "Loading the earlier model that ranked this inspection, then computing where it looked…"
            if earlier
            else "Computing where the model looked…"
        )
        task = Task(lambda _progress, _cancelled: (record, explain(record, 1)))
        # Bound methods, not lambdas: Qt drops the connection if this widget is deleted first.
        task.finished.connect(self._heatmap_ready)
        task.failed.connect(self._heatmap_failed)
        task.done.connect(self._task_done)
        keep_alive(task, task.done)  # its QThread must outlive its run even if this view is closed meanwhile
        self._task, self._task_record = task, record
        task.start()

    def busy(self) -> bool:
        return self._task is not None

    def _heatmap_ready(self, answer: tuple[InspectionRecord, Heatmap]) -> None:
        record, heat = answer
        if record is not self.record:
            return  # the auditor moved on; this map belongs to another inspection
        self.heatmap.setPixmap(
            to_pixmap(heat.overlay).scaled(
                _IMAGE_BOX, _IMAGE_BOX, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        )
        self.heatmap.setVisible(True)
        x0, y0, x1, y1 = heat.bbox
        self.heatmap_note.setText(
            f"Where the model looked for #1 {heat.label_id}: mostly at x {x0}–{x1}, y {y0}–{y1} (pixels)."
            f" The model that ranked this inspection ({record.model_id[:12]}) made this map."
        )

    def _heatmap_failed(self, message: str) -> None:
        if self._task_record is self.record:
            self.heatmap_note.setText(f"No heatmap: {message[:1].upper()}{message[1:]}")

    def _task_done(self) -> None:
        self._task = None
        if self.record is not None:
            self.heatmap_button.setEnabled(self.record.image_path is not None and bool(self.record.candidates))
