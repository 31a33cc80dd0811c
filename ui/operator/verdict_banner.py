"""The verdict banner above the part: grey while parts pass, coloured only when there is trouble."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from inspector.frame.records import InspectionResult, percent
from ui.widgets import palette

_STYLE = "QLabel {{ background: {bg}; color: {fg}; font-size: 20px; font-weight: bold; padding: 8px 12px; }}"


def verdict_text(result: InspectionResult) -> tuple[str, str]:
    """(headline, colour key) for a result; the key is 'accept' or a palette.TROUBLE key. Confidences
    read as percent (inspector.frame.records.percent), here and in the verdict's reason alike."""
    v, top = result.verdict, result.ranking.top
    if v.open_set:
        return f"REVIEW · not in the library — {v.reason}", "review"
    if v.needs_review:
        return f"REVIEW · {v.reason}", "review"
    if v.disposition == "accept":
        return f"OK · {top.label_name} ({percent(top.probability)})", "accept"
    return (
        f"{v.disposition.upper()} · {top.label_name} ({percent(top.probability)}) — {top.description}",
        v.disposition,
    )


class VerdictBanner(QLabel):
    """One line: what the station proposes for the shown part, and the answer once given."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(48)
        self.colour_key = "accept"
        self.show_waiting("Waiting for the first part…")

    def show_waiting(self, text: str) -> None:
        """No part yet (or the camera is silent): a calm grey line."""
        self._paint(text, "accept")

    def show_result(self, result: InspectionResult, answered: str = "") -> None:
        """The verdict of the shown part; `answered` (e.g. 'confirmed: crack') once the operator answered."""
        text, key = verdict_text(result)
        self._paint(f"{text}    ✓ {answered}" if answered else text, key)

    def _paint(self, text: str, key: str) -> None:
        self.colour_key = key
        bg, fg = palette.disposition_colours(key) or (palette.BACKGROUND, palette.TEXT)
        self.setStyleSheet(_STYLE.format(bg=bg, fg=fg))
        self.setText(text)
