"""Fine-tuning from confirmed decisions: shown, honestly disabled, until the learning-loop engine lands.

The panel lays out what the run will offer (start, progress, cancel, before/after figures,
promote or discard) so QA can see where it will live, but every control is disabled and the
message says why: there is no engine in the core to run it yet.
"""

from __future__ import annotations

from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QTableWidget,
                               QVBoxLayout, QWidget)

from ui.context import AppContext

MESSAGE = (
    "Fine-tuning is not available in this version of the station. The learning-loop engine (training"
    " from confirmed decisions, before/after evaluation on held-out confirmations, deliberate promotion)"
    " has not landed yet, so these controls are disabled. Nothing is lost meanwhile: every operator"
    " decision is recorded with its ranking and will be usable as training data once it does."
)


class FinetunePanel(QWidget):
    """Placeholder for fine-tuning runs: a clear message and the controls to come, all disabled."""

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.message = QLabel(MESSAGE)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("QLabel { background: #f2f2f2; border: 1px solid #c8c8c8; padding: 8px; }")
        self.model = QLabel(f"Model in use: {context.station.model_id}")
        self.model.setWordWrap(True)
        self.start_button = QPushButton("Start run")
        self.cancel_button = QPushButton("Cancel")
        self.promote_button = QPushButton("Promote")
        self.discard_button = QPushButton("Discard")
        self.progress = QProgressBar()
        self.figures = QTableWidget(0, 3)
        self.figures.setHorizontalHeaderLabels(("Metric", "Before", "After"))
        self.figures.setMaximumHeight(160)
        run = QGroupBox("Run")
        run_layout = QHBoxLayout(run)
        for widget in (self.start_button, self.cancel_button, self.progress):
            run_layout.addWidget(widget)
        result = QGroupBox("Before / after (held-out confirmations)")
        result_layout = QVBoxLayout(result)
        result_layout.addWidget(self.figures)
        decide = QHBoxLayout()
        decide.addStretch(1)
        decide.addWidget(self.promote_button)
        decide.addWidget(self.discard_button)
        result_layout.addLayout(decide)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.model)
        layout.addWidget(run)
        layout.addWidget(result)
        layout.addStretch(1)
        for widget in (self.start_button, self.cancel_button, self.promote_button, self.discard_button,
                       self.progress, self.figures):
            widget.setEnabled(False)
            widget.setToolTip("Unavailable until the learning-loop engine lands")
