"""The ranked candidates of the shown part: key, label, best description, score bar, probability,
disposition. Painted rows (no child widgets), so the keyboard focus stays on the operator view.

Colour rule: the #1 row shows its disposition colour only when it is trouble; lower rows carry a
pale tint; everything else is grey.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from inspector.frame.records import Candidate, percent
from ui.widgets import palette

ROW_H = 52
MAX_ROWS = 9  # keys 1-9


class CandidateList(QWidget):
    """Up to nine ranked candidates; one is selected (its heatmap is the one shown)."""

    selected = Signal(int)  # rank, 1-based

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.candidates: tuple[Candidate, ...] = ()
        self.selected_rank = 1
        self.calm = True  # an accepted part: no tints at all
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(360)

    def sizeHint(self) -> QSize:
        return QSize(460, ROW_H * max(3, len(self.candidates)) + 4)

    def set_candidates(self, candidates: tuple[Candidate, ...], calm: bool = False) -> None:
        """Show a new ranking (calm: the part is accepted, so every row stays grey); selection returns to #1."""
        self.candidates = tuple(candidates[:MAX_ROWS])
        self.calm = calm
        self.selected_rank = 1
        self.setMinimumHeight(ROW_H * len(self.candidates) + 4)
        self.updateGeometry()
        self.update()

    def select(self, rank: int) -> bool:
        """Select candidate #rank (False if there is none)."""
        if not 1 <= rank <= len(self.candidates):
            return False
        if rank != self.selected_rank:
            self.selected_rank = rank
            self.update()
            self.selected.emit(rank)
        return True

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.select(int(event.position().y()) // ROW_H + 1)

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(palette.PANEL))
        if not self.candidates:
            p.setPen(QColor(palette.MUTED))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no ranking yet")
            return
        for i, c in enumerate(self.candidates):
            self._paint_row(p, QRect(0, i * ROW_H, self.width(), ROW_H), c)

    def _paint_row(self, p: QPainter, r: QRect, c: Candidate) -> None:
        trouble = palette.disposition_colours(c.disposition)
        chip_bg, chip_fg = (palette.BACKGROUND, palette.MUTED)
        if trouble is not None and not self.calm:
            chip_bg, chip_fg = (
                trouble if c.rank == 1 else (palette.PALE.get(c.disposition, palette.BACKGROUND), palette.TEXT)
            )
        if c.rank == self.selected_rank:
            p.setPen(QPen(QColor(palette.SELECTED), 2))
            p.drawRect(r.adjusted(1, 1, -2, -2))
        normal, bold, small = QFont(self.font()), QFont(self.font()), QFont(self.font())
        bold.setBold(True)
        small.setPointSizeF(max(7.0, self.font().pointSizeF() - 1))
        p.setPen(QColor(palette.TEXT))
        p.setFont(bold)
        p.drawText(QRect(r.x() + 8, r.y(), 28, r.height()), Qt.AlignmentFlag.AlignVCenter, str(c.rank))
        right = 84 + 56 + 110  # chip, probability, bar
        text_w = max(40, r.width() - 44 - right)
        p.drawText(QRect(r.x() + 40, r.y() + 5, text_w, 20), Qt.AlignmentFlag.AlignLeft, c.label_name)
        p.setFont(small)
        p.setPen(QColor(palette.MUTED))
        elided = QFontMetrics(small).elidedText(c.description, Qt.TextElideMode.ElideRight, text_w)
        p.drawText(QRect(r.x() + 40, r.y() + 27, text_w, 20), Qt.AlignmentFlag.AlignLeft, elided)
        bar = QRectF(r.right() - right + 4, r.y() + 18, 100, 14)
        p.fillRect(bar, QColor(palette.BACKGROUND))
        p.fillRect(
            QRectF(bar.x(), bar.y(), bar.width() * max(0.0, min(1.0, c.probability)), bar.height()), QColor(palette.BAR)
        )
        p.setPen(QColor(palette.TEXT))
        p.setFont(normal)
        p.drawText(
            QRect(int(bar.right()) + 4, r.y(), 52, r.height()),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            percent(c.probability),
        )
        p.setFont(small)
        p.setPen(QColor(palette.MUTED))
        p.drawText(QRect(int(bar.x()), r.y() + 34, 100, 16), Qt.AlignmentFlag.AlignLeft, f"score {c.score:.3f}")
        chip = QRect(r.right() - 80, r.y() + 14, 74, 22)
        p.fillRect(chip, QColor(chip_bg))
        p.setPen(QColor(chip_fg))
        p.drawText(chip, Qt.AlignmentFlag.AlignCenter, c.disposition)
