"""The auditor's view: filter inspections, decisions and events; open one inspection in full;
verify the chain; export a period. Queries go through inspector.store.audit; nothing here writes records
except through the core (verification and export are themselves logged there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLabel, QSplitter, QTabWidget, QVBoxLayout, QWidget

from inspector.errors import InspectorError
from inspector.frame.explain import explain_record
from inspector.store.audit import AuditRows, InspectionRecord, inspection_record, search
from inspector.store.corrections import correct_label
from inspector.store.export_filter import ExportPlan, plan_export
from ui.audit.actions import AuditActions
from ui.audit.correction_dialog import ask_correction
from ui.audit.example_strip import ExampleStrip
from ui.audit.filter_bar import AuditFilterBar
from ui.audit.inspection_detail import InspectionDetail
from ui.audit.search_panel import SearchPanel
from ui.context import AppContext
from ui.widgets.record_table import RecordTable
from ui.widgets.status_line import StatusLine

INSPECTION_COLUMNS = [
    ("id", "Inspection"),
    ("recorded_at", "Recorded (UTC)"),
    ("user", "Recorded by"),
    ("top_label_id", "Model #1"),
    ("disposition", "Verdict"),
    ("state", "State"),
    ("corrected", "Corrected"),
    ("review", "Review"),
    ("library_version", "Library"),
    ("model", "Model"),
]
DECISION_COLUMNS = [
    ("id", "Decision"),
    ("decided_at", "Decided (UTC)"),
    ("inspection_id", "Inspection"),
    ("operator", "Who"),
    ("role", "Role"),
    ("password", "Password"),  # "admin-set": decided before the operator chose their own password
    ("kind", "Answer"),
    ("label_id", "Label"),
    ("picked_rank", "Rank"),
    ("corrects_id", "Corrects"),
    ("note", "Reason / typed"),
]
EVENT_COLUMNS = [
    ("id", "Event"),
    ("recorded_at", "Recorded (UTC)"),
    ("kind", "Kind"),
    ("user", "User"),
    ("subject", "Subject"),
    ("detail", "Detail"),
]
# Events an auditor must not overlook; everything else stays in plain text.
TROUBLE_EVENTS = ("denied", "login_failed", "account_locked", "camera_fault", "camera_stalled")


def _corrected(count: int) -> str:
    return "" if not count else "yes" if count == 1 else f"yes ({count}x)"


def _trouble_event(row: dict[str, Any]) -> bool:
    return row["kind"] in TROUBLE_EVENTS or (row["kind"] == "verification" and '"ok":false' in row["detail"])


class AuditView(QWidget):
    """Filter bar, three record tables, inspection detail, verification and export."""

    def __init__(self, context: AppContext, parent: QWidget | None = None, settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.context = context
        log = context.station.log
        operators = [row["name"] for row in log.users.accounts()]
        labels = [s.id for s in log.library.labels()]
        self.filter_bar = AuditFilterBar(operators, labels)
        self.summary = StatusLine()
        self.inspections = RecordTable(INSPECTION_COLUMNS)
        self.decisions = RecordTable(DECISION_COLUMNS)
        self.events = RecordTable(EVENT_COLUMNS, trouble=_trouble_event)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.inspections, "Inspections")
        self.tabs.addTab(self.decisions, "Decisions")
        self.tabs.addTab(self.events, "Events")
        # issue 17: search the history by words or example; a click opens the inspection here
        self.search = SearchPanel(log.sdb.path, lambda: context.station.scorer, self.open_inspection)
        self.tabs.addTab(self.search, "Search")
        self.detail = InspectionDetail(
            lambda record, rank: explain_record(context.station, record, rank),
            current_model=lambda: context.station.model_id,
            can_correct=context.can("correct"),
        )
        # (record) -> (label id, reason) or None: the dialog by default, injectable for tests
        self.ask_correction: Callable[[InspectionRecord], tuple[str, str] | None] = lambda r: ask_correction(r, self)
        self.actions = AuditActions(context, self.export_plan, settings=settings)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.tabs)
        self.examples = ExampleStrip()  # what the ranking compared the part with (library examples)
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.detail, 1)
        column.addWidget(self.examples)
        split.addWidget(right)
        split.setSizes([640, 640])
        note = QLabel("All times are UTC. Records are never edited: a correction is a new decision with a reason.")
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter_bar)
        layout.addWidget(note)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        layout.addWidget(self.actions)

        self.filter_bar.applied.connect(self.apply_filter)
        self.inspections.currentCellChanged.connect(lambda r, *_: self._open_row(self.inspections.row_at(r), "id"))
        self.decisions.currentCellChanged.connect(
            lambda r, *_: self._open_row(self.decisions.row_at(r), "inspection_id")
        )
        self.actions.task_done.connect(self.apply_filter)  # verification and export are logged as events
        self.detail.correct_requested.connect(self.correct)
        self.rows: AuditRows | None = None
        self.apply_filter()

    @property
    def choose_folder(self) -> Callable[[], str | None]:
        """Where an export goes: a callable returning a new folder path, or None to cancel (injectable)."""
        return self.actions.choose_folder

    @choose_folder.setter
    def choose_folder(self, chooser: Callable[[], str | None]) -> None:
        self.actions.choose_folder = chooser

    def apply_filter(self) -> AuditRows | None:
        """Run the filter through the core and fill the three tables."""
        try:
            rows = search(self.context.station.log, self.filter_bar.current())
        except InspectorError as exc:
            self.summary.show_error(f"Filter not applied: {exc}")
            return None
        self.rows = rows
        self.inspections.set_rows(
            [
                {
                    **r,
                    "review": "review" if r["needs_review"] else "",
                    "model": r["model_id"][:12],
                    "corrected": _corrected(r["corrections"]),
                }
                for r in rows.inspections
            ]
        )
        self.decisions.set_rows(
            [
                {
                    **r,
                    "note": r["reason"] or r["typed_description"] or r["comment"],
                    "password": "admin-set" if r.get("admin_set_password") else "",
                }
                for r in rows.decisions
            ]
        )
        self.events.set_rows(rows.events)
        more = f" (each list stops at {rows.limit}: narrow the period)" if rows.truncated else ""
        self.summary.show_info(
            f"{len(rows.inspections)} inspections, {len(rows.decisions)} decisions, {len(rows.events)} events{more}."
        )
        return rows

    def open_inspection(self, inspection_id: int) -> bool:
        """Show one inspection in the detail pane; False (and a message) if it cannot be read."""
        try:
            record = inspection_record(self.context.station.log, inspection_id)
        except InspectorError as exc:
            self.summary.show_error(f"Cannot open inspection {inspection_id}: {exc}")
            return False
        self.examples.set_record(self.context.station.log, record)  # reads the scoring configuration too
        good = self.examples.evidence.good_model if self.examples.evidence is not None else ""
        self.detail.set_record(record, good_model=good)
        return True

    def correct(self, record: InspectionRecord) -> bool:
        """Ask QA for the right label and a reason, and record the correction through the core (which
        checks the role and the reason); True when recorded. One small insert: it runs on this thread."""
        answer = self.ask_correction(record)
        if answer is None:
            return False
        label, reason = answer
        try:
            decision_id = correct_label(self.context.station.log, record.id, label, reason, self.context.user)
        except InspectorError as exc:
            self.summary.show_error(f"Correction not recorded: {exc}")
            return False
        self.apply_filter()
        self.open_inspection(record.id)
        self.summary.show_info(f"Correction recorded: inspection {record.id} is now {label} (decision {decision_id}).")
        return True

    def export_plan(self) -> ExportPlan:
        """What an export of the filter in force would write (InspectorError for a mistyped time)."""
        return plan_export(self.context.station.log, self.filter_bar.current())

    def _open_row(self, row: dict[str, Any] | None, key: str) -> None:
        if row is not None:
            self.open_inspection(int(row[key]))
