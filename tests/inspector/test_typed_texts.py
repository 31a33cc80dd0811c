"""Operators' "none of these" texts for QA (issue 15 item 5): listed and grouped, adopted through
the draft (one published version names them), or dismissed with a reason; roles enforced in the core."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from fakes import HashScorer
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.errors import LibraryError
from inspector.frame.records import Decision, Frame
from inspector.library.draft import Edit, apply_edits, publish
from inspector.library.labels import seed_library_dir
from inspector.library.typed_texts import (
    DISMISSED,
    adopt_as_description,
    adopt_as_new_label,
    dismiss,
    open_texts,
)
from inspector.station import Station
from inspector.store.users import AccessDenied

TEXTS = ["oily fingerprint near the edge", "Oily  fingerprint near the edge!", "a blue ink mark", "bent pin"]


@pytest.fixture()
def station(tmp_path: Path, add_accounts):
    """Four parts answered "none of these" (two say the same), one of them corrected away later."""
    config = StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )
    with Station.open(config, scorer=HashScorer(dim=64)) as st:
        roles = {"qa1": "qa", "op1": "operator", "op2": "operator", "aud1": "auditor"}
        users = add_accounts(st.log, roles, sign_in=True)
        ids = []
        for seq, text in enumerate(TEXTS, start=1):
            op = users["op1" if seq % 2 else "op2"]
            frame = Frame(np.full((10, 10, 3), 20 * seq, np.uint8), datetime.now(UTC), "cam", seq)
            inspection = st.record(st.inspect(frame), op).inspection_id
            ids.append(
                st.log.record_decision(Decision(inspection, "none_of_these", op.name, typed_description=text), op)
            )
        # QA corrects "bent pin" (the image was unusable): that text is no longer the answer in force
        bent = st.log.decisions()[-1]
        fix = Decision(bent["inspection_id"], "reject_image", "qa1")
        st.log.correct_decision(ids[-1], fix, "blurred image, retake", users["qa1"])
        yield st, users


def test_open_texts_are_grouped_newest_wording_first_and_need_view(station) -> None:
    st, users = station
    items = open_texts(st.log, users["qa1"])
    assert [(i.text, i.count) for i in items] == [("Oily fingerprint near the edge!", 2), ("a blue ink mark", 1)]
    oily = items[0]
    assert set(oily.operators) == {"op1", "op2"} and len(oily.inspection_ids) == 2
    assert open_texts(st.log, users["aud1"]) == items  # the audit may read them
    with pytest.raises(AccessDenied):
        open_texts(st.log, users["op1"])


def test_dismiss_needs_qa_and_a_reason_and_is_a_chained_event(station) -> None:
    st, users = station
    ink = [i for i in open_texts(st.log, users["qa1"]) if i.text == "a blue ink mark"][0]
    with pytest.raises(AccessDenied):
        dismiss(st.log, ink, "not a defect", users["op1"])
    with pytest.raises(AccessDenied):
        dismiss(st.log, ink, "not a defect", users["aud1"])
    with pytest.raises(LibraryError, match="why"):
        dismiss(st.log, ink, "   ", users["qa1"])
    assert ink in open_texts(st.log, users["qa1"])  # refusals changed nothing
    dismiss(st.log, ink, "marker pen from the test bench, not a part defect", users["qa1"])
    assert [i.text for i in open_texts(st.log, users["qa1"])] == ["Oily fingerprint near the edge!"]
    [event] = st.log.events(kind=DISMISSED)
    detail = json.loads(event["detail"])
    assert (
        event["user"] == "qa1" and detail["decision_ids"] == list(ink.decision_ids) and "marker pen" in detail["reason"]
    )
    assert st.log.verify().ok  # the dismissal is part of the hash chain
    with pytest.raises(LibraryError, match="meanwhile"):  # a second QA window with the old list
        dismiss(st.log, ink, "again", users["qa1"])


def test_adopt_goes_into_the_draft_and_leaves_the_list_once_published(station) -> None:
    st, users = station
    log, qa = st.log, users["qa1"]
    oily, ink = open_texts(log, qa)
    with pytest.raises(AccessDenied):
        adopt_as_description(log, oily, "stain", "operators see it daily", users["op1"])
    with pytest.raises(LibraryError, match="reason"):
        adopt_as_description(log, oily, "stain", " ", qa)
    with pytest.raises(LibraryError, match="no label"):
        adopt_as_description(log, oily, "no_such_label", "why", qa)
    base = log.library.current_version()
    edits = [
        adopt_as_description(log, oily, "stain", "operators see it daily", qa),
        adopt_as_new_label(log, ink, "ink_mark", "Ink mark", "a new kind of mark", qa),
    ]
    assert edits[1].label.disposition == "review" and edits[1].label.severity == 3  # unjudged, not harmless
    apply_edits(log.library.library(), edits)  # stages like any other edit
    assert len(open_texts(log, qa)) == 2  # staged, not yet in force: still open
    assert log.library.current_version() == base
    version = publish(log.library, base, edits, qa)
    assert version == base + 1 and open_texts(log, qa) == []
    library = log.library.library()
    assert oily.text in library.label("stain").descriptions
    assert library.label("ink_mark").descriptions == (ink.text,)
    changes = json.loads(log.events(kind="library_edit")[-1]["detail"])["changes"]
    assert [c.get("typed_from") for c in changes] == [list(oily.decision_ids), list(ink.decision_ids)]


def test_a_discarded_draft_leaves_the_text_open(station) -> None:
    st, users = station
    oily = open_texts(st.log, users["qa1"])[0]
    edit = adopt_as_description(st.log, oily, "stain", "why", users["qa1"])
    assert isinstance(edit, Edit) and edit.typed_from == oily.decision_ids
    assert open_texts(st.log, users["qa1"])[0] == oily  # nothing was recorded by building the edit


def test_finetune_dry_run_lists_only_texts_still_awaiting_qa(station) -> None:
    """A dismissed text is settled: `inspector finetune --dry-run` no longer lists it as awaiting QA."""
    from inspector.learning.sources import training_set_from

    st, users = station
    before = sorted(p.text for p in training_set_from(st.log).proposals)
    assert "a blue ink mark" in before
    ink = [i for i in open_texts(st.log, users["qa1"]) if i.text == "a blue ink mark"][0]
    dismiss(st.log, ink, "marker pen from the test bench, not a part defect", users["qa1"])
    after = sorted(p.text for p in training_set_from(st.log).proposals)
    assert after == [t for t in before if t != "a blue ink mark"]
