"""The evidence beside the verdict: the part with the selected candidate's heatmap (H toggles it)
and the "#1 versus #2" contrast map (C toggles it), computed by a HeatmapWorker on request.

Never on the capture path: a heatmap is asked for when a part is shown or the selection moves,
and one that arrives after its part has left the screen is dropped.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QHBoxLayout, QWidget

from inspector.frame.records import InspectionResult
from inspector.station import Station
from ui.widgets.frame_view import FrameView
from ui.widgets.heatmap_worker import HeatmapDone, HeatmapWorker


class EvidencePanel(QWidget):
    """Two image panels and the heatmap worker behind them; preferences persist in QSettings."""

    fault = Signal(str, str)  # where, message: a Grad-CAM failure that is a bug, not a missing feature

    def __init__(self, station: Station, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.result: InspectionResult | None = None
        self.selected_rank = 1
        self.calm = False
        self.heatmap_on = settings.value("operator/heatmap", True, type=bool)
        self.contrast_on = settings.value("operator/contrast", False, type=bool)
        self.frame = FrameView("Part")
        self.contrast = FrameView("#1 versus #2")
        self.contrast.setVisible(self.contrast_on)
        self.frame.overlay_enabled = self.heatmap_on
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.frame, 3)
        layout.addWidget(self.contrast, 2)
        self.worker = HeatmapWorker(station, self)
        self.worker.ready.connect(self._ready)
        self.worker.unavailable.connect(self._unavailable)

    def show_part(self, result: InspectionResult, calm: bool = False) -> None:
        """A new part: its image now, its heatmaps when the worker has them.

        calm (an accepted part): no heatmap unless asked for with a selection. A jet-coloured map
        on every good part would break the grey screen, and Grad-CAM on every part at line rate
        would take the CPU the capture path needs.
        """
        self.result, self.selected_rank, self.calm = result, 1, calm
        for view in (self.frame, self.contrast):
            view.set_image(result.frame.rgb)
        self.frame.set_note("accepted · ↑/↓ shows a heatmap" if calm else "")
        self.contrast.set_note("accepted" if calm else "")
        origin = f" · {result.frame.origin}" if result.frame.origin else ""
        self.frame.set_title(f"Part {result.inspection_id or '(not recorded)'}{origin}")
        self._request()

    def select(self, rank: int) -> None:
        """Show candidate #rank's heatmap instead (also on an accepted part: the operator asked)."""
        self.selected_rank, self.calm = rank, False
        self._request()

    def toggle_heatmap(self) -> bool:
        """H: the selected candidate's heatmap over the part, on or off (remembered)."""
        self.heatmap_on = not self.heatmap_on
        self.settings.setValue("operator/heatmap", self.heatmap_on)
        self.frame.overlay_enabled = self.heatmap_on
        self.frame.set_note("" if self.heatmap_on else "heatmap off (H)")
        self._request(main_only=True)
        return self.heatmap_on

    def toggle_contrast(self) -> bool:
        """C: the '#1 versus #2' contrast map beside the part, on or off (remembered)."""
        self.contrast_on = not self.contrast_on
        self.settings.setValue("operator/contrast", self.contrast_on)
        self.contrast.setVisible(self.contrast_on)
        self._request()
        return self.contrast_on

    def stop(self, wait_ms: int = 0) -> bool:
        """Stop the heatmap worker (sign-out, shutdown); never blocks by default."""
        return self.worker.stop(wait_ms)

    def key(self, rank: int, versus: int | None = None) -> tuple:
        """Identifies a heatmap of the shown part, so a late answer for another part is dropped."""
        frame = self.result.frame if self.result is not None else None
        return (frame.source_id, frame.seq, rank, versus) if frame is not None else ()

    def _request(self, main_only: bool = False) -> None:
        if self.result is None or self.calm:
            return
        if self.heatmap_on:
            self.frame.set_note(f"computing heatmap of #{self.selected_rank}…")
            self.worker.request("main", self.key(self.selected_rank), self.result, self.selected_rank)
        if self.contrast_on and not main_only and len(self.result.ranking.candidates) >= 2:
            self.contrast.set_note("computing…")
            self.worker.request("contrast", self.key(1, 2), self.result, 1, 2)

    def _ready(self, done: HeatmapDone) -> None:
        if done.key == self.key(self.selected_rank) and self.result is not None:
            c = self.result.ranking.candidates[self.selected_rank - 1]
            self.frame.set_overlay(done.heatmap.overlay, done.heatmap.bbox)
            self.frame.set_note(f"heatmap #{c.rank} {c.label_name} · {done.ms:.0f} ms")
        elif done.key == self.key(1, 2):
            self.contrast.set_overlay(done.heatmap.overlay, done.heatmap.bbox)
            self.contrast.set_note(f"why #1 and not #2 · {done.ms:.0f} ms")

    def _unavailable(self, key: tuple, message: str) -> None:
        if key in (self.key(self.selected_rank), self.key(1, 2)):
            view = self.contrast if key == self.key(1, 2) else self.frame
            view.set_note("heatmap unavailable")
            view.setToolTip(message)
        if message.startswith("unexpected error"):  # a bug, not a model without Grad-CAM
            self.fault.emit("heatmap", message)
