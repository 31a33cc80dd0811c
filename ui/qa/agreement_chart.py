"""A small bar chart of per-label agreement, drawn with QPainter (no plotting dependency).

One group per label: a dark bar for top-1 agreement and a light bar for top-3 agreement, each
with its percentage, and the number of answers the figure rests on (small n: read with care).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

TOP1, TOP3 = QColor("#3f5573"), QColor("#aab8cc")
_GRID, _TEXT, _MUTED = QColor("#d8d8d8"), QColor("#202020"), QColor("#707070")
_BAR, _GAP, _LEGEND, _AXIS = 12, 12, 24, 18


@dataclass(frozen=True)
class ChartRow:
    """One group of bars: a label name, its rates (None: no answers) and the number of answers."""

    name: str
    top1: float | None
    top3: float | None
    answered: int


class AgreementChart(QWidget):
    """Horizontal grouped bars, 0-100 %, one group per label."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: tuple[ChartRow, ...] = ()
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(120)

    @property
    def rows(self) -> tuple[ChartRow, ...]:
        return self._rows

    def set_rows(self, rows: Sequence[ChartRow]) -> None:
        self._rows = tuple(rows)
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(420, _LEGEND + _AXIS + max(1, len(self._rows)) * (2 * _BAR + _GAP) + 8)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("white"))
        metrics = painter.fontMetrics()
        if not self._rows:
            painter.setPen(_MUTED)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No answered inspections in this period")
            return
        name_w = min(max(metrics.horizontalAdvance(r.name) for r in self._rows) + 12, self.width() * 0.35)
        value_w = metrics.horizontalAdvance("100% (n=9999)") + 8
        x0, x1 = name_w, max(name_w + 40, self.width() - value_w)
        self._legend(painter, x0)
        top = _LEGEND
        bottom = top + len(self._rows) * (2 * _BAR + _GAP)
        for pct in (0, 25, 50, 75, 100):  # grid lines and the axis labels under them
            x = x0 + (x1 - x0) * pct / 100
            painter.setPen(_GRID)
            painter.drawLine(int(x), top, int(x), bottom)
            painter.setPen(_MUTED)
            painter.drawText(QRectF(x - 30, bottom + 2, 60, _AXIS), Qt.AlignmentFlag.AlignHCenter, f"{pct}%")
        for i, row in enumerate(self._rows):
            y = top + i * (2 * _BAR + _GAP) + _GAP // 2
            painter.setPen(_TEXT)
            name = metrics.elidedText(row.name, Qt.TextElideMode.ElideRight, int(name_w - 8))
            painter.drawText(
                QRectF(0, y, name_w - 8, 2 * _BAR), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name
            )
            if row.top1 is None:
                painter.setPen(_MUTED)
                painter.drawText(QRectF(x0 + 4, y, x1 - x0, 2 * _BAR), Qt.AlignmentFlag.AlignVCenter, "no answers")
                continue
            for j, (rate, colour) in enumerate(((row.top1, TOP1), (row.top3 or 0.0, TOP3))):
                yy = y + j * _BAR
                painter.fillRect(QRectF(x0, yy + 1, (x1 - x0) * rate, _BAR - 2), colour)
                painter.setPen(_TEXT)
                text = f"{rate:.0%}" + (f" (n={row.answered})" if j == 0 else "")
                painter.drawText(
                    QRectF(x0 + (x1 - x0) * rate + 4, yy - 2, value_w + 40, _BAR + 4),
                    Qt.AlignmentFlag.AlignVCenter,
                    text,
                )
        painter.end()

    def _legend(self, painter: QPainter, x: float) -> None:
        for colour, text in (
            (TOP1, "top-1 agreement (operator confirmed #1)"),
            (TOP3, "top-3 (operator's label among the first three)"),
        ):
            painter.fillRect(QRectF(x, 6, 12, 12), colour)
            painter.setPen(_TEXT)
            width = painter.fontMetrics().horizontalAdvance(text)
            painter.drawText(QRectF(x + 16, 2, width + 4, 20), Qt.AlignmentFlag.AlignVCenter, text)
            x += width + 36
