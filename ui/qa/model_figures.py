"""A registered model's held-out figures beside those of the model it was trained from.

Two held-out sets (the station's own held-out confirmations, and the shipped typed-defect set that
catches forgetting) times top-1 / top-3 / MRR / AUROC, and whether the core's promotion rule would
pass. A set of fewer than inspector.learning.reliability.SMALL_SET images is flagged, and its
figures carry their 95 % interval in brackets. Layout only: the figures were computed by the
fine-tuning engine and stored in the registry.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.learning.registry import (
    DEFAULT_TOLERANCE,
    HELDOUT_SETS,
    RegisteredModel,
    promotion_problems,
    tolerances_for,
)
from inspector.learning.reliability import ADVICE, interval, is_small, small_set_warning
from ui.widgets import palette

SET_NAMES = {"confirmations": "Held-out confirmations", "typed_defects": "Typed defects (shipped)"}
METRICS = (("top1", "Top-1"), ("top3", "Top-3"), ("mrr", "MRR"), ("auroc_defect_vs_ok", "AUROC defect vs ok"))
_COLUMNS = ("Held-out set", "Metric", "Base model", "This model", "Change")
_WORSE = QColor("#8b0000")  # a drop beyond the tolerance: the one figure QA must not miss


def _set(figures: dict[str, Any], side: str | None, name: str) -> dict[str, Any]:
    return ((figures.get(side) or {}).get(name) or {}) if side else {}


def _cell(value: float | None, metrics: dict[str, Any], metric: str, small: bool) -> tuple[str, str]:
    """(text, tooltip): a small set's figure shows its 95 % interval in brackets; others in the tooltip."""
    if value is None:
        return "-", ""
    ci = interval(metrics, metric)
    if ci is None:  # figures from before intervals were stored, or a sample with no variation
        return (f"{value:.3f} [n/a]" if small else f"{value:.3f}"), (
            "no 95 % interval: the images all scored alike, or the run predates stored intervals"
        )
    tip = f"95 % interval {ci[0]:.2f}–{ci[1]:.2f} (n={metrics.get('n')})"
    return (f"{value:.3f} [{ci[0]:.2f}–{ci[1]:.2f}]" if small else f"{value:.3f}"), tip


class ModelFigures(QWidget):
    """Table of base vs this model per held-out set and metric, and the promotion check in words."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Select a model to see its figures.")
        self.title.setWordWrap(True)
        self.table = QTableWidget(len(HELDOUT_SETS) * len(METRICS), len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        rows = len(HELDOUT_SETS) * len(METRICS)
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height() + 26 * rows + 8)
        for r in range(rows):
            self.table.setRowHeight(r, 26)
        self.check = QLabel()
        self.check.setWordWrap(True)
        self.reliability = QLabel()  # the warning for a small held-out set; hidden otherwise
        self.reliability.setWordWrap(True)
        bg, fg = palette.TROUBLE["warning"]
        self.reliability.setStyleSheet(f"QLabel {{ background: {bg}; color: {fg}; padding: 3px; }}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.table)
        layout.addWidget(self.reliability)
        layout.addWidget(self.check)
        self.tolerances = tolerances_for(DEFAULT_TOLERANCE)
        self._shown: tuple[RegisteredModel | None, str | None] = (None, None)
        self.show_model(None)

    def set_tolerances(self, tolerances: dict[str, float]) -> None:
        """The allowed drop per held-out set that QA would promote with; the check is redrawn."""
        self.tolerances = tolerances_for(DEFAULT_TOLERANCE, tolerances)
        self.show_model(*self._shown)

    def show_model(self, model: RegisteredModel | None, active_id: str | None = None) -> None:
        """Fill the table for `model` (None: empty); active_id is the registry's active model."""
        self._shown = (model, active_id)
        figures = model.figures if model is not None else {}
        has_candidate = "candidate" in figures
        # A base model registered by a run carries only the figures it had as the base.
        this_side, base_side = ("candidate", "baseline") if has_candidate else ("baseline", None)
        row, warnings = 0, []
        for name in HELDOUT_SETS:
            this_set, base_set = _set(figures, this_side, name), _set(figures, base_side, name)
            small = is_small(this_set)
            n = this_set.get("n")
            if small:
                warnings.append(f"{SET_NAMES[name]}: {small_set_warning(int(n), ADVICE.get(name, ''))}")
            for metric, metric_name in METRICS:
                this, base = this_set.get(metric), base_set.get(metric)
                change = "" if this is None or base is None else f"{this - base:+.3f}"
                base_text, base_tip = _cell(base, base_set, metric, is_small(base_set))
                this_text, this_tip = _cell(this, this_set, metric, small)
                where = f"{SET_NAMES[name]}\n(n={n})" if n is not None else SET_NAMES[name]
                cells = (
                    (where + ("\nsmall set:\nunreliable" if small else ""), ""),
                    (metric_name, ""),
                    (base_text, base_tip),
                    (this_text, this_tip),
                    (change, ""),
                )
                for c, (text, tip) in enumerate(cells):
                    item = QTableWidgetItem(text)
                    item.setToolTip(tip)
                    if c == 0 and small:  # amber: a figure here must not be read as firm
                        bg, fg = palette.TROUBLE["warning"]
                        item.setBackground(QBrush(QColor(bg)))
                        item.setForeground(QBrush(QColor(fg)))
                    if c == 4 and this is not None and base is not None and this < base - self.tolerances[name]:
                        item.setForeground(QBrush(_WORSE))
                    self.table.setItem(row, c, item)
                row += 1
            # One cell spans the set's metric rows, so its name, size and flag can be read whole.
            self.table.setSpan(row - len(METRICS), 0, len(METRICS), 1)
        self.reliability.setVisible(bool(warnings))
        self.reliability.setText("\n".join(warnings) + ("\n[a–b]: the figure's 95 % interval." if warnings else ""))
        self.title.setText(self._title(model, active_id))
        self.check.setText(self._check(model, active_id, self.tolerances))

    @staticmethod
    def _title(model: RegisteredModel | None, active_id: str | None) -> str:
        if model is None:
            return "Select a model to see its figures."
        training = model.figures.get("training") or {}
        base = model.figures.get("baseline_model_id") or model.parent_id
        parts = [f"Model {model.model_id[:12]} ({model.state})"]
        if "candidate" in model.figures and base:
            parts.append(f"trained from {str(base)[:12]}")
        if training:
            done = "completed" if training.get("completed") else "stopped at the time cap"
            parts.append(f"{training.get('steps_done')} steps, {done}, {float(training.get('wall_s', 0)):.0f} s")
        if "candidate" not in model.figures:
            parts.append("figures measured when it was the base of a run")
        return " · ".join(parts)

    @staticmethod
    def _check(model: RegisteredModel | None, active_id: str | None, tolerances: dict[str, float]) -> str:
        if model is None or model.state != "candidate":
            return ""
        problems = promotion_problems(model.figures, DEFAULT_TOLERANCE, tolerances)
        base = model.figures.get("baseline_model_id")
        if active_id is not None and base != active_id:
            problems.insert(0, f"it was evaluated against {str(base)[:12]}, but {active_id[:12]} is active now")
        if not problems:
            allowed = ", ".join(f"{SET_NAMES[k].lower()} {v:.2f}" for k, v in tolerances.items())
            return (
                f"Promotion check: not worse than its base on top-1 or MRR beyond the allowed drop ({allowed})."
                " Promote it with a reason to put it into production."
            )
        return "Promotion would be refused: " + "; ".join(problems) + "."
