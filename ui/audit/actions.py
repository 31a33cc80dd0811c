"""Verify the chain and export a period, each in a Task, with the outcome stated plainly.

Both run on their own database connection in the worker (inspector.store.audit.verify_database /
export_database). An export writes what the filter lists (inspector.store.export_filter), says
first what that is (`confirm`), then asks for the folder (`choose_folder`); both are plain
callables so tests (and a future headless mode) can supply them; by default they ask with dialogs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QGridLayout, QGroupBox, QMessageBox, QProgressBar, QPushButton, QWidget

from inspector.errors import InspectorError
from inspector.store.audit import ExportOutcome, export_database, verify_database
from inspector.store.chain import ChainReport
from inspector.store.export_filter import ExportPlan
from ui.audit.export_folder import ask_export_folder
from ui.context import AppContext
from ui.widgets.status_line import StatusLine
from ui.widgets.workers import Task


def _verify(progress, cancelled, db_path: Path, user) -> ChainReport:
    return verify_database(db_path, user)


def _export(
    progress, cancelled, db_path: Path, lo: str, hi: str, out: str, user, selection: Mapping[str, Collection[int]]
) -> ExportOutcome:
    return export_database(db_path, lo, hi, out, user, selection)


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
        self,
        context: AppContext,
        plan: Callable[[], ExportPlan],
        parent: QWidget | None = None,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__("Verification and export", parent)
        self.context = context
        self.plan = plan  # -> what the filter in force would export (InspectorError for a mistyped time)
        self.settings = settings if settings is not None else QSettings()  # the last export folder
        self.choose_folder: Callable[[], str | None] = lambda: ask_export_folder(self, self.settings)
        self.confirm: Callable[[str], bool] = self._ask_confirm
        self._plan: ExportPlan | None = None
        self.verify_button = QPushButton("Verify chain")
        self.export_button = QPushButton("Export filtered records…")
        self.export_button.setToolTip(
            "Exports what the filter lists: its inspections with all their decisions and corrections,"
            " their images, and its events; says what before it asks for a folder"
        )
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
        """Say what the filter would export, ask to go on and for a folder, export; False if nothing started."""
        if self.export_task is not None and self.export_task.is_running():
            return False
        try:
            plan = self.plan()
        except InspectorError as exc:  # a mistyped bound: say so before asking anything
            self.export_result.show_error(f"Export not started: {exc}")
            return False
        if plan.empty:
            self.export_result.show_error(plan.describe())
            return False
        if not self.confirm(plan.describe()):
            return False
        try:
            out = self.choose_folder()
        except ValueError as exc:  # a file was chosen, not a folder
            self.export_result.show_error(f"Export not started: {exc}")
            return False
        if not out:
            return False
        self._plan = plan
        self.export_result.show_info(f"Exporting {len(plan.inspections)} inspections to {out} …")
        self.export_progress.setRange(0, 0)  # the core reports no steps: a busy bar, honestly
        self.export_button.setEnabled(False)
        args = (plan.from_ts, plan.to_ts, out, self.context.user, plan.selection())
        task = self.export_task = Task(_export, self._db_path, *args, parent=self)
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
        s, plan = outcome.summary, self._plan
        what = (
            f"{len(plan.inspections)} inspections, {len(plan.decisions)} decisions, {len(plan.events)} events"
            if plan is not None
            else "the records"
        )
        text = (
            f"Exported {what} and {s.images} images to {s.out_dir} (chain segment of {s.rows}"
            f" entries). Offline check: {outcome.check}"
        )
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

    def _ask_confirm(self, description: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Export these records?",
            description + "\n\nNext you choose the folder.",
            QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Ok,
        )
        return answer == QMessageBox.StandardButton.Ok
