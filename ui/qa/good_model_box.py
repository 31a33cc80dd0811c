"""QA's good-part model tab: which model is in force, and (re)building it from confirmed good parts.

The build encodes every operator-confirmed good part with the station's model, so it runs in a Task
on its own database connection (inspector.learning.good_model checks the role, the reason and the
counts); the station picks the new model up on the next frame once it is recorded.
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from inspector.learning.good_model import build_good_model, good_model_history
from inspector.store.decision_log import DecisionLog
from ui.context import AppContext
from ui.widgets.workers import Task, keep_alive


class GoodModelBox(QWidget):
    """The model in force and its history; reason + "Build from confirmed good parts"."""

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.history = QLabel()
        self.history.setWordWrap(True)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("Reason (required): why the good-part model is (re)built now")
        self.build_button = QPushButton("Build from confirmed good parts")
        self.build_button.clicked.connect(self.build)
        self.build_button.setEnabled(context.can("edit_library"))
        self.progress = QLabel()
        row = QHBoxLayout()
        row.addWidget(self.reason, 1)
        row.addWidget(self.build_button)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "The good-part model sends a part ranked good to review when it is unlike every good part"
            " the operators confirmed. Only confirmed good parts build it; a share of them, held out,"
            " sets its threshold (2 % of those held out score above it; on new parts the share is"
            " higher, see BENCHMARKS.md)."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addWidget(self.state)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.history)
        layout.addStretch(1)
        self._task: Task | None = None
        self.refresh()

    def refresh(self) -> None:
        """Show the model in force and the builds and retirements on record."""
        log = self.context.station.log
        rows = good_model_history(log)
        model = self.context.station.good_model
        if model is None:
            self.state.setText("No good-part model is in force: verdicts rest on the ranking alone.")
        else:
            i = model.info
            self.state.setText(
                f"In force: {model.sha256[:12]}, {i['bank_parts']} confirmed good parts in its bank"
                f" ({i['bank_rows']} cells), threshold {model.threshold:.4f} from {i['calibration_parts']} held out."
            )
        self.history.setText(
            "\n".join(
                f"{r['recorded_at']}  {r['kind'].replace('_', ' ')}  {r['subject'][:12]}  by {r['user']}"
                for r in rows[:8]
            )
        )

    def build(self) -> bool:
        """Start a build in a Task; False (and why) when one is running or the reason is missing."""
        if self._task is not None:
            return False
        reason = self.reason.text().strip()
        if not reason:
            self.progress.setText("Give a reason first: it is recorded with the model.")
            return False
        station, user = self.context.station, self.context.user
        path, scorer, settings = station.log.sdb.path, station.scorer, station.scoring

        def run(progress, _cancelled):
            with DecisionLog.open(path, create=False) as log:  # this thread's own connection
                return build_good_model(log, scorer, settings, user, reason, progress=lambda d, t: progress(d, t, ""))

        task = Task(run)
        task.progress.connect(
            lambda done, total, _text: self.progress.setText(f"Encoded {done} of {total} good parts…")
        )
        task.finished.connect(self._built)
        task.failed.connect(self._failed)
        task.done.connect(self._done)
        keep_alive(task, task.done)
        self._task = task
        self.build_button.setEnabled(False)
        self.progress.setText("Building…")
        task.start()
        return True

    def busy(self) -> bool:
        return self._task is not None

    def _built(self, model) -> None:
        self.context.station.refresh_library()  # in force from the next frame
        self.reason.clear()
        self.progress.setText(f"Built {model.sha256[:12]}; it is in force.")
        self.refresh()

    def _failed(self, message: str) -> None:
        self.progress.setText(f"Not built: {message}")

    def _done(self) -> None:
        self._task = None
        self.build_button.setEnabled(self.context.can("edit_library"))
