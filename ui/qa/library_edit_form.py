"""The inputs of a library change: a reason (inline, required) and what to add, retire or set.

The form only builds Edit records (inspector.library.draft) and emits them; the editor decides
whether they apply to the draft, and the core's LibraryStore decides whether they may be
published. A role without 'edit_library' gets the form disabled.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.library.draft import Edit, LabelRow, changes_from
from inspector.library.labels import DISPOSITIONS, NEW_LABEL_DISPOSITION, NEW_LABEL_SEVERITY, Label

_LIVE = ("active", "changed", "new")  # label / description states that can still be edited or retired


def _row(*widgets: QWidget, stretch: bool = False) -> QHBoxLayout:
    box = QHBoxLayout()
    box.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        box.addWidget(w)
    if stretch:  # keep small inputs small instead of spreading them over the row
        box.addStretch(1)
    return box


class LibraryEditForm(QGroupBox):
    """Stages one change at a time into the draft; emits `staged(Edit)` or `failed(message)`."""

    staged = Signal(object)
    failed = Signal(str)
    # (kind "file" or "inspection", the path or inspection id, label id, reason): the editor stores
    # the image through the core and stages the add_example edit.
    example_requested = Signal(str, object, str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Change the library (staged in the draft)", parent)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("Why? Recorded with the new version (required)")
        self.selected = QLabel()
        self.description = QLineEdit()
        self.description.setPlaceholderText("A new description of the selected label, in plain words")
        self.add_description_button = QPushButton("Add description")
        self.retire_description_button = QPushButton("Retire selected description")
        self.retire_label_button = QPushButton("Retire label")
        self.disposition, self.new_disposition = QComboBox(), QComboBox()
        for combo in (self.disposition, self.new_disposition):
            combo.addItems(DISPOSITIONS)
        self.severity, self.new_severity = QSpinBox(), QSpinBox()
        for spin in (self.severity, self.new_severity):
            spin.setRange(0, 5)
            spin.setToolTip("0 = none ... 5 = critical")
            spin.setMaximumWidth(70)
        self._new_label_defaults()
        self.new_disposition.setToolTip("A new defect starts at review: a person looks at its parts until QA decides")
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setSpecialValueText("policy default")  # 0.0 means: no threshold of its own
        self.threshold.setToolTip("The probability #1 needs before the station proposes this label alone")
        self.threshold.setMinimumWidth(130)
        self.update_button = QPushButton("Update label")
        self.new_id, self.new_name, self.new_description = QLineEdit(), QLineEdit(), QLineEdit()
        self.new_id.setPlaceholderText("id, e.g. dent")
        self.new_name.setPlaceholderText("display name")
        self.new_description.setPlaceholderText("first description, in plain words")
        self.add_label_button = QPushButton("Add label")
        self.example_file_button = QPushButton("Add example image\u2026")
        self.example_file_button.setToolTip(
            "A photo of this label (PNG, JPEG, TIFF, BMP); stored in the station by hash"
        )
        self.inspection_id = QSpinBox()
        self.inspection_id.setRange(1, 2**31 - 1)
        self.inspection_id.setPrefix("#")
        self.inspection_id.setMinimumWidth(110)
        self.example_inspection_button = QPushButton("Use logged part as example")

        form = QFormLayout(self)
        form.addRow("Reason:", self.reason)
        form.addRow(self.selected)
        form.addRow("Description:", _row(self.description, self.add_description_button))
        form.addRow("", _row(self.retire_description_button, self.retire_label_button))
        form.addRow(
            "Example:",
            _row(
                self.example_file_button,
                QLabel("or inspection"),
                self.inspection_id,
                self.example_inspection_button,
                stretch=True,
            ),
        )
        form.addRow(
            "Disposition:",
            _row(
                self.disposition,
                QLabel("Severity:"),
                self.severity,
                QLabel("Threshold:"),
                self.threshold,
                self.update_button,
                stretch=True,
            ),
        )
        heading = QLabel("New label")
        heading.setStyleSheet("font-weight: bold; margin-top: 6px;")
        form.addRow(heading)
        form.addRow("Id / name:", _row(self.new_id, self.new_name))
        form.addRow("Disposition:", _row(self.new_disposition, QLabel("Severity:"), self.new_severity, stretch=True))
        form.addRow("Description:", _row(self.new_description, self.add_label_button))

        self.add_description_button.clicked.connect(self._add_description)
        self.retire_description_button.clicked.connect(self._retire_description)
        self.retire_label_button.clicked.connect(self._retire_label)
        self.update_button.clicked.connect(self._update_label)
        self.add_label_button.clicked.connect(self._add_label)
        self.example_file_button.clicked.connect(self._example_from_file)
        self.example_inspection_button.clicked.connect(
            lambda: self.example_requested.emit(
                "inspection", self.inspection_id.value(), self._row.id, self.reason.text()
            )
        )
        self._row: LabelRow | None = None
        self._text: str | None = None
        self._can_edit = False
        self.set_selection(None, None)

    def set_can_edit(self, can_edit: bool) -> None:
        """Reflect the role: without 'edit_library' nothing here can be used."""
        self._can_edit = can_edit
        self.reason.setPlaceholderText(
            "Why? Recorded with the new version (required)"
            if can_edit
            else "Read-only: your role may not change the library"
        )
        self._refresh()

    def set_selection(self, row: LabelRow | None, text: str | None) -> None:
        """The label (and description) selected in the editor's lists."""
        self._row, self._text = row, text
        if row is not None:
            self.selected.setText(f"Selected label: {row.name} [{row.id}], {row.status}")
            self.disposition.setCurrentText(row.disposition)
            self.severity.setValue(row.severity)
            self.threshold.setValue(row.threshold or 0.0)
        else:
            self.selected.setText("Select a label to add or retire its descriptions")
        self._refresh()

    def clear_inputs(self) -> None:
        """After a change was staged: every change needs its own reason."""
        for field in (self.reason, self.description, self.new_id, self.new_name, self.new_description):
            field.clear()
        self._new_label_defaults()

    def _new_label_defaults(self) -> None:
        # Never 'accept', severity 0: an unjudged new defect must not pass parts (issue 15 item 7).
        self.new_disposition.setCurrentText(NEW_LABEL_DISPOSITION)
        self.new_severity.setValue(NEW_LABEL_SEVERITY)

    def _refresh(self) -> None:
        live = self._can_edit and self._row is not None and self._row.status in _LIVE
        text_live = live and self._text is not None and dict(self._row.descriptions).get(self._text) in _LIVE
        for widget in (
            self.description,
            self.add_description_button,
            self.retire_label_button,
            self.disposition,
            self.severity,
            self.threshold,
            self.update_button,
            self.example_file_button,
            self.inspection_id,
            self.example_inspection_button,
        ):
            widget.setEnabled(live)
        self.retire_description_button.setEnabled(bool(text_live))
        for widget in (
            self.reason,
            self.new_id,
            self.new_name,
            self.new_disposition,
            self.new_severity,
            self.new_description,
            self.add_label_button,
        ):
            widget.setEnabled(self._can_edit)

    def _emit(self, build) -> None:
        try:
            self.staged.emit(build())
        except InspectorError as exc:  # LibraryError from Edit or Label: say what to fix
            self.failed.emit(str(exc))

    def choose_example_file(self) -> str:
        """Ask for an image file ('' when cancelled); tests replace this dialog."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Example image", "", "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp)"
        )
        return path

    def _example_from_file(self) -> None:
        path = self.choose_example_file()
        if path:
            self.example_requested.emit("file", path, self._row.id, self.reason.text())

    def _add_description(self) -> None:
        self._emit(lambda: Edit("add_description", self._row.id, self.reason.text(), self.description.text()))

    def _retire_description(self) -> None:
        self._emit(lambda: Edit("retire_description", self._row.id, self.reason.text(), self._text or ""))

    def _retire_label(self) -> None:
        self._emit(lambda: Edit("retire_label", self._row.id, self.reason.text()))

    def _update_label(self) -> None:
        def build() -> Edit:
            wanted = {
                "disposition": self.disposition.currentText(),
                "severity": self.severity.value(),
                "threshold": self.threshold.value() or None,
            }  # 0.0 is shown as "policy default"
            return Edit("update_label", self._row.id, self.reason.text(), changes=changes_from(self._row, wanted))

        self._emit(build)

    def _add_label(self) -> None:
        def build() -> Edit:
            label_id = self.new_id.text().strip()
            label = Label(
                label_id,
                self.new_name.text().strip() or label_id,
                self.new_disposition.currentText(),
                self.new_severity.value(),
                (self.new_description.text().strip(),),
            )
            return Edit("add_label", label_id, self.reason.text(), label=label)

        self._emit(build)
