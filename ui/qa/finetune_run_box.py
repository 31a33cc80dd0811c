"""The fine-tuning run box: steps and time cap, start, progress and cancel of one run.

The run is inspector.learning.loop.run_finetune in a Task: it opens its own database connection (an
sqlite connection belongs to its thread), reports progress and stops at the next step when asked
or at the wall-time cap. What the run produced is the FinetunePanel's business (signals below).
"""

from __future__ import annotations

import time
from dataclasses import replace

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from inspector.learning.loop import FinetuneConfig, FinetuneProgress, FinetuneResult, run_finetune
from inspector.learning.readiness import DataNeeds, station_data_needs
from inspector.store.users import Session
from ui.widgets import palette
from ui.widgets.workers import Task, keep_alive

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


def _count(progress, cancelled, db_path: str, config: FinetuneConfig, user, generation: int) -> tuple[int, DataNeeds]:
    return generation, station_data_needs(db_path, config, user)


def _note_style(trouble: str | None) -> str:
    bg, fg = palette.TROUBLE[trouble] if trouble else ("transparent", palette.TEXT)
    return f"QLabel {{ background: {bg}; color: {fg}; padding: 3px; }}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


class FinetuneRunBox(QGroupBox):
    """'New run from the decision log': the form, the progress bar and the stage line."""

    finished = Signal(object)  # FinetuneResult (candidate None: the run stopped before registering)
    failed = Signal(str)  # the run's error message
    cancelled = Signal()
    ended = Signal()  # after any of the above: the run's thread has ended

    def __init__(self, base_config: FinetuneConfig, parent: QWidget | None = None) -> None:
        super().__init__("New run from the decision log", parent)
        # Settings not on the form (held-out share, split seed, forgetting set) keep the engine's defaults.
        self.base_config = base_config
        self._task: Task | None = None
        self._started = 0.0
        self._last = (0, 0, "")
        self._outcome = ""  # how the last run ended: finished, failed (with the message) or cancelled
        self._failure = ""
        # What a run needs and what the station has (counted in the background); None until known.
        self.needs: DataNeeds | None = None
        self._count_task: Task | None = None
        self._generation = 0
        self._may = False
        intro = QLabel(_INTRO)
        intro.setWordWrap(True)
        self.steps = QSpinBox(minimum=1, maximum=100_000, value=base_config.steps)
        self.cap = QDoubleSpinBox(
            minimum=0.1,
            maximum=24 * 60,
            decimals=1,
            suffix=" min",
            value=(base_config.max_wall_seconds or 1800) / 60,
        )
        self.cap.setToolTip("Training stops here; the model so far is evaluated. Start again to continue it.")
        self.start_button = QPushButton("Start run")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m steps")
        self.stage = QLabel("No run yet in this session.")
        self.stage.setWordWrap(True)
        self.needs_note = QLabel("Counting this station's confirmed answers …")
        self.needs_note.setWordWrap(True)
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
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.needs_note)
        layout.addLayout(controls)
        layout.addWidget(self.stage)
        self.cancel_button.clicked.connect(self.cancel)
        self._clock_timer = QTimer(self, interval=1000, timeout=self._show_progress)

    @property
    def task(self) -> Task | None:
        """The running (or last) fine-tuning run."""
        return self._task

    @property
    def last(self) -> tuple[int, int, str]:
        """The last progress report: step, total steps, text."""
        return self._last

    def running(self) -> bool:
        return self._task is not None and self._task.is_running()

    @property
    def ready(self) -> bool | None:
        """Whether the station has the data a run needs; None while not counted (the core checks anyway)."""
        return None if self.needs is None else self.needs.ready

    def count_data(self, db_path: str, user: Session) -> Task:
        """Count the station's usable confirmations for base_config in the background (never on the
        GUI thread: a station's decision log can be large); show_needs() gets the answer."""
        self._generation += 1  # a count for older settings may end after this one: it is ignored
        task = Task(_count, db_path, self.base_config, user, self._generation)
        keep_alive(task, task.done)
        task.finished.connect(self._counted)
        task.failed.connect(self._count_failed)
        self._count_task = task
        task.start()
        return task

    def _counted(self, answer: tuple[int, DataNeeds]) -> None:
        if answer[0] == self._generation:
            self.show_needs(answer[1])

    def show_needs(self, needs: DataNeeds) -> None:
        """The minimum data note; Start is disabled, with the reason, while there is not enough."""
        self.needs = needs
        if needs.ready:
            self.needs_note.setText(f"{needs.have()} Enough for a run. {needs.requirement()}")
            self.needs_note.setStyleSheet(_note_style(None))
        else:
            self.needs_note.setText(f"Not enough data for a run yet. {needs.have()} {needs.requirement()}")
            self.needs_note.setStyleSheet(_note_style("warning"))
        self.set_allowed(self._may)

    def _count_failed(self, message: str) -> None:
        self.needs = None
        self.needs_note.setText(f"Could not count this station's confirmed answers: {message}")
        self.needs_note.setStyleSheet(_note_style("warning"))

    def run_config(self) -> FinetuneConfig:
        """The settings a Start would use: the form's steps and cap over base_config."""
        return replace(self.base_config, steps=self.steps.value(), max_wall_seconds=60 * self.cap.value())

    def start(self, db_path: str, user: Session, default_ref: str) -> Task:
        """Start a run in the background (the caller checks that none is running); the core checks the role."""
        config = self.run_config()
        # No Qt parent: the run may outlive this box (sign-out, idle lock; shutdown() cancels it, the
        # training state is kept and the next Start resumes it), so it is held until its thread ends.
        task = Task(_run, db_path, config, user, default_ref)
        keep_alive(task, task.done)
        # Bound methods only: Qt drops these connections when the box is deleted.
        task.progress.connect(self._on_progress)
        task.finished.connect(self._finished)
        task.failed.connect(self._failed)
        task.cancelled.connect(self._cancelled)
        task.done.connect(self._run_ended)
        self._task = task
        self.progress.setRange(0, config.steps)
        self.progress.setValue(0)
        self._started, self._last = time.monotonic(), (0, config.steps, "starting")
        self._outcome, self._failure = "", ""
        self.stage.setStyleSheet(_note_style(None))
        task.start()
        self._clock_timer.start()
        self._show_progress()
        return task

    def shutdown(self) -> None:
        """The box goes away (sign-out): ask a running run to stop; it finishes unobserved."""
        self._clock_timer.stop()
        if self.running():
            self._task.cancel()

    def cancel(self) -> None:
        """Ask the run to stop at the next step (its training state is kept for a later Start)."""
        if self.running():
            self._task.cancel()
            self.stage.setText(self.stage.text() + " · stopping after this step …")

    def set_allowed(self, may: bool) -> None:
        """Enable the form for a role that may fine-tune, while no run is going and (once counted)
        while the station has the data a run needs."""
        self._may = may
        running = self.running()
        self.start_button.setEnabled(may and not running and self.ready is not False)
        if may and self.ready is False:
            self.start_button.setToolTip(f"Not enough data: {self.needs.shortfall()}")
        elif may:
            self.start_button.setToolTip("")
        self.cancel_button.setEnabled(running)
        self.steps.setEnabled(may and not running)
        self.cap.setEnabled(may and not running)

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
        if result.candidate is not None:
            self.progress.setValue(self.progress.maximum())
        self._outcome = "finished" if result.candidate is not None else "cancelled"
        self.finished.emit(result)

    def _failed(self, message: str) -> None:
        self._outcome, self._failure = "failed", (message.strip().splitlines() or [""])[0]
        self.failed.emit(message)

    def _cancelled(self) -> None:
        self._outcome = "cancelled"
        self.cancelled.emit()

    def _run_ended(self) -> None:
        self._clock_timer.stop()
        step, total, _ = self._last
        cap = self.run_config().max_wall_seconds or 0
        after = f"after {_clock(time.monotonic() - self._started)} at step {step} of {total}"
        if self._outcome == "failed":  # must not read like a finish: say so, in the trouble colour
            self.stage.setText(f"Run FAILED {after}; nothing was registered. {self._failure}")
            self.stage.setStyleSheet(_note_style("fault"))
        elif self._outcome == "cancelled":
            self.stage.setText(f"Run cancelled {after}; nothing was registered.")
        else:
            self.stage.setText(f"Run finished {after} (time cap {_clock(cap)}).")
        self.ended.emit()
