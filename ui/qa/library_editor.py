"""The QA engineer's library editor: labels, descriptions, the draft, publishing and the history.

Changes are staged in a draft (inspector.library.draft) laid over the version in force, so the
impact preview can show what they would do before anything is published. Publish first shows
the staged changes as a diff and asks once (PublishConfirm); the whole draft then goes to the
LibraryStore, which enforces 'edit_library' and records ONE new version with every edit's reason;
the station picks it up for the next part.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.library.draft import Edit, LabelRow, apply_edits, draft_rows, publish
from inspector.library.draft_diff import staged_changes
from inspector.library.labels import Library
from ui.context import AppContext
from ui.qa.library_draft_box import DraftBox
from ui.qa.library_edit_form import LibraryEditForm
from ui.qa.library_history import LibraryHistory
from ui.qa.publish_confirm import PublishConfirm
from ui.widgets.status_line import StatusLine

_COLUMNS = ("Label", "Name", "Disposition", "Sev.", "Threshold", "Texts", "Status")
_TIPS = (
    "Label id",
    "Display name",
    "What the line does with the part",
    "Severity, 0 (none) to 5 (critical)",
    "Probability #1 needs to stand alone (default: the station policy)",
    "Active descriptions (+ example images)",
    "active, retired, or what the draft would do",
)
_RETIRED = QColor("#8a8a8a")
_DRAFT = QColor("#fff6d5")  # a pale highlight for what the draft would change: not an alarm colour


def _titled(heading: QLabel, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    heading.setStyleSheet("font-weight: bold;")
    layout.addWidget(heading)
    layout.addWidget(widget)
    return box


class LibraryEditor(QWidget):
    """Lists the library with the draft laid over it; stages, previews and publishes changes."""

    draft_changed = Signal(object)  # the draft Library, or None when nothing is staged
    preview_requested = Signal()
    published = Signal(int)  # the version now in force

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.can_edit = context.can("edit_library")
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.labels_table = QTableWidget(0, len(_COLUMNS))
        self.labels_table.setHorizontalHeaderLabels(_COLUMNS)
        for column, tip in enumerate(_TIPS):
            self.labels_table.horizontalHeaderItem(column).setToolTip(tip)
        self.labels_table.verticalHeader().setVisible(False)
        self.labels_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.labels_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.labels_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.labels_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.labels_table.horizontalHeader().setStretchLastSection(True)
        self.descriptions = QListWidget()
        self.descriptions.setWordWrap(True)
        self.form = LibraryEditForm()
        self.form.set_can_edit(self.can_edit)
        self.draft_box = DraftBox()
        self.history = LibraryHistory()
        self.status = StatusLine()
        self.confirm = PublishConfirm(self)  # opened window-modal (not exec): the GUI thread keeps running
        self.confirm.accepted.connect(self.publish_draft)
        self.confirm.rejected.connect(lambda: self.status.show_info("Not published; the draft is kept."))

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(_titled(QLabel("Labels (the draft laid over the version in force)"), self.labels_table))
        self.descriptions_title = QLabel("Descriptions")
        left.addWidget(_titled(self.descriptions_title, self.descriptions))
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.form)
        right.addWidget(self.draft_box)
        right.addWidget(_titled(QLabel("Version history"), self.history))
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([620, 580])  # the labels table needs its status column in view
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)

        self.labels_table.currentCellChanged.connect(lambda *_: self._label_selected())
        self.descriptions.currentRowChanged.connect(lambda _row: self._description_selected())
        self.form.staged.connect(self.stage)
        self.form.failed.connect(self.status.show_error)
        self.form.example_requested.connect(self.stage_example)
        self.draft_box.remove_requested.connect(self.remove_edit)
        self.draft_box.discard_requested.connect(self.discard)
        self.draft_box.preview_requested.connect(self.preview_requested)
        self.draft_box.publish_requested.connect(self.request_publish)
        self._rows: list[LabelRow] = []
        self._edits: list[Edit] = []
        self.reload()

    @property
    def edits(self) -> tuple[Edit, ...]:
        return tuple(self._edits)

    def reload(self) -> None:
        """Start over from the version in force (after publishing, or when another user published)."""
        self._base_version, self._base = self.context.station.log.library.in_force()
        self._edits = []
        self._render()
        self.draft_changed.emit(None)

    def draft_library(self) -> Library | None:
        """The library the draft would put in force; None when nothing is staged."""
        return apply_edits(self._base, self._edits) if self._edits else None

    def stage(self, edit: Edit) -> bool:
        """Add an edit to the draft if it applies (checked as the store would); True if staged."""
        try:
            apply_edits(self._base, [*self._edits, edit])
        except InspectorError as exc:
            self.status.show_error(f"Not staged: {exc}")
            return False
        self._edits.append(edit)
        self.form.clear_inputs()
        self.status.show_info(f"Staged: {edit.describe()}. Preview its impact, then publish.")
        self._draft_edited()
        return True

    def stage_example(self, kind: str, value: object, label_id: str, reason: str) -> bool:
        """Store an image file (or take a logged part's image) and stage it as an example of a label."""
        from inspector.library.proposals import example_from_file, example_from_inspection

        log = self.context.station.log
        try:
            if not reason.strip():  # before any image is written to the store
                raise InspectorError("every library change needs a reason: say what the example shows")
            edit = (
                example_from_file(log, str(value), label_id, reason)
                if kind == "file"
                else example_from_inspection(log, int(value), label_id, reason)
            )
        except InspectorError as exc:
            self.status.show_error(f"Not staged: {exc}")
            return False
        return self.stage(edit)

    def remove_edit(self, index: int) -> None:
        """Drop one staged edit, unless a later edit depends on it."""
        rest = self._edits[:index] + self._edits[index + 1 :]
        try:
            apply_edits(self._base, rest)
        except InspectorError as exc:
            self.status.show_error(f"Cannot remove it: a later change depends on it ({exc})")
            return
        self._edits = rest
        self.status.show_info("Change removed from the draft.")
        self._draft_edited()

    def discard(self) -> None:
        self._edits = []
        self.status.show_info("Draft discarded; nothing was published.")
        self._draft_edited()

    def request_publish(self) -> bool:
        """The Publish button: show the staged changes as a diff and ask once; True if the question is open."""
        if not self._edits:
            return False
        try:
            lines = staged_changes(self.context.station.log.library.labels(self._base_version), self.draft_library())
        except InspectorError as exc:
            self.status.show_error(f"Not published: {exc}")
            return False
        self.confirm.set_draft(lines, self._edits, self._base_version)
        self.confirm.open()
        return True

    def publish_draft(self) -> int | None:
        """Publish every staged edit as ONE new version (the core checks the role); the version or None."""
        store = self.context.station.log.library
        try:
            version = publish(store, self._base_version, self._edits, self.context.user)
        except InspectorError as exc:
            self.status.show_error(f"Not published: {exc}")
            if store.current_version() != self._base_version:
                self.reload()  # someone else's edit is in force now: show what is
            return None
        count = len(self._edits)
        self.context.refresh_library()  # live on the next part, no retraining; every view hears of it
        self.reload()
        self.status.show_info(
            f"Published v{version} ({count} change{'s' if count != 1 else ''});"
            f" the station ranks the next part with v{version}."
        )
        self.published.emit(version)
        return version

    def _draft_edited(self) -> None:
        self._render()
        self.draft_changed.emit(self.draft_library())

    def _render(self) -> None:
        selected = self._selected_row()
        draft = self.draft_library() or self._base
        self._rows = draft_rows(self.context.station.log.library.labels(self._base_version), draft)
        active = len(self._base.labels)
        staged = f"; {len(self._edits)} staged change(s) in the draft" if self._edits else ""
        self.header.setText(
            f"Library \u201c{self._base.name}\u201d, version {self._base_version} in force:"
            f" {active} active labels{staged}."
        )
        table = self.labels_table
        table.blockSignals(True)
        table.setRowCount(len(self._rows))
        for r, row in enumerate(self._rows):
            active_texts = sum(status in ("active", "new") for _, status in row.descriptions)
            images = sum(status in ("active", "new") for _, status in row.examples)
            values = (
                row.id,
                row.name,
                row.disposition,
                str(row.severity),
                "default" if row.threshold is None else f"{row.threshold:.2f}",
                f"{active_texts} + {images} img" if images else str(active_texts),
                row.status if row.status in ("active", "retired") else f"{row.status} (draft)",
            )
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if row.status == "retired":
                    item.setForeground(QBrush(_RETIRED))
                elif row.status != "active":
                    item.setBackground(QBrush(_DRAFT))
                table.setItem(r, c, item)
        ids = [row.id for row in self._rows]
        table.blockSignals(False)
        if selected is not None and selected.id in ids:
            table.setCurrentCell(ids.index(selected.id), 0)
        elif self._rows:
            table.setCurrentCell(0, 0)
        self._label_selected()
        self.history.set_history(self.context.station.log.library.history())
        self.draft_box.set_edits(self._edits, self.can_edit)

    def _selected_row(self) -> LabelRow | None:
        r = self.labels_table.currentRow()
        return self._rows[r] if 0 <= r < len(self._rows) else None

    def _label_selected(self) -> None:
        row = self._selected_row()
        self.descriptions.blockSignals(True)
        self.descriptions.clear()
        if row is not None:
            for text, status in row.descriptions:
                item = QListWidgetItem(text if status == "active" else f"{text}   [{status}]")
                item.setData(Qt.ItemDataRole.UserRole, text)
                if status == "retired":
                    item.setForeground(QBrush(_RETIRED))
                    font = QFont(item.font())
                    font.setStrikeOut(True)
                    item.setFont(font)
                elif status != "active":
                    item.setBackground(QBrush(_DRAFT))
                self.descriptions.addItem(item)
            for example, status in row.examples:  # example images, listed after the words
                name = f"[example image {example.sha256[:12]}] {example.reason}".rstrip()
                item = QListWidgetItem(name if status == "active" else f"{name}   [{status}]")
                if status == "retired":
                    item.setForeground(QBrush(_RETIRED))
                elif status != "active":
                    item.setBackground(QBrush(_DRAFT))
                self.descriptions.addItem(item)
        self.descriptions.blockSignals(False)
        self.descriptions_title.setText(f"Descriptions of {row.name} [{row.id}]" if row else "Descriptions")
        self.form.set_selection(row, None)

    def _description_selected(self) -> None:
        item = self.descriptions.currentItem()
        text = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        self.form.set_selection(self._selected_row(), text)
