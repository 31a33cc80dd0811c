"""The operator's "propose as example" (key E or the button): this part shows label X, QA decides.

The proposal is the core's (inspector.library.proposals.propose_example): an event on the record
that changes nothing; QA accepts or dismisses it in the library editor. The label proposed is the
candidate selected in the list (Up/Down; #1 by default), and the operator types what the part
shows, Enter proposes, Esc cancels. One database write of a few milliseconds, like an answer.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from inspector.errors import InspectorError
from inspector.frame.records import Candidate, InspectionResult
from inspector.library.proposals import propose_example
from ui.context import AppContext
from ui.widgets import palette


class ProposeExample(QWidget):
    """Button + reason line for proposing the shown part as an example of the selected candidate."""

    proposed = Signal(int)  # the proposal's event id

    def __init__(
        self,
        context: AppContext,
        target: Callable[[], tuple[InspectionResult | None, int]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.context, self.target = context, target  # target: (the part shown, the selected rank)
        self.label_id = ""
        self.part: InspectionResult | None = None  # the part the open reason line is about
        self.button = QPushButton("Propose as example (E)", focusPolicy=Qt.FocusPolicy.NoFocus)
        self.button.clicked.connect(self.start)
        self.prompt = QLabel()
        self.prompt.setWordWrap(True)
        self.prompt.setStyleSheet(f"color: {palette.MUTED};")
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("What does the part show? Enter proposes it to QA, Esc cancels")
        self.reason.installEventFilter(self)  # Enter must not reach the view (it would confirm a part)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.prompt)
        layout.addWidget(self.reason)
        self._show_entry(False)
        self.setVisible(context.can("decide") and context.station.log is not None)
        if parent is not None:  # E on the operator's screen (keys typed into a line edit never reach it)
            parent.installEventFilter(self)

    @property
    def open(self) -> bool:
        return self.reason.isVisible()

    def _show_entry(self, on: bool) -> None:
        self.reason.setVisible(on)

    def _tell(self, text: str, trouble: bool = False) -> None:
        """A line under the button (its own, so the operator's message line keeps the answers)."""
        colour = palette.TROUBLE["warning"][1] if trouble else palette.MUTED
        self.prompt.setStyleSheet(f"color: {colour};")
        self.prompt.setText(text)

    def _candidate(self) -> tuple[InspectionResult | None, Candidate | None]:
        part, rank = self.target()
        if part is None or not 1 <= rank <= len(part.ranking.candidates):
            return part, None
        return part, part.ranking.candidates[rank - 1]

    def start(self) -> bool:
        """Open the reason line for the selected candidate of the part on screen (False, and why, if not)."""
        if not self.isVisible():
            return False
        part, candidate = self._candidate()
        if part is None or candidate is None:
            self._tell("No part on screen to propose.", True)
            return False
        if part.inspection_id is None:
            self._tell("This part is not recorded yet; propose it once it is.", True)
            return False
        self.part, self.label_id = part, candidate.label_id  # kept: the next part may arrive while typing
        self._tell(f"Propose part {part.inspection_id} as an example of “{candidate.label_name}”:")
        self._show_entry(True)
        self.reason.clear()
        self.reason.setFocus()
        return True

    def cancel(self) -> None:
        self._show_entry(False)
        self._tell("")
        self.part, self.label_id = None, ""
        if self.parentWidget() is not None:  # the keys belong to the operator's screen again
            self.parentWidget().setFocus()

    def submit(self) -> int | None:
        """Record the proposal (the core checks the role, the label and the reason); its id, or None."""
        part = self.part
        if part is None or part.inspection_id is None or not self.label_id:
            self.cancel()
            return None
        user = self.context.user
        try:
            event_id = propose_example(
                self.context.station.log, part.inspection_id, self.label_id, self.reason.text(), user
            )
        except InspectorError as exc:  # no reason, a label retired meanwhile, a role without "decide"
            self._tell(str(exc), True)
            return None
        self.cancel()
        self._tell(f"Proposed part {part.inspection_id} as an example; QA accepts or dismisses it.")
        self.proposed.emit(event_id)
        return event_id

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parent() and event.type() == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_E:
            if not event.isAutoRepeat() and event.modifiers() == Qt.KeyboardModifier.NoModifier:
                self.start()
            return True
        if watched is self.reason and event.type() == QEvent.Type.KeyPress:
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.submit()
                return True
            if event.key() == Qt.Key.Key_Escape:
                self.cancel()
                return True
        return super().eventFilter(watched, event)
