"""QA corrections by label (inspector.store.corrections and `inspector log correct`): a new chained
row with a reason, QA only (enforced in the core and logged when refused), the chain still verifies,
and an export bundle carries the correction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.library.labels import library_from_dict
from inspector.store.corrections import correct_label, corrections, decided_label_counts, in_force
from inspector.store.decision_log import DecisionError, DecisionLog
from inspector.store.export import verify_export
from inspector.store.users import AccessDenied

LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "t",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["a clean surface"]},
            {"id": "scratch", "disposition": "rework", "severity": 2, "descriptions": ["a thin scratch"]},
            {"id": "dent", "disposition": "scrap", "severity": 4, "descriptions": ["a dent in the sheet"]},
        ],
    }
)
ROLES = {"op": "operator", "qa": "qa", "aud": "auditor"}


def _result(version: int) -> InspectionResult:
    candidates = tuple(
        Candidate(lab, lab.title(), "rework", f"desc of {lab}", s, p, i + 1)
        for i, (lab, s, p) in enumerate(zip(("scratch", "ok", "dent"), (0.3, 0.2, -0.1), (0.7, 0.2, 0.1)))
    )
    frame = Frame(np.full((6, 5, 3), 40, np.uint8), datetime.now(UTC), "cam-1", 7)
    return InspectionResult(
        frame, Ranking(candidates, "model-abc", version), Verdict("rework", False, False, "top-1"), "f" * 64, {}
    )


@pytest.fixture()
def station(tmp_path: Path, add_accounts):
    """One answered inspection (op confirmed scratch) and one unanswered."""
    log = DecisionLog.open(tmp_path / "station.db")
    users = add_accounts(log, ROLES, sign_in=True)
    version = log.library.import_library(LIBRARY, users["qa"], "initial library")
    answered = log.record_inspection(_result(version), users["op"])
    log.record_decision(Decision(answered, "confirm", "op", "scratch", 1), users["op"])
    unanswered = log.record_inspection(_result(version), users["op"])
    yield log, users, answered, unanswered
    log.close()


def test_a_correction_is_a_new_chained_row_naming_what_it_replaces(station, tmp_path: Path) -> None:
    log, users, inspection, _ = station
    original = log.decisions(inspection_id=inspection)[0]
    fixed = correct_label(log, inspection, "ok", "  the mark wipes off: a smudge  ", users["qa"])
    rows = log.decisions(inspection_id=inspection)
    assert [r["id"] for r in rows] == [original["id"], fixed]  # the original row is still there, unchanged
    assert rows[0]["label_id"] == "scratch" and rows[0]["corrected_by"] == fixed
    new = rows[1]
    assert (new["kind"], new["label_id"], new["picked_rank"], new["corrects_id"]) == ("pick", "ok", 2, original["id"])
    assert new["reason"] == "the mark wipes off: a smudge" and new["operator"] == "qa" and new["role"] == "qa"
    assert in_force(rows)["id"] == fixed
    (c,) = corrections(rows)
    assert (c.before, c.after, c.corrects_id) == ("scratch (#1)", "ok (#2)", original["id"])
    assert "[qa, qa]" in str(c) and "reason: the mark wipes off" in str(c)
    # a second correction corrects the first one (the one in force), back to rank 1 as a confirm
    again = correct_label(log, inspection, "scratch", "it was a scratch after all", users["qa"])
    rows = log.decisions(inspection_id=inspection)
    assert rows[-1]["corrects_id"] == fixed and rows[-1]["kind"] == "confirm" and in_force(rows)["id"] == again
    assert [(c.before, c.after) for c in corrections(rows)] == [
        ("scratch (#1)", "ok (#2)"),
        ("ok (#2)", "scratch (#1)"),
    ]
    assert log.verify().ok
    # the export carries both corrections, with their reasons, and verifies offline
    summary = log.export("2000-01-01", "2100-01-01", tmp_path / "bundle", users["aud"])
    assert verify_export(summary.out_dir, log.sdb.key).ok
    text = (summary.out_dir / "decisions.csv").read_text(encoding="utf-8")
    assert "the mark wipes off: a smudge" in text and "it was a scratch after all" in text


@pytest.mark.parametrize("who", ["op", "aud", "admin"])
def test_only_qa_may_correct_and_a_refusal_is_on_the_record(station, who: str) -> None:
    log, users, inspection, _ = station
    before = len(log.events(kind="denied"))
    with pytest.raises(AccessDenied, match="may not correct"):
        correct_label(log, inspection, "ok", "a reason", users[who])
    assert len(log.events(kind="denied")) == before + 1
    assert len(log.decisions(inspection_id=inspection)) == 1


@pytest.mark.parametrize(
    "target,label,reason,message",
    [
        ("answered", "ok", "   ", "needs a reason"),
        ("answered", "hole", "why", "not in library v1"),
        ("answered", "scratch", "why", "already scratch"),
        ("unanswered", "ok", "why", "no decision to correct"),
        (999, "ok", "why", "does not exist"),
    ],
)
def test_bad_corrections_are_refused_and_write_nothing(station, target, label: str, reason: str, message: str) -> None:
    log, users, answered, unanswered = station
    inspection = {"answered": answered, "unanswered": unanswered}.get(target, target)
    count = len(log.decisions())
    with pytest.raises(DecisionError, match=message):
        correct_label(log, inspection, label, reason, users["qa"])
    assert len(log.decisions()) == count


def _cli(capsys, monkeypatch, db: Path, *argv: str, password: str) -> tuple[int, str, str]:
    monkeypatch.setenv("INSPECTOR_PASSWORD", password)
    code = main(["log", "correct", *argv, "--db", str(db)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_corrects_and_refuses_with_one_line(station, capsys, monkeypatch) -> None:
    log, _, inspection, unanswered = station
    db = log.sdb.path
    code, out, err = _cli(
        capsys,
        monkeypatch,
        db,
        str(inspection),
        "--label",
        "dent",
        "--reason",
        "",
        "--user",
        "qa",
        password="qa-pass-1",
    )
    assert code == 2 and err.count("\n") == 1 and "needs a reason" in err
    for argv, password, message in (
        ([str(inspection), "--label", "dent", "--reason", "why", "--user", "op"], "op-pass-1", "may not correct"),
        ([str(inspection), "--label", "nope", "--reason", "why", "--user", "qa"], "qa-pass-1", "not in library"),
        (["4242", "--label", "dent", "--reason", "why", "--user", "qa"], "qa-pass-1", "does not exist"),
        ([str(unanswered), "--label", "dent", "--reason", "why", "--user", "qa"], "qa-pass-1", "no decision"),
    ):
        code, out, err = _cli(capsys, monkeypatch, db, *argv, password=password)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    code, out, err = _cli(
        capsys,
        monkeypatch,
        db,
        str(inspection),
        "--label",
        "dent",
        "--reason",
        "deep dent under the scratch",
        "--user",
        "qa",
        password="qa-pass-1",
    )
    assert code == 0, err
    assert f"inspection {inspection}" in out and "scratch (#1) -> dent (#3)" in out and "deep dent" in out
    assert log.decisions(inspection_id=inspection)[-1]["label_id"] == "dent"
    assert main(["log", "verify", "--db", str(db)]) == 0


def test_decided_label_counts_read_the_decision_in_force(station) -> None:
    log, users, answered, unanswered = station
    assert decided_label_counts(log) == {"scratch": 1}  # the unanswered inspection names nothing
    log.record_decision(Decision(unanswered, "pick", "op", "ok", 2), users["op"])
    correct_label(log, answered, "dent", "a dent, not a scratch", users["qa"])
    assert decided_label_counts(log) == {"ok": 1, "dent": 1}  # the corrected answer no longer counts
    correct_label(log, answered, "ok", "it wipes off", users["qa"])
    assert decided_label_counts(log) == {"ok": 2}
