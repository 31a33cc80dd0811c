"""The audit screen's core: filtered search, one inspection in full, verify and export on own connections."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.errors import InspectorError
from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.library.labels import library_from_dict
from inspector.store.audit import AuditFilter, export_database, inspection_record, search, verify_database
from inspector.store.database import utc_stamp
from inspector.store.decision_log import DecisionLog

LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "t",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["a clean surface"]},
            {"id": "scratch", "disposition": "rework", "severity": 2, "descriptions": ["a thin scratch"]},
        ],
    }
)


def _result(top: str, seq: int) -> InspectionResult:
    other = "ok" if top == "scratch" else "scratch"
    disposition = {"ok": "accept", "scratch": "rework"}
    ranking = Ranking(
        (
            Candidate(top, top.title(), disposition[top], "d1", 0.3, 0.7, 1),
            Candidate(other, other.title(), disposition[other], "d2", 0.1, 0.3, 2),
        ),
        "model-x",
        1,
    )
    frame = Frame(np.full((5, 7, 3), seq, np.uint8), datetime.now(UTC), "cam", seq)
    return InspectionResult(frame, ranking, Verdict(disposition[top], False, False, "top"), "0" * 64)


@pytest.fixture()
def log_users(tmp_path: Path, add_accounts):
    with DecisionLog.open(tmp_path / "s.db") as log:
        add_accounts(
            log, {"qa1": "qa", "op1": "operator", "op2": "operator", "aud1": "auditor"}, passwords="{name}-pass-123"
        )
        users = {n: log.login(n, f"{n}-pass-123") for n in ("qa1", "op1", "op2", "aud1")}
        log.library.import_library(LIBRARY, users["qa1"], "seed")
        for seq, (top, who) in enumerate([("scratch", "op1"), ("ok", "op2"), ("scratch", "op2")], start=1):
            i = log.record_inspection(_result(top, seq), users[who])
            log.record_decision(Decision(i, "confirm", who, top, 1), users[who])
            time.sleep(0.005)
        yield log, users


def test_filters_select_by_operator_label_verdict_and_time(log_users) -> None:
    log, _ = log_users
    everything = search(log, AuditFilter())
    assert len(everything.inspections) == 3 and len(everything.decisions) == 3 and not everything.truncated
    op2 = search(log, AuditFilter(operator="op2"))
    assert [r["user"] for r in op2.inspections] == ["op2", "op2"] and {r["operator"] for r in op2.decisions} == {"op2"}
    assert op2.events and {e["user"] for e in op2.events} == {"op2"}
    scratch = search(log, AuditFilter(label="scratch", verdict="rework"))
    assert [r["top_label_id"] for r in scratch.inspections] == ["scratch", "scratch"]
    assert search(log, AuditFilter(verdict="scrap")).inspections == []
    later = search(log, AuditFilter(from_ts=everything.inspections[1]["recorded_at"]))
    assert [r["id"] for r in later.inspections] == [everything.inspections[1]["id"], everything.inspections[2]["id"]]
    assert search(log, AuditFilter(limit=2)).truncated


def test_inspection_record_has_what_an_auditor_needs(log_users) -> None:
    log, users = log_users
    first = log.inspections()[0]["id"]
    log.correct_decision(
        log.decisions()[0]["id"], Decision(first, "pick", "qa1", "ok", 2), "it was clean", users["qa1"]
    )
    record = inspection_record(log, first)
    assert record.model_id == "model-x" and record.library_version == 1 and record.recorded_by == "op1"
    assert [c.label_id for c in record.candidates] == ["scratch", "ok"] and record.candidates[0].score == 0.3
    assert record.image_path is not None and record.image_path.is_file()
    lines = [record.describe_decision(d) for d in record.decisions]
    assert lines[0].endswith("op1 [op1, operator]: confirm #1 scratch") and lines[0].startswith("20")
    assert "correction of decision" in lines[1] and "it was clean" in lines[1] and lines[1][23] == "Z"
    with pytest.raises(InspectorError, match="does not exist"):
        inspection_record(log, 999)


def test_verify_and_export_on_their_own_connection(log_users, tmp_path: Path) -> None:
    log, users = log_users
    path = log.sdb.path
    report = verify_database(path, users["aud1"])
    assert report.ok
    assert log.events(kind="verification")[-1]["user"] == "aud1"
    outcome = export_database(path, "2000-01-01", utc_stamp(), tmp_path / "bundle", users["aud1"])
    assert outcome.check.ok and outcome.check.hmac_checked and outcome.summary.images == 3
    with pytest.raises(InspectorError):
        verify_database(path, users["op1"])  # operators may not verify
