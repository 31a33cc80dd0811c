"""The audit detail's "ranked against" strip: the example images behind the ranking, as thumbnails.

For each candidate its examples carried (alone or with the words), the examples of the inspection's
library version, labelled with the candidate's rank and each example's reason; the example set's
hash and the good-part model the verdict consulted. The thumbnails are read (hash-checked) and
scaled in a Task, so a large example never blocks the GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from inspector.errors import InspectorError
from inspector.library.ranked_examples import RankingEvidence, ranking_evidence, thumbnail
from inspector.store.audit import InspectionRecord
from inspector.store.decision_log import DecisionLog
from ui.audit.inspection_detail import to_pixmap
from ui.widgets import palette
from ui.widgets.workers import Task, keep_alive

_PER_ROW = 4


class ExampleStrip(QWidget):
    """Examples behind one inspection's ranking; hidden for an inspection ranked by words alone."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.grid = QGridLayout()
        self.note = QLabel()
        self.note.setStyleSheet(f"color: {palette.MUTED};")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(self.grid)
        layout.addWidget(self.note)
        self.evidence: RankingEvidence | None = None
        self.record_id: int | None = None
        self.images: list[QLabel] = []
        self._task: Task | None = None
        self.setVisible(False)

    def set_record(self, log: DecisionLog, record: InspectionRecord) -> None:
        """Show what `record` was ranked against (a few rows from the log; thumbnails follow)."""
        self.record_id = record.id
        self.evidence = ev = ranking_evidence(log, record)
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.images = []
        good = f" · good-part model {ev.good_model[:12]}" if ev.good_model else ""
        self.setVisible(bool(ev.examples or ev.good_model))
        if not ev.examples:
            self.title.setText(f"Ranked by the descriptions alone{good}.")
            self.note.setText("")
            return
        n = len(ev.examples)
        self.title.setText(
            f"Ranked against {n} example image{'s' if n != 1 else ''} of library v{record.library_version}"
            f" (example set {ev.example_set_hash[:12]}){good}:"
        )
        for i, item in enumerate(ev.examples):
            cell = QLabel("…")
            cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cell.setFixedSize(100, 100)
            cell.setStyleSheet("QLabel { background: white; border: 1px solid #c8c8c8; }")
            caption = QLabel(
                f"#{item.rank} {item.label_name} ({item.carried_by})\n{item.example.reason or item.example.sha256[:12]}"
            )
            caption.setWordWrap(True)
            cell.setToolTip(
                f"{item.label_id}: example {item.example.sha256}"
                + (f", box {list(item.example.box)}" if item.example.box else "")
            )
            row, col = divmod(i, _PER_ROW)
            self.grid.addWidget(cell, 2 * row, col)
            self.grid.addWidget(caption, 2 * row + 1, col)
            self.images.append(cell)
        self.note.setText("Loading the example images…")
        self._load(record.id, ev)

    def _load(self, record_id: int, ev: RankingEvidence) -> None:
        def run(_progress, _cancelled):
            out = []
            for item in ev.examples:
                try:
                    out.append(thumbnail(item))
                except InspectorError as exc:  # a missing or replaced example file is a finding: say so
                    out.append(str(exc))
            return record_id, out

        task = Task(run)
        task.finished.connect(self._loaded)
        task.failed.connect(self.note.setText)
        keep_alive(task, task.done)
        self._task = task
        task.start()

    def _loaded(self, answer: tuple[int, list]) -> None:
        record_id, thumbs = answer
        if record_id != self.record_id or len(thumbs) != len(self.images):
            return  # the auditor moved on
        problems = 0
        for cell, thumb in zip(self.images, thumbs):
            if isinstance(thumb, str):
                cell.setText("cannot\nbe shown")
                cell.setToolTip(thumb)
                problems += 1
            else:
                cell.setPixmap(to_pixmap(thumb))
        self.note.setText(f"{problems} example images cannot be shown (see their tooltips)." if problems else "")
