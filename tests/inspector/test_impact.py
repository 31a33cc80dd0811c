"""Impact preview with a scorer whose vectors are chosen by hand, so every ranking is known exactly.

Texts map to orthonormal basis vectors; an image (keyed by its red value) maps to a chosen mix of
them. A label's score is the mean cosine over its descriptions, so the top-1 labels and the
probabilities (softmax at the logit scale) below are worked out by hand.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.errors import InspectorError
from inspector.frame.records import Decision, Frame
from inspector.library.draft import Edit, apply_edits
from inspector.library.impact import NONE_OF_THESE, plan_impact, run_impact
from inspector.station import Station

DIM, SCALE = 8, 10.0
TEXT = {"clean": 0, "scratch": 1, "crack": 2, "fracture": 3, "gouge": 4}
N = math.sqrt(1.01)
IMAGES = {  # red value -> {basis index: weight}; rows are normalised
    10: {0: 1.0},  # clean
    20: {0: 0.1, 4: 1.0},  # a gouge, barely like "clean"
    30: {2: 1.0, 1: 0.3},  # a crack with a faint scratch
    40: {3: 1.0, 1: 0.7},  # a fracture, rather like a scratch
}


def _unit(weights: dict[int, float]) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    for i, w in weights.items():
        v[i] = w
    return v / np.linalg.norm(v)


class BasisScorer:
    model_id, logit_scale, image_size, device = "basis-model", SCALE, 8, "cpu"

    def __init__(self) -> None:
        self.image_batches: list[int] = []

    def embed_texts(self, texts):
        return np.stack([_unit({TEXT[t]: 1.0}) for t in texts]) if texts else np.zeros((0, DIM), np.float32)

    def embed_images(self, images):
        self.image_batches.append(len(images))
        return np.stack([_unit(IMAGES[int(im[0, 0, 0])]) for im in images])


@pytest.fixture()
def station(tmp_path: Path):
    library = {
        "format": 1,
        "name": "basis",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["clean"]},
            {"id": "scratch", "disposition": "rework", "severity": 2, "descriptions": ["scratch"]},
            {"id": "crack", "disposition": "scrap", "severity": 5, "descriptions": ["crack", "fracture"]},
        ],
    }
    (tmp_path / "lib.yaml").write_text(yaml.safe_dump(library))
    config = StationConfig(
        library=LibraryConfig(str(tmp_path / "lib.yaml")), database=DatabaseConfig(str(tmp_path / "station.db"))
    )
    with Station.open(config, scorer=BasisScorer()) as st:
        st.log.users.create_first_admin("admin", "admin-pass-1")
        admin = st.log.login("admin", "admin-pass-1")
        st.log.users.add_user("op1", "operator", "op-pass-123", admin, temporary=False)
        op = st.log.login("op1", "op-pass-123")
        for seq, red in enumerate(IMAGES, start=1):
            rgb = np.zeros((6, 6, 3), np.uint8)
            rgb[..., 0] = red
            result = st.record(st.inspect(Frame(rgb, datetime.now(UTC), "cam", seq)), op)
            if red == 40:  # the operator said: a crack (ranked #2 by the library in force)
                st.log.record_decision(Decision(result.inspection_id, "pick", "op1", "crack", 2), op)
            if red == 20:
                st.log.record_decision(
                    Decision(result.inspection_id, "none_of_these", "op1", typed_description="a gouge"), op
                )
        st.scorer.image_batches.clear()
        yield st


def _softmax_top(scores: list[float], top: int) -> float:
    return math.exp(SCALE * scores[top]) / sum(math.exp(SCALE * s) for s in scores)


def test_added_and_retired_descriptions_change_exactly_the_known_inspections(station: Station) -> None:
    # Draft: "gouge" joins scratch; crack keeps only "fracture".
    draft = apply_edits(
        station.index.library,
        [
            Edit("add_description", "scratch", "ops call it a gouge", "gouge"),
            Edit("retire_description", "crack", "too generic", "crack"),
        ],
    )
    report = run_impact(plan_impact(station, draft, last_n=10), station.scorer)
    assert report.complete and (report.checked, report.total) == (4, 4)
    # image 10: ok 1 vs 0 before and after: unchanged.
    # image 20 (0.1 clean + gouge)/N: before ok 0.1/N > 0 = scratch = crack; after scratch (0 + 1/N)/2 wins.
    # image 30 (crack + 0.3 scratch)/1.044: before crack mean(1, 0)/1.044 > scratch 0.3/1.044 -> crack;
    #          after crack = fracture = 0 < scratch mean(0.3, 0)/1.044 -> scratch.
    # image 40 (fracture + 0.7 scratch)/1.221: before crack 0.5/1.221 < scratch 0.7/1.221 -> scratch;
    #          after crack 1/1.221 > scratch mean(0.7, 0)/1.221 -> crack.
    rows = {row.inspection_id: row for row in report.changed}
    by_image = dict(zip(IMAGES, sorted(r["id"] for r in station.log.inspections())))
    assert set(rows) == {by_image[20], by_image[30], by_image[40]}
    r20, r30, r40 = rows[by_image[20]], rows[by_image[30]], rows[by_image[40]]
    assert (r20.old_label, r20.new_label) == ("ok", "scratch")
    assert (r30.old_label, r30.new_label) == ("crack", "scratch")
    assert (r40.old_label, r40.new_label) == ("scratch", "crack")
    assert r20.old_probability == pytest.approx(_softmax_top([0.1 / N, 0.0, 0.0], 0), abs=1e-5)
    assert r20.new_probability == pytest.approx(_softmax_top([0.1 / N, 0.5 / N, 0.0], 1), abs=1e-5)
    m = math.sqrt(1.49)
    assert r40.old_probability == pytest.approx(_softmax_top([0.0, 0.7 / m, 0.5 / m], 1), abs=1e-5)
    assert r40.new_probability == pytest.approx(_softmax_top([0.0, 0.35 / m, 1.0 / m], 2), abs=1e-5)
    # the operator said crack for image 40: the draft fixes it; "none of these" for 20: neither
    assert (r40.answer, r40.effect) == ("crack", "fixes") and (r20.answer, r20.effect) == (NONE_OF_THESE, "")
    assert r30.answer is None and (report.fixes, report.breaks) == (1, 0)
    assert station.scorer.image_batches == [4]  # each stored image embedded once, in one batch


def test_last_n_progress_and_cancel(station: Station) -> None:
    draft = apply_edits(station.index.library, [Edit("add_description", "scratch", "why", "gouge")])
    plan = plan_impact(station, draft, last_n=2)
    assert [item[0] for item in plan.items] == sorted(r["id"] for r in station.log.inspections())[-2:]
    steps: list[tuple[int, int]] = []
    report = run_impact(plan, station.scorer, lambda d, t, s: steps.append((d, t)), batch_size=1)
    assert report.complete and steps == [(0, 2), (1, 2), (2, 2)]
    calls = iter([False, True])
    stopped = run_impact(plan, station.scorer, cancelled=lambda: next(calls), batch_size=1)
    assert not stopped.complete and stopped.checked == 1
    assert station.index.library_version == 1  # the draft was never put in force


def test_missing_image_is_noted_not_fatal(station: Station) -> None:
    draft = apply_edits(station.index.library, [Edit("add_description", "scratch", "why", "gouge")])
    plan = plan_impact(station, draft, last_n=10)
    # This draft changes images 20 (ok -> scratch) and 40 (scratch 0.7 -> 0.35 falls below crack 0.5).
    assert {row.inspection_id for row in run_impact(plan, station.scorer).changed} == {
        plan.items[1][0],
        plan.items[3][0],
    }
    plan.items[1][2].unlink()  # the stored image of red 20
    report = run_impact(plan, station.scorer)
    assert report.complete and [row.inspection_id for row in report.changed] == [plan.items[3][0]]
    assert report.notes[0].startswith(f"inspection {plan.items[1][0]}:")
    with pytest.raises(InspectorError, match="at least one"):
        plan_impact(station, draft, last_n=0)
