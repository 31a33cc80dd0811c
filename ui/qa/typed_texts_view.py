"""The operators' "none of these" texts in the QA view: adopt one into the library draft, or dismiss it.

A thin view over inspector.library.typed_texts: the core lists the open texts (grouped with the
ones that say the same), builds the draft edit an adoption becomes and records a dismissal with its
reason; it also enforces the roles. An adopted text is staged in the library editor's draft and
leaves this list once that draft is published (shown meanwhile as "staged in the draft").
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.library.typed_texts import TypedText, adopt_as_description, adopt_as_new_label, dismiss, open_texts
from ui.context import AppContext
from ui.widgets.status_line import StatusLine

_COLUMNS = ("Text (latest wording)", "When (UTC, latest)", "Part(s)", "Operator(s)", "Similar")


def _row(*widgets: QWidget) -> QHBoxLayout:
    box = QHBoxLayout()
    box.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        box.addWidget(w)
    return box


class TypedTextsView(QWidget):
    """Lists the open texts; emits `adopted(Edit)` for the editor to stage; dismisses through the core."""

    adopted = Signal(object)  # an Edit carrying the adopted decisions (Edit.typed_from)

    def __init__(
        self, context: AppContext, staged: Callable[[], set[int]] = set, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.context, self._staged = context, staged
        self.can_edit = context.can("edit_library")
        self.items: list[TypedText] = []
        heading = QLabel(
            "What operators typed when no label fitted (\u201cnone of these\u201d). Adopt a text as a description of"
            " a label, or as a new label, into the library draft (it is published with the draft, as a new"
            " version); or dismiss it with a reason. Both are recorded in the audit trail."
        )
        heading.setWordWrap(True)
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(_COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("Why? Recorded with the library version or the dismissal (required)")
        self.label_choice = QComboBox()
        self.adopt_button = QPushButton()
        self.new_id, self.new_name = QLineEdit(), QLineEdit()
        self.new_id.setPlaceholderText("new label id, e.g. fingerprint")
        self.new_name.setPlaceholderText("display name")
        self.new_label_button = QPushButton("Adopt as a new label (review)")
        self.dismiss_button = QPushButton("Dismiss (reason)")
        self.status = StatusLine()
        form = QFormLayout()
        form.addRow("Reason:", self.reason)
        form.addRow("Existing label:", _row(self.label_choice, self.adopt_button))
        form.addRow("New label:", _row(self.new_id, self.new_name, self.new_label_button))
        form.addRow("", _row(self.dismiss_button))
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.table, 1)
        layout.addLayout(form)
        layout.addWidget(self.status)
        self.table.currentCellChanged.connect(lambda *_: self._update_buttons())
        self.label_choice.currentIndexChanged.connect(lambda _i: self._update_buttons())
        self.adopt_button.clicked.connect(self.adopt_selected)
        self.new_label_button.clicked.connect(self.adopt_as_label)
        self.dismiss_button.clicked.connect(self.dismiss_selected)
        self.refresh()

    def refresh(self) -> None:
        """Reload the open texts and the labels in force (after a publish, a dismissal, a new answer)."""
        user = self.context.user
        if not self.context.can("view"):
            role = user.role if user is not None else "signed out"
            self.items = []
            self.status.show_info(f"Your role ({role}) may not see the operators' texts.")
        else:
            try:
                self.items = open_texts(self.context.station.log, user)
            except InspectorError as exc:
                self.items = []
                self.status.show_error(f"Cannot list the texts: {exc}")
        labels = self.context.station.log.library.library().labels
        current = self.label_choice.currentData()
        self.label_choice.blockSignals(True)
        self.label_choice.clear()
        for label in labels:
            self.label_choice.addItem(f"{label.name} [{label.id}]", label.id)
        if current in [label.id for label in labels]:
            self.label_choice.setCurrentIndex([label.id for label in labels].index(current))
        self.label_choice.blockSignals(False)
        self._render()

    def selected(self) -> TypedText | None:
        r = self.table.currentRow()
        return self.items[r] if 0 <= r < len(self.items) else None

    def adopt_selected(self) -> None:
        """Adopt the selected text as a description of the chosen label (staged in the draft)."""
        self._adopt(
            lambda item, user: adopt_as_description(
                self.context.station.log, item, self.label_choice.currentData(), self.reason.text(), user
            )
        )

    def adopt_as_label(self) -> None:
        """Adopt the selected text as the description of a new label (review, until QA judges it)."""
        self._adopt(
            lambda item, user: adopt_as_new_label(
                self.context.station.log, item, self.new_id.text(), self.new_name.text(), self.reason.text(), user
            )
        )

    def dismiss_selected(self) -> None:
        """Dismiss the selected text with the reason given; it is not listed again."""
        item = self.selected()
        if item is None:
            return
        try:
            dismiss(self.context.station.log, item, self.reason.text(), self.context.user)
        except InspectorError as exc:
            self.status.show_error(f"Not dismissed: {exc}")
            return
        self.reason.clear()
        self.refresh()
        self.status.show_info(
            f"Dismissed \u201c{item.text}\u201d ({item.count} answer(s)); recorded in the audit trail."
        )

    def _adopt(self, build: Callable) -> None:
        item = self.selected()
        if item is None:
            return
        try:
            edit = build(item, self.context.user)
        except InspectorError as exc:
            self.status.show_error(f"Not adopted: {exc}")
            return
        self.adopted.emit(edit)  # the editor stages it (or says why not, in its own status line)
        self.reason.clear()
        self._render()

    def _render(self) -> None:
        staged = self._staged()
        self.table.setRowCount(len(self.items))
        for r, item in enumerate(self.items):
            marked = " (staged in the draft)" if set(item.decision_ids) <= staged else ""
            values = (
                item.text + marked,
                item.decided_at[:19].replace("T", " "),
                ", ".join(f"#{i}" for i in item.inspection_ids[:4])
                + (" \u2026" if len(item.inspection_ids) > 4 else ""),
                ", ".join(item.operators),
                str(item.count),
            )
            for c, value in enumerate(values):
                cell = QTableWidgetItem(value)
                cell.setToolTip(value)
                self.table.setItem(r, c, cell)
        if self.items and self.table.currentRow() < 0:
            self.table.setCurrentCell(0, 0)
        if not self.items and self.context.can("view"):
            self.status.show_info("No open texts: every \u201cnone of these\u201d answer was adopted or dismissed.")
        self._update_buttons()

    def _update_buttons(self) -> None:
        live = self.can_edit and self.selected() is not None
        label = self.label_choice.currentText() or "\u2026"
        self.adopt_button.setText(f"Adopt as description of {label}")
        for widget in (
            self.reason,
            self.label_choice,
            self.adopt_button,
            self.new_id,
            self.new_name,
            self.new_label_button,
            self.dismiss_button,
        ):
            widget.setEnabled(live)
