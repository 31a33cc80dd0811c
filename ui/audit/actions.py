"""Verify the chain and export a period, each in a Task, with the outcome stated plainly.

Both run on their own database connection in the worker (inspector.store.audit.verify_database /
export_database). The export folder comes from `choose_folder`, a plain callable so tests (and
a future headless mode) can supply it; by default it asks with a folder dialog.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QGridLayout, QGroupBox, QProgressBar, QPushButton, QWidget

from inspector.errors import InspectorError
from inspector.store.audit import ExportOutcome, export_database, verify_database
from inspector.store.chain import ChainReport
from ui.context import AppContext
from ui.widgets.status_line import StatusLine
from ui.widgets.workers import Task


def _verify(progress, cancelled, db_path: Path, user) -> ChainReport:
    return verify_database(db_path, user)


def _export(progress, cancelled, db_path: Path, lo: str, hi: str, out: str, user) -> ExportOutcome:
    return export_database(db_path, lo, hi, out, user)


def describe_chain(report: ChainReport) -> str:
    """The verifier's answer in one plain sentence."""
    if report.ok:
        return (
            f"Chain intact: {report.rows} rows verified; head seq {report.head_seq}, anchor at seq {report.anchor_seq}."
        )
    if report.bad_table is not None:
        seq = f" (chain seq {report.bad_seq})" if report.bad_seq is not None else ""
        where = f"seq {report.bad_seq} ({report.bad_table} row {report.bad_row_id}): "
        problem = report.problem.removeprefix(where)  # the core's message repeats the place; say it once
        return f"Chain BROKEN. First bad row: {report.bad_table} row {report.bad_row_id}{seq}: {problem}"
    return f"Chain BROKEN: {report.problem}"


class AuditActions(QGroupBox):
    """[Verify chain] and [Export period], each with its result line."""

    task_done = Signal()  # after either task has ended: both leave events in the log

    def __init__(
        self, context: AppContext, period: Callable[[], tuple[str, str]], parent: QWidget | None = None
    ) -> None:
        super().__init__("Verification and export", parent)
        self.context = context
        self.period = period  # -> (from, to) in UTC, as the filter bar holds them
        self.choose_folder: Callable[[], str | None] = self._ask_folder
        self.verify_button = QPushButton("Verify chain")
        self.export_button = QPushButton("Export period ...")
        self.verify_result, self.export_result = StatusLine(), StatusLine()
        self.export_progress = QProgressBar()
        self.export_progress.setRange(0, 1)
        self.export_progress.setValue(0)
        self.export_progress.setTextVisible(False)
        layout = QGridLayout(self)
        layout.addWidget(self.verify_button, 0, 0)
        layout.addWidget(self.verify_result, 0, 1, 1, 2)
        layout.addWidget(self.export_button, 1, 0)
        layout.addWidget(self.export_progress, 1, 1, 1, 2)
        layout.addWidget(self.export_result, 2, 1, 1, 2)
        layout.setColumnStretch(2, 1)
        self.verify_button.clicked.connect(self.verify)
        self.export_button.clicked.connect(self.export)
        self.verify_task: Task | None = None
        self.export_task: Task | None = None
        for button, permission in ((self.verify_button, "verify"), (self.export_button, "export")):
            allowed = context.can(permission)
            button.setEnabled(allowed)
            if not allowed:
                button.setToolTip(f"Your role may not {permission}")
        if not (context.can("verify") or context.can("export")):
            role = context.user.role if context.user is not None else "signed out"
            self.verify_result.show_info(f"Your role ({role}) may view the records but not verify or export them.")

    @property
    def _db_path(self) -> Path:
        return self.context.station.log.sdb.path

    def verify(self) -> bool:
        """Start verifying the whole chain; False if one is already running."""
        if self.verify_task is not None and self.verify_task.is_running():
            return False
        self.verify_result.show_info("Verifying the chain ...")
        self.verify_button.setEnabled(False)
        task = self.verify_task = Task(_verify, self._db_path, self.context.user, parent=self)
        task.finished.connect(self._verified)
        task.failed.connect(
            lambda message: self.verify_result.show_failure(
                self.context, "verify", f"Verification did not run: {message}"
            )
        )
        task.done.connect(lambda: self.verify_button.setEnabled(self.context.can("verify")))
        task.done.connect(self.task_done)
        task.start()
        return True

    def export(self) -> bool:
        """Ask for a new folder and export the filter's period into it; False if nothing started."""
        if self.export_task is not None and self.export_task.is_running():
            return False
        try:
            lo, hi = self.period()
        except InspectorError as exc:  # a mistyped bound: say so before asking for a folder
            self.export_result.show_error(f"Export not started: {exc}")
            return False
        out = self.choose_folder()
        if not out:
            return False
        self.export_result.show_info(f"Exporting [{lo}, {hi}) to {out} ...")
        self.export_progress.setRange(0, 0)  # the core reports no steps: a busy bar, honestly
        self.export_button.setEnabled(False)
        task = self.export_task = Task(_export, self._db_path, lo, hi, out, self.context.user, parent=self)
        task.finished.connect(self._exported)
        task.failed.connect(
            lambda message: self.export_result.show_failure(self.context, "export", f"Export failed: {message}")
        )
        task.done.connect(self._export_done)
        task.done.connect(self.task_done)
        task.start()
        return True

    def _verified(self, report: ChainReport) -> None:
        text = describe_chain(report)
        if report.ok:
            self.verify_result.show_info(text)
        else:
            self.verify_result.show_error(text)

    def _exported(self, outcome: ExportOutcome) -> None:
        s = outcome.summary
        text = f"Exported {s.rows} records and {s.images} images to {s.out_dir}. Offline check: {outcome.check}"
        if s.warnings:
            text += " Warnings: " + "; ".join(s.warnings)
        if outcome.check.ok and not s.warnings:
            self.export_result.show_info(text)
        else:
            self.export_result.show_error(text)

    def _export_done(self) -> None:
        self.export_progress.setRange(0, 1)
        self.export_progress.setValue(1)
        self.export_button.setEnabled(self.context.can("export"))

    def _ask_folder(self) -> str | None:
        parent = QFileDialog.getExistingDirectory(self, "Export into which folder?")
        if not parent:
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return str(Path(parent) / f"inspector-export-{stamp}")  # exports never reuse a folder
