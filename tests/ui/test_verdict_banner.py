"""Issue 15 item 16: the operator's banner reads every confidence one way ('99 %'), whether the
station passed the part or sent it to review (the reason text comes from the core)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np

from inspector.frame.ranking import VerdictPolicy, build_index, decide, rank
from inspector.frame.records import Frame, InspectionResult
from inspector.library.labels import library_from_dict
from ui.operator.verdict_banner import VerdictBanner

LIB = library_from_dict(
    {
        "name": "t",
        "labels": [
            {"id": "ok", "name": "No defect", "disposition": "accept", "descriptions": ["fine", "clean"]},
            {"id": "scratch", "name": "Scratch", "disposition": "rework", "severity": 2, "descriptions": ["a line"]},
            {
                "id": "crack",
                "name": "Crack",
                "disposition": "scrap",
                "severity": 5,
                "threshold": 0.9,
                "descriptions": ["a crack"],
            },
        ],
    }
)
AXES = {t: np.eye(4, dtype=np.float32)[i] for i, t in enumerate(["fine", "clean", "a line", "a crack"])}


def _result(image: list[float], scale: float, policy: VerdictPolicy) -> InspectionResult:
    index = build_index(LIB, lambda texts: np.stack([AXES[t] for t in texts]), "model-x", library_version=1)
    v = np.asarray(image, dtype=np.float32)
    ranking = rank(v / np.linalg.norm(v), index, logit_scale=scale)
    frame = Frame(np.zeros((8, 8, 3), np.uint8), datetime.now(UTC), "cam", 1)
    return InspectionResult(frame, ranking, decide(ranking, index, policy), "0" * 64)


def test_every_confidence_on_the_banner_is_a_percent(qtbot) -> None:
    banner = VerdictBanner()
    qtbot.addWidget(banner)
    cases = {
        "OK · No defect (": _result([1, 1, 0, 0], 50.0, VerdictPolicy()),
        "REWORK · Scratch (": _result([0, 0, 1, 0], 50.0, VerdictPolicy()),
        "is below its threshold 90 %": _result([0, 0, 0, 1], 2.0, VerdictPolicy(min_margin=0.0)),
        "margin": _result([1, 1, 1, 0.9], 1.0, VerdictPolicy(min_margin=0.2, default_threshold=0.0)),
    }
    for expected, result in cases.items():
        banner.show_result(result)
        text = banner.text()
        assert expected in text, text
        numbers = re.findall(r"\d+(?:\.\d+)?\s?%?", text)
        assert numbers and all(re.fullmatch(r"\d+ %", n.strip()) for n in numbers), text  # no 0.99, no 99%
    # the threshold case reads the label's confidence the same way as the threshold
    assert re.search(r"Crack: probability \d+ % is below its threshold 90 %", banner.text()) is None
    banner.show_result(cases["is below its threshold 90 %"])
    assert re.search(r"Crack: probability \d+ % is below its threshold 90 %", banner.text())
