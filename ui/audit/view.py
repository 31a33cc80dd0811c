"""The auditor's view: filter inspections, decisions and events; open one inspection in full;
verify the chain; export a period. Queries go through inspector.store.audit; nothing here writes records
except through the core (verification and export are themselves logged there)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QTabWidget, QVBoxLayout, QWidget

from inspector.errors import InspectorError
from inspector.frame.explain import explain_record
from inspector.store.audit import AuditRows, inspection_record, search
from inspector.store.database import parse_time, utc_stamp
from ui.audit.actions import AuditActions
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
EARLIEST = "1970-01-01T00:00:00Z"


def _trouble_event(row: dict[str, Any]) -> bool:
    return row["kind"] in TROUBLE_EVENTS or (row["kind"] == "verification" and '"ok":false' in row["detail"])


class AuditView(QWidget):
    """Filter bar, three record tables, inspection detail, verification and export."""

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
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
        self.detail = InspectionDetail(lambda record, rank: explain_record(context.station, record, rank))
        self.actions = AuditActions(context, self.export_period)
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
                {**r, "review": "review" if r["needs_review"] else "", "model": r["model_id"][:12]}
                for r in rows.inspections
            ]
        )
        self.decisions.set_rows(
            [{**r, "note": r["reason"] or r["typed_description"] or r["comment"]} for r in rows.decisions]
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
        self.detail.set_record(record)
        self.examples.set_record(self.context.station.log, record)
        return True

    def export_period(self) -> tuple[str, str]:
        """The filter's period as export bounds (UTC); open ends become the beginning and now."""
        f = self.filter_bar.current()
        lo = parse_time(f.from_ts) if f.from_ts else EARLIEST
        hi = parse_time(f.to_ts) if f.to_ts else utc_stamp(datetime.now(UTC))
        return lo, hi

    def _open_row(self, row: dict[str, Any] | None, key: str) -> None:
        if row is not None:
            self.open_inspection(int(row[key]))
