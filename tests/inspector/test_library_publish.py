"""Issue 15 item 7: the staged changes as a readable list, and a new label that starts as `review`
(not a harmless `accept`, severity 0) in the CLI as in the GUI; several changes make one version."""

from __future__ import annotations

from pathlib import Path

from inspector.cli import main as cli_main
from inspector.library.draft import Edit, apply_edits
from inspector.library.draft_diff import staged_changes
from inspector.library.labels import NEW_LABEL_DISPOSITION, NEW_LABEL_SEVERITY, Label, library_from_dict
from inspector.store.decision_log import DecisionLog

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


def _station(tmp_path: Path, add_accounts) -> tuple[Path, object]:
    db = tmp_path / "s.db"
    with DecisionLog.open(db) as log:
        add_accounts(log, {"qa1": "qa"}, passwords={"qa1": "qa-pass-123"})
        log.library.import_library(LIBRARY, log.login("qa1", "qa-pass-123"), "seed")
    return db


def test_staged_changes_read_as_a_diff(tmp_path: Path, add_accounts) -> None:
    with DecisionLog.open(_station(tmp_path, add_accounts)) as log:
        edits = [
            Edit("add_description", "scratch", "operators say gouge", "a long gouge"),
            Edit("retire_description", "scratch", "too vague", "a scuff"),
            Edit("update_label", "scratch", "complaint", changes=(("disposition", "scrap"),)),
            Edit("add_label", "dent", "new", label=Label("dent", "Dent", "review", 3, ("a dent",))),
            Edit("retire_label", "ok", "gauged instead"),
        ]
        lines = [str(line) for line in staged_changes(log.library.labels(), apply_edits(log.library.library(), edits))]
    assert lines == [
        "\u2212 label ok [ok] and its 1 description(s)",
        "~ label scratch [scratch]: disposition rework \u2192 scrap",
        "    \u2212 description \u201ca scuff\u201d",
        "    + description \u201ca long gouge\u201d",
        "+ new label Dent [dent]: review, severity 3",
        "    + description \u201ca dent\u201d",
    ]


def test_cli_new_label_defaults_to_review_and_descriptions_make_one_version(
    tmp_path: Path, add_accounts, capsys, monkeypatch
) -> None:
    db = _station(tmp_path, add_accounts)
    monkeypatch.setenv("INSPECTOR_PASSWORD", "qa-pass-123")
    base = ["--user", "qa1", "--db", str(db), "--reason", "seen on line 2"]
    assert cli_main(["library", "add", "burr", "--description", "a sharp burr on the edge", *base]) == 0
    assert cli_main(["library", "add", "scratch", "--description", "a gouge", "--description", "a groove", *base]) == 0
    with DecisionLog.open(db) as log:
        burr = log.library.library().label("burr")
        assert (burr.disposition, burr.severity) == (NEW_LABEL_DISPOSITION, NEW_LABEL_SEVERITY) == ("review", 3)
        assert log.library.current_version() == 3  # seed, the new label, both descriptions at once
        assert log.library.library().label("scratch").descriptions[-2:] == ("a gouge", "a groove")
    assert "library version 3 recorded" in capsys.readouterr().out
