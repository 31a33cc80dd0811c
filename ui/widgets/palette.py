"""The station's colours: calm greys for normal operation, colour only for trouble (ISA-101).

One place for them, so the verdict banner, the candidate list and the status panel agree on
what amber and red mean.
"""

from __future__ import annotations

# Normal: greys only. Text is dark enough for a glare-lit screen (contrast > 7:1 on BACKGROUND).
BACKGROUND = "#d6d6d6"
PANEL = "#e4e4e4"
TEXT = "#1e1e1e"
MUTED = "#5a5a5a"
BAR = "#8c8c8c"
SELECTED = "#3c3c3c"

# Trouble: (background, text). Red = the part is lost; amber = someone must look or rework it.
TROUBLE: dict[str, tuple[str, str]] = {
    "scrap": ("#b00020", "#ffffff"),
    "rework": ("#e08a00", "#1e1e1e"),
    "review": ("#f2c200", "#1e1e1e"),
    "fault": ("#b00020", "#ffffff"),
    "warning": ("#f2c200", "#1e1e1e"),
}
# Candidate rows other than #1 carry their disposition as a pale tint, so the banner stays the loud one.
PALE: dict[str, str] = {"scrap": "#e8b4bc", "rework": "#f3d2a2", "review": "#f6e6a0"}


def disposition_colours(disposition: str) -> tuple[str, str] | None:
    """(background, text) for a disposition that is trouble; None for 'accept' (stays grey)."""
    return TROUBLE.get(disposition)
