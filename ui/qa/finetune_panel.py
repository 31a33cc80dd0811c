"""Fine-tuning from the decision log: start a run, watch it, compare, promote or roll back.

The panel composes three boxes: the run (ui.qa.finetune_run_box: a Task around
inspector.learning.loop.run_finetune), the registered models (ui.qa.model_table) and the selected
model's figures with promote and roll back (ui.qa.promote_box). Promote and roll back are one short
transaction each, through inspector.learning.registry: the core checks the role, the reason and the
figures, and its refusal is shown as it is. After a change the station loads the active model in the
background (ModelFollower) while the line keeps running on the old one.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from inspector.errors import InspectorError
from inspector.learning.loop import FinetuneConfig, FinetuneResult
from inspector.learning.registry import ModelRegistry, RegisteredModel
from ui.context import AppContext
from ui.model_follower import ModelFollower
from ui.qa.finetune_run_box import FinetuneRunBox
from ui.qa.model_table import ModelTable
from ui.qa.promote_box import PromoteBox
from ui.widgets.status_line import StatusLine
from ui.widgets.workers import Task


class FinetunePanel(QWidget):
    """Run box, the station's registered models with their figures, promote and roll back."""

    registry_changed = Signal()  # a candidate was added, or the active model changed

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.follower = context.follower or ModelFollower(context.station, self)
        self._build(FinetuneConfig(device=context.config.model.device))
        self._wire()
        self.refresh()
        self.count_data()

    # --- layout ----------------------------------------------------------------------------

    def _build(self, base_config: FinetuneConfig) -> None:
        self.in_use = QLabel()
        self.in_use.setWordWrap(True)
        self.in_use.setTextFormat(Qt.TextFormat.RichText)
        self.run_box = FinetuneRunBox(base_config)
        self.model_table = ModelTable()
        self.promote_box = PromoteBox()
        # The parts tests and scripts reach for, under the names they had before the split.
        self.steps, self.cap, self.progress, self.stage = (
            self.run_box.steps,
            self.run_box.cap,
            self.run_box.progress,
            self.run_box.stage,
        )
        self.start_button, self.cancel_button = self.run_box.start_button, self.run_box.cancel_button
        self.table = self.model_table.table
        self.figures, self.reason, self.typed_drop = (
            self.promote_box.figures,
            self.promote_box.reason,
            self.promote_box.typed_drop,
        )
        self.promote_button, self.rollback_button = self.promote_box.promote_button, self.promote_box.rollback_button
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.model_table)
        split.addWidget(self.promote_box)
        split.setSizes([660, 560])
        self.status = StatusLine()
        layout = QVBoxLayout(self)
        layout.addWidget(self.in_use)
        layout.addWidget(self.run_box)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)

    def _wire(self) -> None:
        self.start_button.clicked.connect(self.start)
        self.promote_button.clicked.connect(lambda: self.promote())
        self.rollback_button.clicked.connect(lambda: self.rollback())
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.run_box.finished.connect(self._finished)
        self.run_box.failed.connect(self._failed)
        self.run_box.cancelled.connect(self._cancelled)
        self.run_box.ended.connect(self._update_buttons)
        self.run_box.ended.connect(self.count_data)  # the run may have added nothing, but answers keep coming
        # The follower may be the window's and outlive this panel (issue 15 item 12): bound methods of
        # the panel only, which Qt disconnects when the panel is deleted; shutdown() disconnects them sooner.
        self.follower.switched.connect(self._switched)
        self.follower.failed.connect(self._follower_failed)
        self.follower.switching.connect(self._switching)
        self._following = True

    # --- the run ----------------------------------------------------------------------------

    @property
    def base_config(self) -> FinetuneConfig:
        """Settings not on the form (held-out share, split seed, forgetting set); the engine's defaults."""
        return self.run_box.base_config

    @base_config.setter
    def base_config(self, config: FinetuneConfig) -> None:
        self.run_box.base_config = config
        self.count_data()  # the held-out share and the minimum come from it

    def count_data(self) -> Task | None:
        """Count (in the background) what a run would have to learn from; Start waits for enough."""
        if self.context.user is None or not self.context.can("promote_model"):
            self.run_box.needs_note.hide()  # only those who may start a run are told what it needs
            return None
        return self.run_box.count_data(str(self.context.station.log.sdb.path), self.context.user)

    @property
    def task(self) -> Task | None:
        """The running (or last) fine-tuning run."""
        return self.run_box.task

    def running(self) -> bool:
        return self.run_box.running()

    def run_config(self) -> FinetuneConfig:
        """The settings a Start would use: the form's steps and cap over base_config."""
        return self.run_box.run_config()

    def start(self) -> bool:
        """Start a run in the background; False if one is running. The core checks the role."""
        if self.running() or self.context.user is None:
            return False
        if self.run_box.ready is False:  # the core would refuse it too; say what is missing instead
            self.status.show_error(f"Not enough data for a run: {self.run_box.needs.shortfall()}")
            return False
        self.status.show_info("Fine-tuning runs in the background; the station keeps inspecting meanwhile.")
        self.run_box.start(str(self.context.station.log.sdb.path), self.context.user, self.context.config.model.ref)
        self._update_buttons()
        return True

    def shutdown(self) -> None:
        """The panel goes away (sign-out): ask a running run to stop (it finishes unobserved) and stop
        following the model follower, which may be the window's and outlive the panel."""
        self.run_box.shutdown()
        if self._following:
            self._following = False
            self.follower.switched.disconnect(self._switched)
            self.follower.failed.disconnect(self._follower_failed)
            self.follower.switching.disconnect(self._switching)

    def cancel(self) -> None:
        """Ask the run to stop at the next step (its training state is kept for a later Start)."""
        self.run_box.cancel()

    def _finished(self, result: FinetuneResult) -> None:
        self.refresh()
        if result.candidate is None:
            self._cancelled()
            return
        self.select(result.candidate.model_id)
        self.status.show_info(result.summary())
        self.registry_changed.emit()

    def _failed(self, message: str) -> None:
        self.status.show_failure(self.context, "finetune", f"The run FAILED; nothing was registered: {message}")

    def _cancelled(self) -> None:
        step, total, _ = self.run_box.last
        self.refresh()
        self.status.show_info(
            f"Run cancelled at step {step} of {total}; nothing was registered from it. Its"
            " training state is kept: Start with the same settings continues it."
        )

    # --- the registry -----------------------------------------------------------------------

    @property
    def models(self) -> list[RegisteredModel]:
        """The registered models as listed, newest first."""
        return self.model_table.models

    def refresh(self) -> None:
        """Reload the registered models (newest first) and keep the selection."""
        try:
            models = list(reversed(ModelRegistry(self.context.station.log).list()))
        except InspectorError as exc:
            self.status.show_error(f"Cannot read the model registry: {exc}")
            return
        self.model_table.show_models(models, self.context.station.model_id)
        self._selection_changed()
        self._show_in_use()

    def selected(self) -> RegisteredModel | None:
        return self.model_table.selected()

    def select(self, model_id: str) -> bool:
        """Select the model with this id; False if it is not listed."""
        return self.model_table.select(model_id)

    def promote(self, model_id: str | None = None, reason: str | None = None) -> RegisteredModel | None:
        """Promote a candidate (default: the selected one) through the core; None if it refused."""
        return self._change("promote", model_id, reason)

    def set_tolerances(self) -> dict[str, float]:
        """The per-set allowances a promotion from this panel uses (only the typed-defect set is adjustable)."""
        return self.promote_box.set_tolerances()

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
        self.promote_box.show_model(self.selected(), self.model_table.active())
        self._update_buttons()

    def _switching(self, model_id: str) -> None:
        self.in_use.setText(self.in_use.text() + f" · loading {model_id[:12]} …")

    def _switched(self, model_id: str) -> None:
        self._show_in_use()
        self.refresh()
        self.status.show_info(f"The station now runs model {model_id[:12]}.")

    def _follower_failed(self, message: str) -> None:
        self.status.show_error(message)

    def _show_in_use(self) -> None:
        model = self.context.station.model
        ref = Path(model.ref).name if model.ref else model.model_id[:12]
        active = self.model_table.active()
        if active is None:
            why = "the configured model; no model is active in the registry yet"
        elif active == model.model_id:
            why = "the registry's active model"
        else:  # between a promotion and the switch, or the new model could not be loaded (see below)
            why = f"the registry's active model is {active[:12]}; the station switches when it has loaded it"
        self.in_use.setText(f"<b>In use:</b> model {model.model_id[:12]} ({html.escape(ref)}) — {html.escape(why)}.")

    def _update_buttons(self) -> None:
        may = self.context.can("promote_model")  # the core refuses anyway; this only avoids dead ends
        self.run_box.set_allowed(may)
        self.promote_box.set_allowed(may, self.selected())
        if not may:
            role = self.context.user.role if self.context.user is not None else "signed out"
            tip = f"Only QA engineers may fine-tune, promote or roll back models (your role: {role})."
            for widget in (self.start_button, self.promote_button, self.rollback_button):
                widget.setToolTip(tip)
