"""One inspection as an auditor reviews it: the image, the ranked list with scores, the model id,
the library version, the proposed verdict, and who decided what and when (UTC)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QFormLayout, QHeaderView, QLabel, QLineEdit, QScrollArea,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from inspector.audit import InspectionRecord
from inspector.errors import InspectorError
from inspector.imageio import read_image_file

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
    """Read-only detail of one InspectionRecord; empty until set_record()."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the pane fits its width
        body = QWidget()
        self.title = QLabel("Select an inspection or a decision to see it in full.")
        self.title.setStyleSheet("font-weight: bold; font-size: 14px;")
        self.title.setWordWrap(True)
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumHeight(120)
        self.fields: dict[str, QLabel | QLineEdit] = {}
        facts = QFormLayout()
        for key in ("Recorded (UTC)", "Captured (UTC)", "Recorded by", "Source", "Image size", "Model id",
                    "Library version", "Proposed verdict"):
            # A 64-digit hash cannot wrap: a read-only line shows all of it when scrolled, and copies exactly.
            self.fields[key] = _hash_field() if key == "Model id" else _value()
            facts.addRow(f"{key}:", self.fields[key])
        self.ranking = QTableWidget(0, len(_RANK_COLUMNS))
        self.ranking.setHorizontalHeaderLabels(_RANK_COLUMNS)
        self.ranking.verticalHeader().setVisible(False)
        self.ranking.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.ranking.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.ranking.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.ranking.setWordWrap(False)
        self.decisions = _value()  # who decided what and when: a few lines, selectable for a report
        self.decisions.setStyleSheet("QLabel { background: white; border: 1px solid #c8c8c8; padding: 4px; }")
        layout = QVBoxLayout(body)
        layout.addWidget(self.title)
        layout.addWidget(self.image)
        layout.addLayout(facts)
        layout.addWidget(QLabel("Decisions (answers and corrections), oldest first:"))
        layout.addWidget(self.decisions)
        layout.addWidget(QLabel("Ranked list as the operator saw it:"))
        layout.addWidget(self.ranking)
        layout.addStretch(1)
        self.setWidget(body)
        self.record: InspectionRecord | None = None

    def set_record(self, record: InspectionRecord) -> None:
        """Show one inspection."""
        self.record = record
        self.title.setText(f"Inspection {record.id}")
        self._show_image(record)
        verdict = record.disposition + (" (needs review)" if record.needs_review else "")
        verdict += (" (none of the listed)" if record.open_set else "") + f": {record.verdict_reason}"
        values = {"Recorded (UTC)": record.recorded_at, "Captured (UTC)": record.captured_at,
                  "Recorded by": record.recorded_by,
                  "Source": record.source_id + (f" ({record.origin})" if record.origin else ""),
                  "Image size": f"{record.width} x {record.height}", "Model id": record.model_id,
                  "Library version": f"v{record.library_version}", "Proposed verdict": verdict}
        for key, text in values.items():
            self.fields[key].setText(text)
        self.fields["Model id"].setCursorPosition(0)  # show the start of the hash, as tables abbreviate it
        self.ranking.setRowCount(len(record.candidates))
        for r, c in enumerate(record.candidates):
            for col, text in enumerate((str(c.rank), c.label_name, c.description,
                                        f"{c.score:.3f}", f"{c.probability:.3f}", c.disposition)):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{c.label_name} [{c.label_id}]: {c.description}")
                self.ranking.setItem(r, col, item)
        rows = min(len(record.candidates), 10)  # the whole list in view for a typical library
        self.ranking.setFixedHeight(self.ranking.horizontalHeader().height() + 4 +
                                    sum(self.ranking.rowHeight(r) for r in range(rows)))
        lines = [record.describe_decision(row) for row in record.decisions]
        self.decisions.setText("\n".join(lines) or "No decision was recorded for this inspection.")

    def _show_image(self, record: InspectionRecord) -> None:
        if record.image_path is None:
            self.image.setPixmap(QPixmap())
            self.image.setText("No image was stored with this inspection.")
            return
        try:
            pixmap = to_pixmap(read_image_file(record.image_path))
        except InspectorError as exc:  # a missing or damaged file is itself an audit finding: say so
            self.image.setPixmap(QPixmap())
            self.image.setText(f"The stored image cannot be shown: {exc}")
            return
        self.image.setPixmap(pixmap.scaled(_IMAGE_BOX, _IMAGE_BOX, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))
