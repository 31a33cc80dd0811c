"""Draft library edits: applied as the store would, published as one version, roles enforced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.errors import LibraryError
from inspector.library.draft import Edit, apply_edits, changes_from, draft_rows, publish
from inspector.library.labels import Label, library_from_dict
from inspector.store.decision_log import DecisionLog
from inspector.store.users import AccessDenied

LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "t",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["a clean surface"]},
            {"id": "scratch", "disposition": "rework", "severity": 2, "descriptions": ["a thin scratch", "a scuff"]},
        ],
    }
)


@pytest.fixture()
def store_and_users(tmp_path: Path, add_accounts):
    with DecisionLog.open(tmp_path / "s.db") as log:
        add_accounts(log, {"qa1": "qa", "op1": "operator"}, passwords={"qa1": "qa-pass-123", "op1": "op-pass-123"})
        qa, op = log.login("qa1", "qa-pass-123"), log.login("op1", "op-pass-123")
        log.library.import_library(LIBRARY, qa, "seed")
        yield log, qa, op


def test_apply_matches_what_publishing_stores(store_and_users) -> None:
    log, qa, _ = store_and_users
    dent = Label("dent", "Dent", "rework", 3, ("a dent pressed into the surface",), 0.4)
    edits = [
        Edit("add_description", "scratch", "operators say gouge", "a long gouge"),
        Edit("retire_description", "scratch", "too vague", "a scuff"),
        Edit("add_label", "dent", "new defect on line 2", label=dent),
        Edit("update_label", "scratch", "customer complaint", changes=(("disposition", "scrap"), ("threshold", 0.5))),
        Edit("retire_label", "ok", "checked by the gauge instead"),
    ]
    base = log.library.current_version()
    draft = apply_edits(log.library.library(), edits)
    assert [label.id for label in draft.labels] == ["scratch", "dent"]
    assert draft.label("scratch").descriptions == ("a thin scratch", "a long gouge")
    assert (draft.label("scratch").disposition, draft.label("scratch").threshold) == ("scrap", 0.5)
    assert publish(log.library, base, edits, qa) == base + 1  # the whole draft is ONE version
    assert log.library.current_version() == base + 1
    assert log.library.library() == draft
    last = log.library.history()[-1]
    assert last["user"] == "qa1" and all(e.reason in last["reason"] for e in edits)
    event = json.loads(log.events(kind="library_edit")[-1]["detail"])
    assert event["action"] == "publish_draft" and event["version"] == base + 1
    assert [(c["action"], c["reason"]) for c in event["changes"]] == [(e.action, e.reason) for e in edits]
    assert "gouge" in edits[0].describe() and "disposition = scrap" in edits[3].describe()


def test_invalid_edits_are_refused_before_anything_is_stored(store_and_users) -> None:
    log, _, _ = store_and_users
    lib = log.library.library()
    with pytest.raises(LibraryError, match="reason"):
        Edit("add_description", "scratch", "  ", "x")
    with pytest.raises(LibraryError, match="last description"):
        apply_edits(lib, [Edit("retire_description", "ok", "why", "a clean surface")])
    with pytest.raises(LibraryError, match="no label"):
        apply_edits(lib, [Edit("add_description", "dent", "why", "x")])
    with pytest.raises(LibraryError, match="repeats"):
        apply_edits(lib, [Edit("add_description", "scratch", "why", "A Scuff")])
    with pytest.raises(LibraryError, match="severity"):
        apply_edits(lib, [Edit("update_label", "scratch", "why", changes=(("severity", 9),))])
    assert changes_from(lib.label("scratch"), {"severity": 2, "threshold": 0.3}) == (("threshold", 0.3),)


def test_operator_is_refused_and_logged_stale_draft_is_refused(store_and_users) -> None:
    log, qa, op = store_and_users
    base = log.library.current_version()
    edits = [Edit("add_description", "scratch", "why", "a long gouge")]
    with pytest.raises(AccessDenied):
        publish(log.library, base, edits, op)
    assert log.library.current_version() == base
    denied = log.events(kind="denied")
    assert denied and denied[-1]["user"] == "op1" and denied[-1]["subject"] == "library_publish_draft"
    log.library.add_description("ok", "a spotless part", qa, "someone else's edit")
    with pytest.raises(LibraryError, match="since this draft began"):
        publish(log.library, base, edits, qa)
    with pytest.raises(LibraryError, match="cannot change"):
        log.library.update_label("scratch", {"id": "x"}, qa, "why")


def test_draft_rows_lay_the_draft_over_the_version_in_force(store_and_users) -> None:
    log, qa, _ = store_and_users
    log.library.retire_description("scratch", "a scuff", qa, "vague")
    dent = Label("dent", "Dent", "rework", 3, ("a dent",))
    draft = apply_edits(
        log.library.library(),
        [
            Edit("add_description", "scratch", "why", "a long gouge"),
            Edit("retire_label", "ok", "why"),
            Edit("add_label", "dent", "why", label=dent),
        ],
    )
    rows = {row.id: row for row in draft_rows(log.library.labels(), draft)}
    assert [r for r in rows] == ["ok", "scratch", "dent"]
    assert rows["ok"].status == "retiring" and rows["ok"].descriptions == (("a clean surface", "retiring"),)
    assert rows["scratch"].status == "changed"
    assert rows["scratch"].descriptions == (
        ("a thin scratch", "active"),
        ("a scuff", "retired"),
        ("a long gouge", "new"),
    )
    assert rows["dent"].status == "new" and rows["dent"].descriptions == (("a dent", "new"),)
    unchanged = draft_rows(log.library.labels(), log.library.library())
    assert [r.status for r in unchanged] == ["active", "active"]


def test_a_failing_edit_publishes_nothing(store_and_users) -> None:
    log, qa, _ = store_and_users
    base = log.library.current_version()
    edits = [
        Edit("add_description", "scratch", "operators say gouge", "a long gouge"),
        Edit("retire_description", "ok", "a stale draft", "not there"),  # refused by the store
    ]
    with pytest.raises(LibraryError, match="no active description"):
        publish(log.library, base, edits, qa)
    assert (
        log.library.current_version() == base
        and "a long gouge" not in log.library.library().label("scratch").descriptions
    )
