"""QA's PoC report and drift banner (issue 17): export the KPI report of a period as one HTML file
(built in a worker Task with its own database connection), and a non-blocking banner that shows
the drift monitor's alarm until QA acknowledges it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from inspector.report.build import build_report
from inspector.store.database import utc_stamp
from inspector.store.decision_log import DecisionLog
from ui.widgets.workers import Task


def _export(_progress, _cancelled, db_path: Path, from_ts: str, to_ts: str, out: str, versus: str | None) -> str:
    with DecisionLog.open(db_path, create=False) as log:
        return str(build_report(log, from_ts, to_ts, out, versus=versus))


class ReportPanel(QWidget):
    """Period boxes, an Export button, the result line; the drift banner above (hidden when quiet)."""

    def __init__(
        self,
        db_path: str | Path,
        banner_text: Callable[[], str | None] = lambda: None,
        acknowledge: Callable[[], None] = lambda: None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db_path, self._banner_text, self._acknowledge = Path(db_path), banner_text, acknowledge
        now = datetime.now(UTC)
        self.from_box = QLineEdit(utc_stamp(now - timedelta(days=7))[:10])
        self.to_box = QLineEdit(utc_stamp(now + timedelta(days=1))[:10])
        # Optional: another registered model re-ranks the same answered parts (`report --versus`).
        self.versus_box = QLineEdit("")
        self.versus_box.setPlaceholderText("registered id, optional")
        self.export_button = QPushButton("Export PoC report…")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.banner = QLabel("")
        self.banner.setStyleSheet("background:#fff3cd;color:#664d03;padding:6px;border:1px solid #ffe69c")
        self.banner.setWordWrap(True)
        self.ack_button = QPushButton("Seen")
        banner_row = QHBoxLayout()
        banner_row.addWidget(self.banner, 1)
        banner_row.addWidget(self.ack_button)
        row = QHBoxLayout()
        for w in (
            QLabel("From (UTC):"),
            self.from_box,
            QLabel("To (UTC):"),
            self.to_box,
            QLabel("Versus model:"),
            self.versus_box,
            self.export_button,
        ):
            row.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addLayout(banner_row)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.choose_file: Callable[[], str | None] = lambda: (
            QFileDialog.getSaveFileName(self, "Save the PoC report", "report.html", "HTML (*.html)")[0] or None
        )
        self.task: Task | None = None
        self.export_button.clicked.connect(self.export)
        self.ack_button.clicked.connect(self._ack)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh_banner)
        self._timer.start(2000)
        self.refresh_banner()

    def refresh_banner(self) -> None:
        """Show or hide the drift banner (polled: the monitor runs on the capture thread)."""
        text = self._banner_text()
        self.banner.setText(text or "")
        self.banner.setVisible(bool(text))
        self.ack_button.setVisible(bool(text))

    def _ack(self) -> None:
        self._acknowledge()
        self.refresh_banner()

    def export(self) -> None:
        """Build and write the report in a worker; the button is off until it is done."""
        out = self.choose_file()
        if not out or self.task is not None:
            return
        self.export_button.setEnabled(False)
        self.status.setText("Building the report…")
        versus = self.versus_box.text().strip() or None
        self.task = Task(_export, self.db_path, self.from_box.text().strip(), self.to_box.text().strip(), out, versus)
        self.task.finished.connect(lambda path: self.status.setText(f"Report written to {path}"))
        self.task.failed.connect(lambda msg: self.status.setText(f"Report not written: {msg}"))
        self.task.done.connect(self._done)
        self.task.start()

    def _done(self) -> None:
        self.task = None
        self.export_button.setEnabled(True)
