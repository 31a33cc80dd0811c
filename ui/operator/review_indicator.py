"""The operator queue's indicator: "N waiting · M in review", the review-lane button and its list.

The count of parts in the review lane is read from the core (inspector.frame.queue.review_lane);
the waiting count is the view's OperatorQueue. The review list (ReviewLaneDialog) is made on first
use and kept, so it can stay open beside the live part.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QWidget

from inspector.frame.queue import OperatorQueue, review_lane
from ui.context import AppContext
from ui.operator.review_lane import ReviewLaneDialog


class ReviewLaneIndicator(QObject):
    """Owns the queue label and the review-lane button (the view lays them out) and the review list."""

    answered = Signal(int)  # decision id of a part answered from the review list

    def __init__(self, context: AppContext, queue: OperatorQueue | None, view: QWidget) -> None:
        super().__init__(view)
        self.context, self.queue, self.view = context, queue, view
        self.in_review = 0
        self.dialog: ReviewLaneDialog | None = None
        self.label = QLabel()
        self.button = QPushButton("Review lane (F2)", focusPolicy=Qt.FocusPolicy.NoFocus)
        self.button.setVisible(context.can("decide"))

    def recount(self) -> None:
        """Count the parts in the review lane again (a part moved there, or one was answered)."""
        if self.context.can("decide") and self.context.station.log is not None:
            self.in_review = len(review_lane(self.context.station.log))
        self.refresh()

    def refresh(self) -> None:
        """Show the current counts."""
        waiting = self.queue.waiting if self.queue is not None else 0
        self.label.setText(f"{waiting} waiting · {self.in_review} in review" if self.queue is not None else "")
        self.button.setText(f"Review lane: {self.in_review} (F2)")

    def open(self) -> ReviewLaneDialog:
        """Show the review list (made on first use), reloaded."""
        if self.dialog is None:
            self.dialog = ReviewLaneDialog(self.context, self.view)
            self.dialog.answered.connect(self._answered)
        self.dialog.reload()
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def close(self) -> None:
        """Close the review list if it was opened (sign-out, window closing)."""
        if self.dialog is not None:
            self.dialog.close()

    def _answered(self, decision_id: int) -> None:
        self.recount()
        self.answered.emit(decision_id)
