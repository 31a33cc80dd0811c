"""Search the history by words or by an example (issue 17): a box, a button, thumbnails.

The query (a text embedding, a vector search) runs on one worker thread that owns its own
database connection and the search index, so the GUI thread never waits; clicking a thumbnail
asks the view to open that inspection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.frame.scorer import Scorer
from inspector.search.service import SearchAnswer, SearchService
from inspector.store.decision_log import DecisionLog

THUMB = 96


class _Relay(QObject):
    done = Signal(object, object)  # (SearchAnswer, {inspection id: QImage}) or (None, error text)


class SearchPanel(QWidget):
    """Type words (or '#ID' for parts like inspection ID) and press Enter; click a result to open it."""

    def __init__(
        self,
        db_path: str | Path,
        scorer_of: Callable[[], Scorer],
        open_inspection: Callable[[int], object],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db_path, self.scorer_of, self.open_inspection = Path(db_path), scorer_of, open_inspection
        self.box = QLineEdit()
        self.box.setPlaceholderText(
            "Search past parts: e.g. 'crack near the edge', or #123 for parts like inspection 123"
        )
        self.button = QPushButton("Search")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.results = QListWidget()
        self.results.setViewMode(QListWidget.ViewMode.IconMode)
        self.results.setIconSize(QSize(THUMB, THUMB))
        self.results.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.results.setGridSize(QSize(THUMB + 40, THUMB + 44))
        row = QHBoxLayout()
        row.addWidget(self.box, 1)
        row.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search")
        self._local = threading.local()
        self._relay = _Relay()
        self._relay.done.connect(self._show)
        self.box.returnPressed.connect(self.run_query)
        self.button.clicked.connect(self.run_query)
        self.results.itemClicked.connect(lambda item: self.open_inspection(int(item.data(Qt.ItemDataRole.UserRole))))

    def run_query(self, k: int = 24) -> None:
        """Start the search in the worker (returns at once)."""
        text = self.box.text().strip()
        if not text:
            return
        self.button.setEnabled(False)
        self.status.setText("Searching…")
        self._pool.submit(self._work, text, k, self.scorer_of())

    def _work(self, text: str, k: int, scorer: Scorer) -> None:
        try:
            service = getattr(self._local, "service", None)
            if service is None:
                service = self._local.service = SearchService(DecisionLog.open(self.db_path, create=False))
            current = scorer.model_id
            if service.answering_model(current) != current:
                note = "the current model's vectors are still being built; results cover only the parts embedded so far"
            else:
                note = ""
            if text.startswith("#"):
                answer = service.like(scorer, text[1:], current, k=k)
            else:
                answer = service.text(scorer, text, current, k=k)
            images = {}
            for hit in answer.hits:
                if hit.image_sha256:
                    image = QImage(str(service.log.image_path(hit.image_sha256)))
                    if not image.isNull():
                        images[hit.inspection_id] = image.scaled(
                            THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                        )
            self._relay.done.emit(answer, (images, note))
        except InspectorError as exc:
            self._relay.done.emit(None, str(exc))

    def _show(self, answer: SearchAnswer | None, payload: object) -> None:
        self.button.setEnabled(True)
        self.results.clear()
        if answer is None:
            self.status.setText(f"Search failed: {payload}")
            return
        images, note = payload
        for hit in answer.hits:
            decided = f" → {hit.decided_label}" if hit.decided_label else ""
            item = QListWidgetItem(f"#{hit.inspection_id} {hit.label}{decided}\n{hit.score:.3f}")
            if hit.inspection_id in images:
                item.setIcon(QIcon(QPixmap.fromImage(images[hit.inspection_id])))
            item.setData(Qt.ItemDataRole.UserRole, hit.inspection_id)
            item.setToolTip(f"inspection {hit.inspection_id}, captured {hit.captured_at}")
            self.results.addItem(item)
        self.status.setText(answer.note() + (f" ({note})" if note else ""))

    def close_worker(self) -> None:
        """Stop the worker thread (the view is closing)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
