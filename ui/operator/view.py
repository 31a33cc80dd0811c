"""The operator's screen: the live part, its verdict, the ranked candidates and the evidence.

Keys (a foot pedal mapped to one works the same): Space/Enter confirm #1 · 1-9 pick #k · 0 none
of these, then type and Enter · R reject the image (retake) · H heatmap · C "#1 versus #2" ·
Up/Down select whose heatmap is shown. No dialog on this path.

A part that needs attention (not accepted, or flagged for review) is held on screen until it is
answered; parts arriving meanwhile wait in order, so an answer always refers to the part shown.
Accepted parts flow past without an answer. Inspections are committed by the capture worker
when shown (see inspector.frame.live); a key press only appends the decision.
"""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from inspector.frame.answers import record_answer
from inspector.store.decision_log import DecisionError
from inspector.errors import InspectorError
from inspector.frame.live import LiveCapture, RateMeter, SourceFactory
from inspector.frame.records import InspectionResult
from ui.widgets import palette
from ui.operator.candidate_list import CandidateList
from ui.operator.capture_worker import CaptureWorker
from ui.context import AppContext
from ui.operator.evidence_panel import EvidencePanel
from ui.operator.status_panel import StatusPanel
from ui.operator.verdict_banner import VerdictBanner

MAX_WAITING = 50  # parts held back behind an unanswered one; older ones stay recorded, unanswered
HINTS = ("Space/Enter confirm #1 · 1–9 pick #k · 0 none of these · R retake · H heatmap · C #1 vs #2"
         " · ↑↓ select")
_DIGITS = {getattr(Qt.Key, f"Key_{n}"): n for n in range(10)}


def needs_attention(result: InspectionResult) -> bool:
    """Whether a part is trouble: held on screen until answered."""
    v = result.verdict
    return v.disposition != "accept" or v.needs_review or v.open_set


class OperatorView(QWidget):
    """Live part, verdict banner, candidates, heatmaps and status; keyboard-driven."""

    decided = Signal(int)  # decision id, after COMMIT
    fault = Signal(str, str)  # where, message: for the window's banner (the window logs it)
    recovered = Signal(str)  # where: the fault reported from there is over

    def __init__(self, context: AppContext, source_factory: SourceFactory | None = None,
                 parent: QWidget | None = None, *, settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.context, self.source_factory = context, source_factory
        self.settings = settings if settings is not None else QSettings()
        self.current: InspectionResult | None = None
        self.answered = ""
        self.waiting: deque[InspectionResult] = deque()
        self.passed_unanswered = 0
        self.rate = RateMeter()
        self.capture: CaptureWorker | None = None
        self.live = True  # False while another tab is shown: the capture then pauses
        self._build()
        self.evidence.fault.connect(self.fault)
        self.candidates.selected.connect(self.evidence.select)
        self._tick = QTimer(self, interval=1000, timeout=self._refresh_rate)
        self._tick.start()
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
        self.queue_label = QLabel()
        self.hints = QLabel(HINTS if self.context.can("decide") else
                            f"View only: your role ({self._role()}) may not answer parts · H heatmap · C #1 vs #2")
        self.hints.setWordWrap(True)
        self.hints.setStyleSheet(f"color: {palette.MUTED};")
        self.status = StatusPanel()
        side = QVBoxLayout()
        side.addWidget(self.candidates)
        side.addWidget(self.none_edit)
        side.addWidget(self.message)
        side.addWidget(self.queue_label)
        side.addStretch(1)
        side.addWidget(self.hints)
        body = QHBoxLayout()
        body.addWidget(self.evidence, 3)
        body.addLayout(side, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
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
        """Stop the workers (window closing, sign-out); True if the capture thread ended.

        Waits for the capture loop only (it holds a database connection and records under the
        user); a heatmap still being computed finishes on its own without touching either.
        """
        self._tick.stop()
        self.evidence.stop()
        return self.capture.stop(wait_ms) if self.capture is not None else True

    def show_result(self, result: InspectionResult) -> None:
        """A new ranked part: shown now, or queued behind an unanswered part that needs attention."""
        self.rate.tick()
        self._refresh_rate()
        self.status.set_latency(result.timings_ms)
        self.status.set_model(result.ranking.model_id, result.ranking.library_version)
        if self._holding():
            self.waiting.append(result)
            if len(self.waiting) > MAX_WAITING:
                self.waiting.popleft()
                self.passed_unanswered += 1
            self._update_queue_label()
            return
        self._display(result)

    def _holding(self) -> bool:
        if self.current is None or self.answered or not self.context.can("decide"):
            return False
        return needs_attention(self.current) or self.none_edit.isVisible()

    def _display(self, result: InspectionResult) -> None:
        self.current, self.answered = result, ""
        self.banner.show_result(result)
        calm = not needs_attention(result)
        self.candidates.set_candidates(result.ranking.candidates, calm=calm)
        self.evidence.show_part(result, calm=calm)
        self._update_queue_label()

    def _update_queue_label(self) -> None:
        text = f"{len(self.waiting)} part(s) waiting" if self.waiting else ""
        if self.passed_unanswered:
            text += f" · {self.passed_unanswered} passed unanswered (recorded)"
        self.queue_label.setText(text)

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
        assert self.current is not None
        try:
            decision_id = record_answer(self.context.station.log, self.current, self.context.user, kind, rank, typed)
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
        if self.waiting:
            self._display(self.waiting.popleft())
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
