"""Selective audit exports (inspector.store.export_filter): only the filter's inspections, their
decisions (corrections included) and its events, inside a whole chain segment so the links still
verify; the signed manifest names the selection, and a selected row taken out is caught."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.library.labels import library_from_dict
from inspector.store.audit import AuditFilter
from inspector.store.corrections import correct_label
from inspector.store.decision_log import DecisionLog
from inspector.store.export import verify_export
from inspector.store.export_filter import plan_export

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


def _result(version: int, top: str, red: int) -> InspectionResult:
    labels = [top, "ok" if top == "scratch" else "scratch"]
    candidates = tuple(Candidate(lab, lab, "rework", lab, 0.3 - i, 0.6 - i / 5, i + 1) for i, lab in enumerate(labels))
    rgb = np.full((6, 5, 3), red, np.uint8)
    return InspectionResult(
        Frame(rgb, datetime.now(UTC), "cam", red),
        Ranking(candidates, "m", version),
        Verdict("rework", False, False, "t"),
        "f" * 64,
        {},
    )


@pytest.fixture()
def station(tmp_path: Path, add_accounts):
    """Six inspections by op1 and op2 in turn, all answered; one of op2's corrected by QA."""
    log = DecisionLog.open(tmp_path / "station.db")
    users = add_accounts(log, {"op1": "operator", "op2": "operator", "qa": "qa", "aud": "auditor"}, sign_in=True)
    version = log.library.import_library(LIBRARY, users["qa"], "initial")
    for i in range(6):
        who = ("op1", "op2")[i % 2]
        inspection = log.record_inspection(_result(version, ("scratch", "ok")[i % 3 == 0], 10 + i), users[who])
        top = json.loads(log.inspection(inspection)["candidates"])[0]["label_id"]
        log.record_decision(Decision(inspection, "confirm", who, top, 1), users[who])
    corrected = log.inspections(operator="op2")[0]["id"]
    correct_label(log, corrected, "ok", "QA saw a clean part", users["qa"])
    yield log, users, corrected
    log.close()


def _ids(out: Path, table: str) -> list[int]:
    return [json.loads(line)["row"]["id"] for line in (out / f"{table}.jsonl").read_text().splitlines()]


def test_only_the_filtered_rows_are_exported_and_the_bundle_verifies(station, tmp_path: Path) -> None:
    log, users, corrected = station
    plan = plan_export(log, AuditFilter(operator="op2"))
    op2 = [r["id"] for r in log.inspections(operator="op2")]
    assert list(plan.inspections) == op2 and len(plan.decisions) == 4 and plan.corrections == 1
    assert plan.describe().startswith("Export 3 inspections, recorded ")
    assert "with their 4 decisions, 1 of them a correction,\nwith images (3 image files)," in plan.describe()
    out = tmp_path / "op2"
    summary = log.export(plan.from_ts, plan.to_ts, out, users["aud"], plan.selection())
    report = verify_export(out, log.sdb.key)
    assert report.ok, report.problems
    assert _ids(out, "inspections") == op2 and len(list((out / "images").iterdir())) == 3
    assert set(_ids(out, "decisions")) == set(plan.decisions)  # the correction by QA comes with its inspection
    assert "QA saw a clean part" in (out / "decisions.csv").read_text()
    assert set(_ids(out, "events")) == set(plan.events)
    chain = [json.loads(line) for line in (out / "chain.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in chain] == list(range(summary.first_seq, summary.last_seq + 1))  # no gap
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["selection"]["inspections"] == op2
    export_event = log.events(kind="export")[-1]
    assert json.loads(export_event["detail"])["selected"]["inspections"] == 3


def test_a_selected_row_taken_out_is_caught(station, tmp_path: Path) -> None:
    log, users, _ = station
    plan = plan_export(log, AuditFilter(operator="op1"))
    out = tmp_path / "op1"
    log.export(plan.from_ts, plan.to_ts, out, users["aud"], plan.selection())
    lines = (out / "inspections.jsonl").read_text().splitlines()
    (out / "inspections.jsonl").write_text("\n".join(lines[1:]) + "\n")  # drop one selected inspection
    manifest = json.loads((out / "manifest.json").read_text())  # and fix the file sum, as a forger would
    manifest["files"]["inspections.jsonl"] = hashlib.sha256((out / "inspections.jsonl").read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    report = verify_export(out)
    assert not report.ok and any("the row is missing from inspections.jsonl" in p for p in report.problems)


def test_cli_export_takes_the_filter_flags(station, tmp_path: Path, capsys, monkeypatch) -> None:
    log, _, _ = station
    monkeypatch.setenv("INSPECTOR_PASSWORD", "aud-pass-1")
    out = tmp_path / "cli"
    argv = ["log", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--out", str(out), "--user", "aud"]
    assert main([*argv, "--operator", "op1", "--label", "scratch", "--db", str(log.sdb.path)]) == 0
    printed = capsys.readouterr().out
    expected = [r["id"] for r in log.inspections(operator="op1", label="scratch")]
    assert (
        printed.startswith(f"Export {len(expected)} inspections") and "Only: operator op1, top label scratch" in printed
    )
    assert _ids(out, "inspections") == expected and verify_export(out, log.sdb.key).ok
    assert main([*argv[:-4], "--out", str(tmp_path / "all"), "--user", "aud", "--db", str(log.sdb.path)]) == 0
    assert len(_ids(tmp_path / "all", "inspections")) == 6  # without a filter flag: the whole period, as before
