"""The selected model's figures against its parent, the typed-defect allowance, promote and roll back.

The box holds the form; the FinetunePanel makes the change through inspector.learning.registry,
which checks the role, the reason and the figures.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from inspector.learning.registry import DEFAULT_TOLERANCE, RegisteredModel
from ui.qa.model_figures import ModelFigures


class PromoteBox(QGroupBox):
    """'Selected model against the model it was trained from': figures, allowance, reason, buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Selected model against the model it was trained from", parent)
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
        layout = QVBoxLayout(self)
        layout.addWidget(self.figures)
        allowance = QHBoxLayout()
        allowance.addWidget(QLabel("Allowed drop in top-1 and MRR on the shipped typed-defect set:"))
        allowance.addWidget(self.typed_drop)
        allowance.addStretch(1)
        layout.addLayout(allowance)
        layout.addLayout(decide)
        layout.addStretch(1)
        self.typed_drop.valueChanged.connect(self._tolerance_changed)

    def set_tolerances(self) -> dict[str, float]:
        """The per-set allowances a promotion from this box uses (only the typed-defect set is adjustable)."""
        return {"typed_defects": round(self.typed_drop.value(), 2)}

    def show_model(self, selected: RegisteredModel | None, active: str | None) -> None:
        """The selected model's figures and the promotion check against the allowance."""
        self.figures.show_model(selected, active)

    def set_allowed(self, may: bool, selected: RegisteredModel | None) -> None:
        """Enable what this role may do with the selected model (the core refuses anyway)."""
        self.reason.setEnabled(may)
        self.typed_drop.setEnabled(may)
        self.promote_button.setEnabled(may and selected is not None and selected.state == "candidate")
        self.rollback_button.setEnabled(may and selected is not None and selected.state == "retired")

    def _tolerance_changed(self, value: float) -> None:
        self.figures.set_tolerances({"typed_defects": value})
