"""The operator's screen: the live part, its verdict, the ranked candidates and the evidence.

Keys (a foot pedal mapped to one works the same): Space/Enter confirm #1 · 1-9 pick #k · 0 none
of these, then type and Enter · R reject the image (retake) · H heatmap · C "#1 versus #2" ·
Up/Down select whose heatmap is shown. No dialog on this path.

Trouble parts (not accepted, or flagged for review) go through the core's operator queue
(inspector.frame.queue): the oldest is on screen, the rest wait in order; beyond the configured
time or count the part on screen moves to the review lane, answerable later from the review list
(button or F2). Accepted parts flow past without an answer. Inspections are committed by the
capture worker when shown (see inspector.frame.live); a key press only appends the decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from inspector.errors import InspectorError
from inspector.frame.live import LiveCapture, RateMeter, SourceFactory
from inspector.frame.queue import OperatorQueue, TooSoon, needs_attention, policy_from
from inspector.frame.records import InspectionResult
from inspector.store.decision_log import DecisionError
from ui.context import AppContext
from ui.operator.candidate_list import CandidateList
from ui.operator.capture_worker import CaptureWorker
from ui.operator.evidence_panel import EvidencePanel
from ui.operator.good_part_note import GoodPartNote
from ui.operator.propose_example import ProposeExample
from ui.operator.review_indicator import ReviewLaneIndicator
from ui.operator.review_lane import ReviewLaneDialog
from ui.operator.status_panel import StatusPanel
from ui.operator.verdict_banner import VerdictBanner
from ui.widgets import palette

HINTS = (
    "Space/Enter confirm #1 · 1–9 pick #k · 0 none of these · R retake · H heatmap · C #1 vs #2"
    " · ↑↓ select · F2 review lane · E propose as example"
)
_DIGITS = {getattr(Qt.Key, f"Key_{n}"): n for n in range(10)}


class OperatorView(QWidget):
    """Live part, verdict banner, candidates, heatmaps and status; keyboard-driven."""

    decided = Signal(int)  # decision id, after COMMIT
    fault = Signal(str, str)  # where, message: for the window's banner (the window logs it)
    recovered = Signal(str)  # where: the fault reported from there is over

    def __init__(
        self,
        context: AppContext,
        source_factory: SourceFactory | None = None,
        parent: QWidget | None = None,
        *,
        settings: QSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(parent)
        self.context, self.source_factory = context, source_factory
        self.settings = settings if settings is not None else QSettings()
        self.current: InspectionResult | None = None  # the part displayed
        self.answered = ""
        # Only a role that decides holds trouble parts; others watch the line go by.
        self.queue = (
            OperatorQueue(context.station.log, context.user, policy_from(context.config.queue), clock)
            if context.can("decide") and context.station.log is not None
            else None
        )
        self.rate = RateMeter()
        self.capture: CaptureWorker | None = None
        self.live = True  # False while another tab is shown: the capture then pauses
        self._build()
        self.evidence.fault.connect(self.fault)
        self.candidates.selected.connect(self.evidence.select)
        self._tick = QTimer(self, interval=500, timeout=self._on_tick)
        self._tick.start()
        self.lane.recount()
        self.status.set_model(context.station.model_id, context.station.index.library_version)

    def _build(self) -> None:
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)  # so the grey reaches every corner
        self.setStyleSheet(f"OperatorView {{ background: {palette.BACKGROUND}; }}")
        self.banner = VerdictBanner()
        self.evidence = EvidencePanel(self.context.station, self.settings)
        self.frame, self.contrast = self.evidence.frame, self.evidence.contrast
        self.candidates = CandidateList()
        self.none_edit = QLineEdit()
        self.none_edit.setPlaceholderText("None of these: what does the part show? Enter logs it, Esc cancels")
        self.none_edit.setVisible(False)
        # Filtered, not returnPressed: QLineEdit passes Return on to its parent, where it would
        # confirm the *next* part as well.
        self.none_edit.installEventFilter(self)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.lane = ReviewLaneIndicator(self.context, self.queue, self)
        self.lane.answered.connect(self.decided)
        self.queue_label, self.review_button = self.lane.label, self.lane.button
        self.review_button.clicked.connect(self.open_review_lane)
        self.proposer = ProposeExample(self.context, lambda: (self.current, self.candidates.selected_rank), self)
        self.hints = QLabel(
            HINTS
            if self.context.can("decide")
            else f"View only: your role ({self._role()}) may not answer parts · H heatmap · C #1 vs #2"
        )
        self.hints.setWordWrap(True)
        self.hints.setStyleSheet(f"color: {palette.MUTED};")
        self.status = StatusPanel()
        if self.context.line is not None:  # the line's outputs: connection and backlog
            self.status.watch_outputs(self.context.line.status)
        self.good_note = GoodPartNote(self.frame)  # why the good-part model sent a part to review, and where
        side = QVBoxLayout()
        for w in (self.candidates, self.none_edit, self.message, self.queue_label, self.review_button, self.proposer):
            side.addWidget(w)
        side.addStretch(1)
        side.addWidget(self.hints)
        body = QHBoxLayout()
        body.addWidget(self.evidence, 3)
        body.addLayout(side, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.good_note)  # under the verdict it explains, full width
        layout.addLayout(body, 1)
        layout.addWidget(self.status)
        self._say("")

    # --- the live stream ----------------------------------------------------------------

    def start(self) -> bool:
        """Start the capture worker (False without a source); the view then follows the camera."""
        if self.source_factory is None or self.capture is not None:
            return False
        self.capture = CaptureWorker(LiveCapture(self.context.station, self.source_factory, self.context.user))
        self.capture.result.connect(self.show_result)
        self.capture.health.connect(self._camera_health)
        self.capture.fault.connect(self._camera_fault)
        self.capture.recovered.connect(self._camera_recovered)
        self.capture.set_paused(not self.live)
        self.capture.start()
        return True

    def set_live(self, live: bool) -> None:
        """Follow the camera (the view is on screen) or pause: parts nobody sees are not recorded."""
        self.live = live
        if self.capture is not None:
            self.capture.set_paused(not live)

    def shutdown(self, wait_ms: int = 3000) -> bool:
        """Stop the workers (window closing, sign-out); True if the capture thread ended. Parts still
        waiting go to the review lane (with events), under the user still signed in.

        Waits for the capture loop only (it holds a database connection and records under the
        user); a heatmap still being computed finishes on its own without touching either.
        """
        self._tick.stop()
        self.evidence.stop()
        ended = self.capture.stop(wait_ms) if self.capture is not None else True
        if self.capture is not None:
            QCoreApplication.sendPostedEvents(self.capture)  # parts already delivered join the queue first
        if self.queue is not None:
            try:
                self.queue.sign_out()
            except InspectorError as exc:
                self.fault.emit("operator queue", f"waiting parts could not be moved to the review lane: {exc}")
        self.lane.close()
        return ended

    def show_result(self, result: InspectionResult) -> None:
        """A new ranked part: a trouble part joins the queue (shown when it is the oldest); a calm
        one is shown when no trouble part is waiting."""
        self.rate.tick()
        self._refresh_rate()
        self.status.set_latency(result.timings_ms)
        self.status.set_model(result.ranking.model_id, result.ranking.library_version)
        try:
            queued = self.queue is not None and self.queue.offer(result)
        except InspectorError as exc:  # the review-lane event was refused: the part stays at the head
            self.fault.emit("operator queue", str(exc))
            queued = True
        if queued or (self.queue is not None and self.queue.current is not None):
            self._sync()
        else:
            self._display(result)

    def _sync(self) -> None:
        """Show the queue's oldest part if it is not on screen yet (after an answer or a move)."""
        head = self.queue.current if self.queue is not None else None
        if head is not None and head is not self.current:
            if self.none_edit.isVisible():  # the typed text was for the part that just left
                self.none_edit.setVisible(False)
                self.setFocus()
                if not self.answered:
                    self._say(
                        f"Part {self.current.inspection_id if self.current else '?'} went to the review"
                        " lane before the description was logged; answer it from the review lane.",
                        True,
                    )
            self._display(head)
        self.lane.recount()

    def _display(self, result: InspectionResult) -> None:
        self.current, self.answered = result, ""
        self.banner.show_result(result)
        calm = not needs_attention(result)
        self.candidates.set_candidates(result.ranking.candidates, calm=calm)
        self.evidence.show_part(result, calm=calm)
        self.good_note.show_result(result)  # after show_part: a new image clears the frame's outlines
        self.lane.refresh()

    def _on_tick(self) -> None:
        self._refresh_rate()
        if self.queue is None:
            return
        try:
            moved = self.queue.tick()
        except InspectorError as exc:
            self.fault.emit("operator queue", str(exc))
            return
        if moved:
            self._sync()

    @property
    def in_review(self) -> int:
        """Parts in the review lane, as last counted."""
        return self.lane.in_review

    @property
    def review_dialog(self) -> ReviewLaneDialog | None:
        """The review list, once opened."""
        return self.lane.dialog

    def open_review_lane(self) -> ReviewLaneDialog | None:
        """The review list (operator or QA): parts moved to the review lane, answerable with the same keys."""
        if not self.context.can("decide"):
            self._say(f"Your role ({self._role()}) may not answer parts.", trouble=True)
            return None
        return self.lane.open()

    # --- keys and answers -----------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.none_edit and event.type() == QEvent.Type.KeyPress:
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._submit_none_of_these()
                return True
            if event.key() == Qt.Key.Key_Escape:
                self.cancel_none_of_these()
                return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if self.none_edit.isVisible():
            return  # while the description is open, no key acts on the part
        decides = key in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_R) or key in _DIGITS
        if decides and event.isAutoRepeat():
            return  # a held key (or a stuck pedal) must not answer the next parts too
        if key in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.answer("confirm", 1)
        elif key == Qt.Key.Key_0:
            self.start_none_of_these()
        elif key in _DIGITS:
            self.answer("pick", _DIGITS[key])
        elif key == Qt.Key.Key_R:
            self.answer("reject_image")
        elif key == Qt.Key.Key_H:
            self.toggle_heatmap()
        elif key == Qt.Key.Key_C:
            self.toggle_contrast()
        elif key == Qt.Key.Key_F2:
            self.open_review_lane()
        elif key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            old = self.candidates.selected_rank
            rank = max(1, min(len(self.candidates.candidates), old + (1 if key == Qt.Key.Key_Down else -1)))
            if rank == old:  # at the end of the list: still a request to see this one's heatmap
                self.evidence.select(rank)
            else:
                self.candidates.select(rank)
        else:
            super().keyPressEvent(event)

    def answer(self, kind: str, rank: int | None = None, typed: str = "") -> int | None:
        """Record the operator's answer to the shown part; the decision id, or None (and why, inline)."""
        if not self._may_answer():
            return None
        assert self.current is not None and self.queue is not None
        if self.queue.current is not self.current:  # it moved to the review lane a moment ago
            self._sync()
            self._say("That part went to the review lane; this is the next one. Nothing was logged.", trouble=True)
            return None
        try:
            decision_id, _part = self.queue.answer(kind, rank, typed)
        except TooSoon as exc:  # a double tap: the second press must not answer this part
            self._say(str(exc), trouble=True)
            return None
        except DecisionError as exc:  # a slip (no candidate #7): inline, the part stays
            self._say(str(exc), trouble=True)
            return None
        except InspectorError as exc:  # refused or not stored: inline, and the window's banner logs it
            self._say(str(exc), trouble=True)
            self.fault.emit("operator answer", str(exc))
            return None
        self.answered = self._describe(kind, rank, typed)
        self.banner.show_result(self.current, self.answered)
        self._say(f"Logged decision {decision_id} for part {self.current.inspection_id}: {self.answered}.")
        self.decided.emit(decision_id)
        self._sync()
        self.lane.refresh()
        return decision_id

    def start_none_of_these(self) -> bool:
        """Open the inline line for a short description (no dialog)."""
        if not self._may_answer():
            return False
        self.none_edit.clear()
        self.none_edit.setVisible(True)
        self.none_edit.setFocus()
        self._say("None of these: type what the part shows, Enter to log, Esc to cancel.")
        return True

    def cancel_none_of_these(self) -> None:
        self.none_edit.setVisible(False)
        self.setFocus()
        self._say("Cancelled; the part is still open.")

    def _submit_none_of_these(self) -> None:
        if not self.none_edit.text().strip():
            self._say("Type a short description first (Esc cancels).", trouble=True)
            return
        typed = self.none_edit.text()
        self.none_edit.setVisible(False)  # before answer(): the next part may be displayed at once
        self.setFocus()
        if self.answer("none_of_these", typed=typed) is None:
            self.none_edit.setVisible(True)
            self.none_edit.setFocus()

    def _may_answer(self) -> bool:
        if not self.context.can("decide"):
            self._say(f"Your role ({self._role()}) may not answer parts; nothing was recorded.", trouble=True)
            return False
        if self.current is None:
            self._say("No part on screen yet.")
            return False
        if self.answered:
            self._say(f"This part is already answered ({self.answered}); a change is a correction (QA).")
            return False
        if self.queue is None or self.queue.current is None:
            self._say("This part needs no answer (accepted); the next trouble part will be shown.")
            return False
        return True

    def _describe(self, kind: str, rank: int | None, typed: str) -> str:
        assert self.current is not None
        if kind in ("confirm", "pick"):
            c = self.current.ranking.candidates[(rank or 1) - 1]
            return f"{'confirmed' if rank == 1 else 'picked'} #{rank} {c.label_name}"
        return f"none of these: “{' '.join(typed.split())}”" if kind == "none_of_these" else "image rejected (retake)"

    def _say(self, text: str, trouble: bool = False) -> None:
        bg, fg = palette.TROUBLE["warning"] if trouble else ("transparent", palette.TEXT)
        self.message.setStyleSheet(f"QLabel {{ background: {bg}; color: {fg}; padding: 4px; }}")
        self.message.setText(text)

    def _role(self) -> str:
        return self.context.user.role if self.context.user is not None else "signed out"

    # --- evidence ---------------------------------------------------------------------------

    @property
    def heatmap_on(self) -> bool:
        return self.evidence.heatmap_on

    def toggle_heatmap(self) -> bool:
        """H: the selected candidate's heatmap over the part, on or off (remembered)."""
        return self.evidence.toggle_heatmap()

    def toggle_contrast(self) -> bool:
        """C: the '#1 versus #2' contrast map beside the part, on or off (remembered)."""
        return self.evidence.toggle_contrast()

    # --- status -----------------------------------------------------------------------------

    def _camera_health(self, health) -> None:
        self.status.set_camera(health)

    def _camera_fault(self, message: str) -> None:
        self.status.set_camera(self.capture.capture.health() if self.capture else None, problem=message)
        self.fault.emit("camera", message)

    def _camera_recovered(self) -> None:
        self.recovered.emit("camera")

    def _refresh_rate(self) -> None:
        self.status.set_rate(self.rate.per_minute())
