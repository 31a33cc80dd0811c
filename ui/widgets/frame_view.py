"""One image panel: the part as captured, optionally with a heatmap overlay and its hottest region.

Painted rather than built from labels so the image scales with the window while keeping its
aspect ratio, and the caption and notes ("computing heatmap…") never cover the part itself.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.widgets import palette

_CAPTION_H = 26


def to_qimage(rgb: np.ndarray) -> QImage:
    """A deep-copied QImage of an RGB uint8 HxWx3 array: where pixels cross from records into Qt."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 HxWx3 array, got {rgb.dtype} {rgb.shape}")
    data = np.ascontiguousarray(rgb)
    h, w = data.shape[:2]
    # copy(): QImage would otherwise point into numpy memory that Python may release
    return QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class FrameView(QWidget):
    """A titled image with an optional overlay (shown instead of the image while enabled)."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.note = ""
        self._image: QImage | None = None
        self._overlay: QImage | None = None
        self._bbox: tuple[int, int, int, int] | None = None
        self.marks: list[tuple[int, int, int, int]] = []  # frame boxes outlined over image and heatmap
        self.overlay_enabled = True
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the operator view keeps the keyboard
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 180)

    def sizeHint(self) -> QSize:
        return QSize(480, 420)

    def set_image(self, rgb: np.ndarray | None) -> None:
        """Show a new part; any overlay of the previous part is dropped."""
        self._image = None if rgb is None else to_qimage(rgb)
        self._overlay, self._bbox, self.marks = None, None, []
        self.update()

    def set_marks(self, boxes: list[tuple[int, int, int, int]]) -> None:
        """Outline these frame boxes (x0, y0, x1, y1, frame pixels) on the part, heatmap or not."""
        self.marks = [tuple(int(v) for v in b) for b in boxes]  # type: ignore[misc]
        self.update()

    def set_overlay(self, rgb: np.ndarray | None, bbox: tuple[int, int, int, int] | None = None) -> None:
        """The heatmap overlay (same size as the image) and its hottest region, or None to clear."""
        self._overlay = None if rgb is None else to_qimage(rgb)
        self._bbox = bbox if rgb is not None else None
        self.update()

    def set_note(self, text: str) -> None:
        """A short state line under the title, e.g. 'heatmap unavailable'."""
        self.note = text
        self.update()

    def set_title(self, text: str) -> None:
        self.title = text
        self.update()

    @property
    def showing_overlay(self) -> bool:
        """Whether the overlay is what is painted now."""
        return self.overlay_enabled and self._overlay is not None

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.fillRect(self.rect(), QColor(palette.PANEL))
        p.setPen(QColor(palette.TEXT))
        bold = QFont(self.font())
        bold.setBold(True)
        p.setFont(bold)
        caption = QRect(8, 0, self.width() - 16, _CAPTION_H)
        p.drawText(caption, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.title)
        p.setFont(self.font())
        p.setPen(QColor(palette.MUTED))
        # The note gets what the title leaves, elided: in a narrow panel it must not overwrite the title.
        room = caption.width() - QFontMetrics(bold).horizontalAdvance(self.title) - 12
        note = QFontMetrics(self.font()).elidedText(self.note, Qt.TextElideMode.ElideRight, max(0, room))
        p.drawText(caption, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, note)
        area = self.rect().adjusted(8, _CAPTION_H, -8, -8)
        image = self._overlay if self.showing_overlay else self._image
        if image is None:
            p.drawText(area, Qt.AlignmentFlag.AlignCenter, "waiting for a part…")
            return
        target = self._fit(image.size(), area)
        p.drawImage(target, image)
        if self.showing_overlay and self._bbox is not None:
            self._draw_box(p, self._bbox, image.size(), target, (("#000000", 3), ("#ffffff", 1)))
        for box in self.marks:  # magenta: a hue neither the greys, the trouble colours nor jet use
            self._draw_box(p, box, image.size(), target, (("#000000", 4), ("#d000d0", 2)))

    def _fit(self, size: QSize, area: QRect) -> QRectF:
        scale = min(area.width() / max(1, size.width()), area.height() / max(1, size.height()))
        w, h = size.width() * scale, size.height() * scale
        return QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)

    def _draw_box(self, p: QPainter, box: tuple, size: QSize, target: QRectF, pens: tuple) -> None:
        x0, y0, x1, y1 = box
        sx, sy = target.width() / size.width(), target.height() / size.height()
        p.setBrush(Qt.BrushStyle.NoBrush)
        # A line over a wider dark one: visible on any image or heatmap colour.
        for colour, width in pens:
            p.setPen(QPen(QColor(colour), width))
            p.drawRect(QRectF(target.x() + x0 * sx, target.y() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy))
