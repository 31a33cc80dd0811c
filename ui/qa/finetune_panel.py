"""Fine-tuning from the decision log: start a run, watch it, compare, promote or roll back.

The run is inspector.learning.loop.run_finetune in a Task: it opens its own database connection (an
sqlite connection belongs to its thread), reports progress and stops at the next step when asked
or at the wall-time cap. Promote and roll back are one short transaction each, through
inspector.learning.registry: the core checks the role, the reason and the figures, and its refusal is shown
as it is. After a change the station loads the active model in the background (ModelFollower)
while the line keeps running on the old one.
"""

from __future__ import annotations

import html
import time
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.learning.loop import FinetuneConfig, FinetuneProgress, FinetuneResult, run_finetune
from inspector.learning.registry import DEFAULT_TOLERANCE, ModelRegistry, RegisteredModel
from ui.context import AppContext
from ui.model_follower import ModelFollower
from ui.qa.model_figures import ModelFigures
from ui.widgets.status_line import StatusLine
from ui.widgets.workers import Task, keep_alive

_COLUMNS = ("Model", "State", "Confirm. top-1", "Typed top-1", "Registered (UTC)", "By", "Reason")

_INTRO = (
    "Fine-tune the model in use on this station's confirmed answers (picks and confirmations; rejected"
    " images and 'none of these' are left out). A fixed share of images is held out: the new model and"
    " the model in use are both measured on those and on the shipped typed-defect set. The result is a"
    " candidate; it goes into production only when a QA engineer promotes it."
)


def _run(progress, cancelled, db_path: str, config: FinetuneConfig, user, default_ref: str) -> FinetuneResult:
    def report(p: FinetuneProgress) -> None:
        progress(p.step, p.total, f"{p.stage}: {p.message}")

    return run_finetune(db_path, None, config, report, cancelled, user=user, default_ref=default_ref)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def _top1(model: RegisteredModel, name: str) -> str:
    side = model.figures.get("candidate") or model.figures.get("baseline") or {}
    value = (side.get(name) or {}).get("top1")
    return "-" if value is None else f"{value:.3f}"


class FinetunePanel(QWidget):
    """Run box, the station's registered models with their figures, promote and roll back."""

    registry_changed = Signal()  # a candidate was added, or the active model changed

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.follower = context.follower or ModelFollower(context.station, self)
        # Settings not on the form (held-out share, split seed, forgetting set) keep the engine's defaults.
        self.base_config = FinetuneConfig(device=context.config.model.device)
        self.models: list[RegisteredModel] = []
        self._task: Task | None = None
        self._started = 0.0
        self._last = (0, 0, "")
        self._build()
        self._wire()
        self.refresh()

    # --- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.in_use = QLabel()
        self.in_use.setWordWrap(True)
        self.in_use.setTextFormat(Qt.TextFormat.RichText)
        intro = QLabel(_INTRO)
        intro.setWordWrap(True)
        self.steps = QSpinBox(minimum=1, maximum=100_000, value=self.base_config.steps)
        self.cap = QDoubleSpinBox(
            minimum=0.1,
            maximum=24 * 60,
            decimals=1,
            suffix=" min",
            value=(self.base_config.max_wall_seconds or 1800) / 60,
        )
        self.cap.setToolTip("Training stops here; the model so far is evaluated. Start again to continue it.")
        self.start_button = QPushButton("Start run")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m steps")
        self.stage = QLabel("No run yet in this session.")
        self.stage.setWordWrap(True)
        run = QGroupBox("New run from the decision log")
        controls = QHBoxLayout()
        for widget in (
            QLabel("Steps"),
            self.steps,
            QLabel("Time cap"),
            self.cap,
            self.start_button,
            self.cancel_button,
        ):
            controls.addWidget(widget)
        controls.addWidget(self.progress, 1)
        run_layout = QVBoxLayout(run)
        run_layout.addWidget(intro)
        run_layout.addLayout(controls)
        run_layout.addWidget(self.stage)

        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setWordWrap(False)  # long reasons elide; the tooltip has them whole
        models = QGroupBox("Models on this station")
        QVBoxLayout(models).addWidget(self.table)

        self.figures = ModelFigures()
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("Reason (required): why this model should run in production")
        # QA's allowance for the shipped generic set: a plant unlike it loses top-1 there as it learns.
        self.typed_drop = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.05, value=DEFAULT_TOLERANCE)
        self.typed_drop.setToolTip(
            "Allowed drop in top-1 and MRR on the shipped typed-defect set (default "
            f"{DEFAULT_TOLERANCE:.2f}). Raise it only for a plant whose parts are unlike"
            " the generic defects; the promotion records the value."
        )
        self.promote_button = QPushButton("Promote")
        self.rollback_button = QPushButton("Roll back to this model")
        decide = QHBoxLayout()
        decide.addWidget(self.reason, 1)
        decide.addWidget(self.promote_button)
        decide.addWidget(self.rollback_button)
        detail = QGroupBox("Selected model against the model it was trained from")
        detail_layout = QVBoxLayout(detail)
        detail_layout.addWidget(self.figures)
        allowance = QHBoxLayout()
        allowance.addWidget(QLabel("Allowed drop in top-1 and MRR on the shipped typed-defect set:"))
        allowance.addWidget(self.typed_drop)
        allowance.addStretch(1)
        detail_layout.addLayout(allowance)
        detail_layout.addLayout(decide)
        detail_layout.addStretch(1)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(models)
        split.addWidget(detail)
        split.setSizes([660, 560])
        self.status = StatusLine()
        layout = QVBoxLayout(self)
        layout.addWidget(self.in_use)
        layout.addWidget(run)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)

    def _wire(self) -> None:
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.promote_button.clicked.connect(lambda: self.promote())
        self.typed_drop.valueChanged.connect(lambda v: self.figures.set_tolerances({"typed_defects": v}))
        self.rollback_button.clicked.connect(lambda: self.rollback())
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.follower.switched.connect(self._switched)
        self.follower.failed.connect(self.status.show_error)
        self.follower.switching.connect(
            lambda model_id: self.in_use.setText(self.in_use.text() + f" · loading {model_id[:12]} …")
        )
        self._clock_timer = QTimer(self, interval=1000, timeout=self._show_progress)

    # --- the run ----------------------------------------------------------------------------

    @property
    def task(self) -> Task | None:
        """The running (or last) fine-tuning run."""
        return self._task

    def running(self) -> bool:
        return self._task is not None and self._task.is_running()

    def run_config(self) -> FinetuneConfig:
        """The settings a Start would use: the form's steps and cap over base_config."""
        return replace(self.base_config, steps=self.steps.value(), max_wall_seconds=60 * self.cap.value())

    def start(self) -> bool:
        """Start a run in the background; False if one is running. The core checks the role."""
        if self.running() or self.context.user is None:
            return False
        config = self.run_config()
        db_path = str(self.context.station.log.sdb.path)
        # No Qt parent: the run may outlive this panel (sign-out, idle lock; shutdown() cancels it, the
        # training state is kept and the next Start resumes it), so it is held until its thread ends.
        task = Task(_run, db_path, config, self.context.user, self.context.config.model.ref)
        keep_alive(task, task.done)
        # Bound methods only: Qt drops these connections when the panel is deleted.
        task.progress.connect(self._on_progress)
        task.finished.connect(self._finished)
        task.failed.connect(self._failed)
        task.cancelled.connect(self._cancelled)
        task.done.connect(self._run_ended)
        self._task = task
        self.progress.setRange(0, config.steps)
        self.progress.setValue(0)
        self._started, self._last = time.monotonic(), (0, config.steps, "starting")
        self.status.show_info("Fine-tuning runs in the background; the station keeps inspecting meanwhile.")
        self._task.start()
        self._clock_timer.start()
        self._update_buttons()
        self._show_progress()
        return True

    def shutdown(self) -> None:
        """The panel goes away (sign-out): ask a running run to stop; it finishes unobserved."""
        self._clock_timer.stop()
        if self.running():
            self._task.cancel()

    def cancel(self) -> None:
        """Ask the run to stop at the next step (its training state is kept for a later Start)."""
        if self.running():
            self._task.cancel()
            self.stage.setText(self.stage.text() + " · stopping after this step …")

    def _on_progress(self, step: int, total: int, text: str) -> None:
        self._last = (step, total, text)
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(min(step, total))
        self._show_progress()

    def _show_progress(self) -> None:
        step, total, text = self._last
        cap = self.run_config().max_wall_seconds or 0
        self.stage.setText(
            f"{text} · {_clock(time.monotonic() - self._started)} elapsed"
            f" (training stops at the {_clock(cap)} time cap)"
        )

    def _finished(self, result: FinetuneResult) -> None:
        self.refresh()
        if result.candidate is None:
            self._cancelled()
            return
        self.select(result.candidate.model_id)
        self.progress.setValue(self.progress.maximum())
        self.status.show_info(result.summary())
        self.registry_changed.emit()

    def _failed(self, message: str) -> None:
        self.status.show_failure(self.context, "finetune", f"The run failed: {message}")

    def _cancelled(self) -> None:
        step, total, _ = self._last
        self.refresh()
        self.status.show_info(
            f"Run cancelled at step {step} of {total}; nothing was registered from it. Its"
            " training state is kept: Start with the same settings continues it."
        )

    def _run_ended(self) -> None:
        self._clock_timer.stop()
        step, total, _ = self._last
        cap = self.run_config().max_wall_seconds or 0
        self.stage.setText(
            f"Run ended after {_clock(time.monotonic() - self._started)} at step {step} of {total}"
            f" (time cap {_clock(cap)})."
        )
        self._update_buttons()

    # --- the registry -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the registered models (newest first) and keep the selection."""
        selected = self.selected()
        try:
            self.models = list(reversed(ModelRegistry(self.context.station.log).list()))
        except InspectorError as exc:
            self.status.show_error(f"Cannot read the model registry: {exc}")
            return
        running = self.context.station.model_id
        self.table.setRowCount(len(self.models))
        for r, m in enumerate(self.models):
            state = m.state + (" · running" if m.model_id == running else "")
            cells = (
                m.model_id[:12],
                state,
                _top1(m, "confirmations"),
                _top1(m, "typed_defects"),
                m.registered_at[:16].replace("T", " "),
                m.registered_by,
                m.reason,
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{m.model_id}\n{m.checkpoint}\n{m.reason}")
                self.table.setItem(r, c, item)
        if selected is not None:
            self.select(selected.model_id)
        elif self.models:
            self.table.selectRow(0)
        self._selection_changed()
        self._show_in_use()

    def selected(self) -> RegisteredModel | None:
        rows = self.table.selectionModel().selectedRows()
        return self.models[rows[0].row()] if rows and rows[0].row() < len(self.models) else None

    def select(self, model_id: str) -> bool:
        """Select the model with this id; False if it is not listed."""
        for r, m in enumerate(self.models):
            if m.model_id == model_id:
                self.table.selectRow(r)
                return True
        return False

    def promote(self, model_id: str | None = None, reason: str | None = None) -> RegisteredModel | None:
        """Promote a candidate (default: the selected one) through the core; None if it refused."""
        return self._change("promote", model_id, reason)

    def set_tolerances(self) -> dict[str, float]:
        """The per-set allowances a promotion from this panel uses (only the typed-defect set is adjustable)."""
        return {"typed_defects": round(self.typed_drop.value(), 2)}

    def rollback(self, model_id: str | None = None, reason: str | None = None) -> RegisteredModel | None:
        """Make an earlier active model active again through the core; None if it refused."""
        return self._change("rollback", model_id, reason)

    def _change(self, action: str, model_id: str | None, reason: str | None) -> RegisteredModel | None:
        target = model_id or (self.selected().model_id if self.selected() else None)
        if target is None:
            self.status.show_error("Select a model first.")
            return None
        registry = ModelRegistry(self.context.station.log)
        why = self.reason.text() if reason is None else reason
        try:
            # The core checks the role (and logs a denial), the reason and, for a promotion, the figures.
            if action == "promote":
                model = registry.promote(target, self.context.user, why, set_tolerances=self.set_tolerances())
            else:
                model = registry.rollback(target, self.context.user, why)
        except InspectorError as exc:
            self.status.show_error(f"{'Promotion' if action == 'promote' else 'Rollback'} refused: {exc}")
            self.refresh()  # a refusal is on the record; the list may show it
            return None
        self.reason.clear()
        self.refresh()
        self.status.show_info(
            f"Model {model.model_id[:12]} is now active. The station loads it in the background"
            " and switches between two parts; the line keeps running meanwhile."
        )
        self.registry_changed.emit()
        self.follower.check()
        return model

    def _selection_changed(self) -> None:
        active = next((m.model_id for m in self.models if m.state == "active"), None)
        self.figures.show_model(self.selected(), active)
        self._update_buttons()

    def _switched(self, model_id: str) -> None:
        self._show_in_use()
        self.refresh()
        self.status.show_info(f"The station now runs model {model_id[:12]}.")

    def _show_in_use(self) -> None:
        model = self.context.station.model
        ref = Path(model.ref).name if model.ref else model.model_id[:12]
        active = next((m.model_id for m in self.models if m.state == "active"), None)
        if active is None:
            why = "the configured model; no model is active in the registry yet"
        elif active == model.model_id:
            why = "the registry's active model"
        else:  # between a promotion and the switch, or the new model could not be loaded (see below)
            why = f"the registry's active model is {active[:12]}; the station switches when it has loaded it"
        self.in_use.setText(f"<b>In use:</b> model {model.model_id[:12]} ({html.escape(ref)}) — {html.escape(why)}.")

    def _update_buttons(self) -> None:
        may = self.context.can("promote_model")  # the core refuses anyway; this only avoids dead ends
        running = self.running()
        selected = self.selected()
        self.start_button.setEnabled(may and not running)
        self.cancel_button.setEnabled(running)
        self.steps.setEnabled(may and not running)
        self.cap.setEnabled(may and not running)
        self.reason.setEnabled(may)
        self.typed_drop.setEnabled(may)
        self.promote_button.setEnabled(may and selected is not None and selected.state == "candidate")
        self.rollback_button.setEnabled(may and selected is not None and selected.state == "retired")
        if not may:
            role = self.context.user.role if self.context.user is not None else "signed out"
            tip = f"Only QA engineers may fine-tune, promote or roll back models (your role: {role})."
            for widget in (self.start_button, self.promote_button, self.rollback_button):
                widget.setToolTip(tip)
