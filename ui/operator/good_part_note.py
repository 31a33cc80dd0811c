"""What the good-part model said about the shown part, in plain words, and where (issue 13).

When a part the ranking called good is "unlike every confirmed good part" (inspector.frame.
good_parts.review_if_unlike), the banner only says REVIEW with a terse reason; this note says why
in the operator's words, with the anomaly against its threshold, and (a `--cells local` model)
outlines on the part the cells that were unlike any good part. The audit detail uses the same
words for a logged inspection (`record_note`), from the record alone: nothing is recomputed.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from inspector.frame.good_parts import GoodPartCheck, unlike_in
from inspector.frame.records import InspectionResult
from ui.widgets import palette
from ui.widgets.frame_view import FrameView

Box = tuple[int, int, int, int]
_STYLE = "QLabel {{ background: {bg}; color: {fg}; border: 1px solid {border}; padding: 6px; }}"


def unlike_cells(check: GoodPartCheck, fallback: list | None = None) -> list[Box] | None:
    """The frame boxes of the cells above the threshold; [] for a whole-part model, None when the
    cells cannot be placed (no boxes of the same count: placing them anyway would point elsewhere)."""
    if len(check.cells) <= 1 and not check.boxes:
        return []  # "global": one row for the whole part, nothing to outline
    boxes = check.boxes or tuple(fallback or ())
    if len(boxes) != len(check.cells):
        return None
    return [tuple(int(v) for v in b) for d, b in zip(check.cells, boxes) if d > check.threshold]  # type: ignore[misc]


def check_text(check: GoodPartCheck, ranked_good: bool, cells: list[Box] | None) -> str:
    """The note for a flagged part: what the good-part model did, its distance against its threshold."""
    figures = f"distance {check.score:.3f}, threshold {check.threshold:.3f}"
    if ranked_good:
        text = (
            "Sent to review by the good-part model: this part is unlike every confirmed good part"
            f" ({figures}), although the ranking called it good."
        )
    else:
        text = f"The good-part model agrees something is wrong: unlike every confirmed good part ({figures})."
    if cells is None:
        text += " Where it differs cannot be shown (its cells do not match this frame's)."
    elif cells:
        n, k = len(cells), len(check.cells)
        text += f" Areas unlike any good part: {n} of {k}, outlined in magenta on the part."
    return text


def record_note(good_model: str, reason: str) -> str:
    """The same note for a logged inspection: its scoring configuration's good_model and its verdict
    reason (the only place the score was kept); '' when no good-part model was consulted."""
    if not good_model:
        return ""
    found, name = unlike_in(reason), f"The good-part model {good_model[:12]}"
    if found is None:
        return f"{name} was consulted: the part was within its threshold (like the confirmed good parts)."
    score, threshold = found
    figures = f"distance {score:.3f}, threshold {threshold:.3f}"
    if reason.startswith("unlike any good part:"):  # review_if_unlike's wording when it overruled "good"
        return f"{name} sent this part to review: it was unlike every confirmed good part ({figures})."
    return f"{name} also found this part unlike every confirmed good part ({figures})."


class GoodPartNote(QLabel):
    """A line beside the candidates, shown only when the good-part model flagged the part; it also
    outlines the flagged cells on `frame` (call after the frame shows the part: set_image clears them)."""

    def __init__(self, frame: FrameView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.frame = frame
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        bg, fg = palette.TROUBLE["review"]
        self.setStyleSheet(_STYLE.format(bg=palette.PALE["review"], fg=fg, border=bg))
        self.setVisible(False)

    def show_result(self, result: InspectionResult) -> None:
        """The note and outlines for a new part (hidden for a part the model did not flag)."""
        check = result.good_part
        if not isinstance(check, GoodPartCheck) or not check.flagged:
            self.setText("")
            self.setVisible(False)
            self.frame.set_marks([])
            return
        cells = unlike_cells(check, result.local_boxes)
        ranked_good = result.ranking.top.disposition == "accept"
        self.setText(check_text(check, ranked_good, cells))
        self.setVisible(True)
        self.frame.set_marks(cells or [])
