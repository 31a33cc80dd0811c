"""QA's correction of one inspection's decision: the right label (from the library that ranked it)
and a reason, both required. The dialog only asks; the core writes the correction (a new chained
decision that references the one it replaces) and enforces the role (inspector.store.corrections)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from inspector.store.audit import InspectionRecord
from inspector.store.corrections import answer_text, in_force


class CorrectionDialog(QDialog):
    """Pick the right label and say why; OK stays disabled until the label differs and a reason is typed."""

    def __init__(self, record: InspectionRecord, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Correct inspection {record.id}")
        self.record = record
        current = in_force(list(record.decisions))
        self.current_label = current["label_id"] if current and current["kind"] in ("confirm", "pick") else None
        now = (
            f"{answer_text(current)}, by {current['printed_name']} [{current['operator']}] at {current['decided_at']}"
            if current
            else "no decision"
        )
        intro = QLabel(
            f"Recorded answer: {now}.\nA correction is a new record that keeps the original answer; it is"
            " signed with your name and the time, and fine-tuning uses it from then on."
        )
        intro.setWordWrap(True)
        self.label = QComboBox()
        for c in record.candidates:
            self.label.addItem(f"{c.label_name} [{c.label_id}] · {c.disposition} · model's #{c.rank}", c.label_id)
        if self.current_label is not None:
            self.label.setCurrentIndex(max(self.label.findData(self.current_label), 0))
        self.reason = QPlainTextEdit()
        self.reason.setPlaceholderText("Why the recorded answer was wrong (required; it stays on the record)")
        self.reason.setFixedHeight(80)
        self.hint = QLabel()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Record correction")
        form = QFormLayout()
        form.addRow("Right label:", self.label)
        form.addRow("Reason:", self.reason)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.hint)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.label.currentIndexChanged.connect(self._check)
        self.reason.textChanged.connect(self._check)
        self._check()
        self.resize(520, self.sizeHint().height())

    def chosen(self) -> tuple[str, str]:
        """(label id, reason) as entered."""
        return str(self.label.currentData()), self.reason.toPlainText().strip()

    def _check(self) -> None:
        label, reason = self.chosen()
        if label == self.current_label:
            problem = "Choose the label the part really shows (it differs from the recorded one)."
        elif not reason:
            problem = "Type the reason: why the recorded answer was wrong."
        else:
            problem = ""
        self.hint.setText(problem)
        self.ok.setEnabled(not problem)


def ask_correction(record: InspectionRecord, parent: QWidget | None = None) -> tuple[str, str] | None:
    """Open the dialog (modal); (label id, reason), or None when cancelled."""
    dialog = CorrectionDialog(record, parent)
    return dialog.chosen() if dialog.exec() == QDialog.DialogCode.Accepted else None
