"""The review list: parts the operator's queue moved to the review lane, answered later.

An operator or QA picks a part (Up/Down) and answers it with the operator's keys: Space/Enter
confirm #1 · 1-9 pick #k · R retake · 0 then type, Enter: none of these. The core checks the part
is still in the lane and that the role decides (inspector.frame.queue.answer_review).
"""

from __future__ import annotations

import json

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.frame.queue import answer_review, review_lane
from inspector.frame.records import percent
from ui.context import AppContext
from ui.widgets import palette

_DIGITS = {getattr(Qt.Key, f"Key_{n}"): n for n in range(1, 10)}


class ReviewLaneDialog(QDialog):
    """Pending-review parts, oldest first, each answerable with the operator's keys."""

    answered = Signal(int)  # decision id, after COMMIT

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.setWindowTitle("Review lane")
        self.resize(760, 420)
        self.parts = QListWidget()
        self.parts.currentRowChanged.connect(self._show_candidates)
        self.parts.installEventFilter(self)
        self.candidates = QLabel()
        self.candidates.setWordWrap(True)
        self.candidates.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.none_edit = QLineEdit(placeholderText="None of these: what does the part show? Enter logs it")
        self.none_edit.returnPressed.connect(self._none_of_these)
        self.message = QLabel()
        self.message.setWordWrap(True)
        hints = QLabel("↑↓ choose a part · Space/Enter confirm #1 · 1–9 pick #k · R retake · 0 none of these")
        hints.setStyleSheet(f"color: {palette.MUTED};")
        body = QHBoxLayout()
        body.addWidget(self.parts, 3)
        side = QVBoxLayout()
        side.addWidget(self.candidates, 1)
        side.addWidget(self.none_edit)
        body.addLayout(side, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(self.message)
        layout.addWidget(hints)
        self.rows: list[dict] = []

    def reload(self) -> None:
        """Read the lane again (another station or QA may have answered parts meanwhile)."""
        log = self.context.station.log
        self.rows = review_lane(log) if log is not None else []
        self.parts.clear()
        for r in self.rows:
            top = min(json.loads(r["candidates"]), key=lambda c: c["rank"])
            text = (
                f"part {r['id']} · {r['recorded_at'][11:19]} UTC · {r['disposition']}"
                f" · {top['label_name']} {percent(top['probability'])}"
            )
            self.parts.addItem(QListWidgetItem(text))
        if self.rows:
            self.parts.setCurrentRow(0)
        else:
            self.candidates.setText("The review lane is empty.")
        self.setWindowTitle(f"Review lane: {len(self.rows)} part(s) pending review")
        self.parts.setFocus()

    def _show_candidates(self, row: int) -> None:
        if not 0 <= row < len(self.rows):
            return
        cands = sorted(json.loads(self.rows[row]["candidates"]), key=lambda c: c["rank"])
        lines = [f"#{c['rank']} {c['label_name']} ({percent(c['probability'])})" for c in cands[:9]]
        self.candidates.setText(
            f"Part {self.rows[row]['id']}: {self.rows[row]['verdict_reason']}\n\n" + "\n".join(lines)
        )

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parts and event.type() == QEvent.Type.KeyPress and self._key(event):
            return True
        return super().eventFilter(watched, event)

    def _key(self, event: QKeyEvent) -> bool:
        key = event.key()
        if event.isAutoRepeat():
            return key in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_R) or key in _DIGITS
        if key in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.answer("confirm", 1)
        elif key in _DIGITS:
            self.answer("pick", _DIGITS[key])
        elif key == Qt.Key.Key_R:
            self.answer("reject_image")
        elif key == Qt.Key.Key_0:
            self.none_edit.setFocus()
        else:
            return False
        return True

    def answer(self, kind: str, rank: int | None = None, typed: str = "") -> int | None:
        """Answer the selected part; the decision id, or None (and why, in the dialog)."""
        row = self.parts.currentRow()
        if not 0 <= row < len(self.rows) or self.context.user is None or self.context.station.log is None:
            self.message.setText("Choose a part first.")
            return None
        inspection_id = int(self.rows[row]["id"])
        try:
            decision_id = answer_review(self.context.station.log, self.context.user, inspection_id, kind, rank, typed)
        except InspectorError as exc:
            self.message.setText(str(exc))
            return None
        self.message.setText(f"Logged decision {decision_id} for part {inspection_id}.")
        self.answered.emit(decision_id)
        self.reload()
        self.parts.setCurrentRow(min(row, len(self.rows) - 1))
        return decision_id

    def _none_of_these(self) -> None:
        if self.answer("none_of_these", typed=self.none_edit.text()) is not None:
            self.none_edit.clear()
            self.parts.setFocus()
