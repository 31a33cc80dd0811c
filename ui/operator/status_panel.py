"""The operator's status line: camera, model, library, parts per minute, last frame's latency.

Grey while all is well; the camera field turns amber (stalled, reconnecting) or red (failed,
closed) — the only colour on this line.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from inspector.capture.base import SourceHealth
from inspector.frame.records import utc_now
from inspector.line.outputs import status_text
from inspector.line.publisher import OutputStatus
from ui.widgets import palette

_FIELD = "QLabel {{ background: {bg}; color: {fg}; padding: 3px 8px; }}"
SILENT_AFTER_S = 5.0  # a 1 fps line camera silent this long has stopped delivering
_CAMERA_TROUBLE = {"stalled": "warning", "reconnecting": "warning", "failed": "fault", "closed": "fault"}


def camera_text(h: SourceHealth) -> str:
    """e.g. 'camera sim:samples: connected · 120 frames · 0 dropped'."""
    text = f"camera {h.source_id}: {h.state} · {h.frames_delivered} frames · {h.frames_dropped} dropped"
    if h.frames_invalid:
        text += f" · {h.frames_invalid} invalid"
    if h.reconnect_attempts and h.state != "connected":
        text += f" · attempt {h.reconnect_attempts}"
    return text


def _silent_s(h: SourceHealth) -> float | None:
    """Seconds since the last frame when that exceeds SILENT_AFTER_S (None otherwise)."""
    if h.last_frame_at is None:
        return None
    age = (utc_now() - h.last_frame_at).total_seconds()
    return age if age > SILENT_AFTER_S else None


class StatusPanel(QWidget):
    """Five fields in one row; every setter is cheap (called for each frame)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.camera, self.model, self.library, self.rate, self.latency = (QLabel() for _ in range(5))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        for label in (self.camera, self.model, self.library, self.rate, self.latency):
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            self._style(label, None)
            layout.addWidget(label)
        # The line's outputs (MQTT, OPC UA): hidden until the station has one (set_outputs).
        self.line = QLabel()
        self.line.setTextFormat(Qt.TextFormat.PlainText)
        self._style(self.line, None)
        self.line.hide()
        layout.addWidget(self.line)
        layout.setStretch(0, 3)
        layout.setStretch(4, 3)
        self.camera_state = "closed"
        self.camera.setText("camera: not started")
        self.set_rate(None)
        self.latency.setText("latency: –")

    def set_camera(self, health: SourceHealth | None, problem: str = "") -> None:
        """Camera state and counters; `problem` (a fault message) colours the field red."""
        if health is None:
            self.camera_state = "failed" if problem else "closed"
            self.camera.setText(problem or "camera: not started")
        else:
            self.camera_state = "failed" if problem else health.state
            silent = _silent_s(health)
            if silent is not None and self.camera_state == "connected":
                self.camera_state = "stalled"  # connected but mute: the operator must know
                problem = problem or f"no frame for {silent:.0f} s"
            self.camera.setText(camera_text(health) + (f" · {problem}" if problem else ""))
        fault = problem and self.camera_state == "failed"
        self._style(self.camera, "fault" if fault else _CAMERA_TROUBLE.get(self.camera_state))
        self.camera.setToolTip(health.last_error if health is not None else problem)

    def set_model(self, model_id: str, library_version: int) -> None:
        self.model.setText(f"model {model_id[:12]}")
        self.model.setToolTip(model_id)
        self.set_library(library_version)

    def set_library(self, version: int) -> None:
        """The library version in force (also between parts: a version published while the line is quiet)."""
        self.library.setText(f"library v{version}")

    def set_rate(self, per_minute: float | None) -> None:
        """Parts per minute (inspector.frame.live.RateMeter); '—' until it has enough parts and time."""
        self.rate.setText("— parts/min" if per_minute is None else f"{per_minute:.0f} parts/min")
        self.rate.setToolTip("Parts over the last minute; shown once parts have come for 10 s.")

    def set_latency(self, timings_ms: dict[str, float]) -> None:
        """Per-stage milliseconds of the last frame, in pipeline order."""
        parts = [f"{stage} {ms:.0f}" if ms >= 1 else f"{stage} {ms:.1f}" for stage, ms in timings_ms.items()]
        self.latency.setText("ms: " + " · ".join(parts) if parts else "latency: –")

    def watch_outputs(self, statuses: Callable[[], list[OutputStatus]], every_ms: int = 1000) -> None:
        """Show the line outputs' state every `every_ms` (the call is cheap and never blocks on the network)."""
        self._outputs_timer = QTimer(self)
        self._outputs_timer.timeout.connect(lambda: self.set_outputs(statuses()))
        self._outputs_timer.start(every_ms)
        self.set_outputs(statuses())

    def set_outputs(self, statuses: list[OutputStatus]) -> None:
        """Each line output's connection and backlog; amber while one is down (verdicts wait in the outbox)."""
        self.line.setVisible(bool(statuses))
        self.line.setText(" · ".join(status_text(s) for s in statuses))
        self._style(self.line, "warning" if any(not s.connected for s in statuses) else None)
        self.line.setToolTip("\n".join(f"{s.address}: {s.last_error or 'ok'}" for s in statuses))

    def _style(self, label: QLabel, trouble: str | None) -> None:
        bg, fg = palette.TROUBLE[trouble] if trouble else (palette.PANEL, palette.TEXT)
        label.setStyleSheet(_FIELD.format(bg=bg, fg=fg))
