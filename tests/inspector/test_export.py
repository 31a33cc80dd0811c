"""Audit export: a bundle verifies offline, CSV cannot run formulas, existing folders are refused,
nothing is written outside the chosen folder, and any change to a bundle is found."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.library.labels import library_from_dict
from inspector.store.decision_log import DecisionLog
from inspector.store.export import ExportError, verify_export
from inspector.store.users import AccessDenied

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
FORMULAS = ['=HYPERLINK("http://evil","click")', "+1+2", "-3+4", "@SUM(A1:A9)", "\tindent", "\rcarriage", "\0nul"]
HOSTILE_NAMES = ["../../escape", "/etc/passwd", "..\\..\\win", "images/../../x"]
FAR_PAST, FAR_FUTURE = "2000-01-01", "2100-01-01"


def _result(version: int, seed: int, source: str = "cam", origin: str = "") -> InspectionResult:
    ranking = Ranking(
        (
            Candidate("scratch", "S", "rework", "a thin scratch", 0.3, 0.6, 1),
            Candidate("ok", "O", "accept", "a clean surface", -0.1, 0.4, 2),
        ),
        "model",
        version,
    )
    rgb = np.random.default_rng(seed).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    frame = Frame(rgb, datetime.now(UTC), source, seed, origin=origin)
    return InspectionResult(frame, ranking, Verdict("rework", False, False, "top"), "0" * 64)


@pytest.fixture()
def station(tmp_path: Path, add_accounts):
    log = DecisionLog.open(tmp_path / "db" / "s.db")
    add_accounts(log, {"qa1": "qa", "op1": "operator"}, passwords="{name}-password")
    users = {"qa": log.login("qa1", "qa1-password"), "op": log.login("op1", "op1-password")}
    version = log.library.import_library(LIBRARY, users["qa"], "seed")
    for i, text in enumerate(FORMULAS):
        inspection = log.record_inspection(
            _result(version, i, HOSTILE_NAMES[i % 4], HOSTILE_NAMES[(i + 1) % 4]), users["op"]
        )
        log.record_decision(
            Decision(inspection, "none_of_these", "op1", typed_description=text, comment=text), users["op"]
        )
    yield log, users, tmp_path
    log.close()


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_bundle_contents_verify_offline(station) -> None:
    log, users, tmp = station
    chained = log.sdb.conn.execute("SELECT COUNT(*) FROM chain").fetchone()[0]
    summary = log.export(FAR_PAST, FAR_FUTURE, tmp / "bundle", users["qa"])
    assert summary.rows == chained  # the export's own event comes after the bundle
    report = verify_export(tmp / "bundle", log.sdb.key)
    assert report.ok and report.hmac_checked, report.problems
    assert verify_export(tmp / "bundle").ok  # without the key: sums and chain only
    names = {p.name for p in (tmp / "bundle").iterdir()}
    assert {"manifest.json", "chain.jsonl", "decisions.csv", "decisions.jsonl", "inspections.csv", "images"} <= names
    images = sorted((tmp / "bundle" / "images").iterdir())
    assert len(images) == len(FORMULAS)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == p.stem for p in images)
    export_events = log.events(kind="export")
    assert len(export_events) == 1 and export_events[0]["user"] == "qa1"
    assert json.loads(export_events[0]["detail"])["manifest_sha256"] == summary.manifest_sha256


def test_csv_is_rfc4180_and_formulas_are_neutralised(station) -> None:
    log, users, tmp = station
    log.export(FAR_PAST, FAR_FUTURE, tmp / "bundle", users["qa"])
    raw = (tmp / "bundle" / "decisions.csv").read_bytes()
    assert raw.endswith(b"\r\n")
    with open(tmp / "bundle" / "decisions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["comment"] for r in rows] == ["'" + text for text in FORMULAS]
    assert all(not r["typed_description"].startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows)
    jsonl = [json.loads(line)["row"] for line in (tmp / "bundle" / "decisions.jsonl").read_text().splitlines()]
    assert [r["comment"] for r in jsonl] == FORMULAS  # the electronic copy keeps the exact text
    with open(tmp / "bundle" / "inspections.csv", newline="", encoding="utf-8") as f:
        widths = [r["width"] for r in csv.DictReader(f)]
    assert widths == ["4"] * len(FORMULAS)  # numbers stay numbers


def test_existing_or_symlinked_folder_is_refused(station) -> None:
    log, users, tmp = station
    (tmp / "empty").mkdir()
    (tmp / "full").mkdir()
    (tmp / "full" / "keep.txt").write_text("mine")
    (tmp / "link").symlink_to(tmp / "elsewhere", target_is_directory=True)
    for name in ("empty", "full", "link"):
        with pytest.raises(ExportError, match="exists"):
            log.export(FAR_PAST, FAR_FUTURE, tmp / name, users["qa"])
    assert (tmp / "full" / "keep.txt").read_text() == "mine" and list((tmp / "empty").iterdir()) == []
    assert not (tmp / "elsewhere").exists()


def test_hostile_stored_names_never_escape_the_folder(station) -> None:
    log, users, tmp = station
    raw = sqlite3.connect(log.sdb.path)  # an attacker rewrites an image hash into a path
    raw.execute("DROP TRIGGER inspections_no_update")
    raw.execute("UPDATE inspections SET image_sha256 = '../../../../pwned_by_export' WHERE id = 1")
    raw.commit()
    raw.close()
    before = _files_under(tmp)
    summary = log.export(FAR_PAST, FAR_FUTURE, tmp / "out" / "bundle", users["qa"])
    created = _files_under(tmp) - before
    bundle = (tmp / "out" / "bundle").resolve()
    assert all(
        p.resolve() == bundle
        or p.resolve().is_relative_to(bundle)
        or p == tmp / "out"
        or p.parent == log.sdb.path.parent
        for p in created
    )
    assert not any("pwned_by_export" in p.name for p in _files_under(tmp.parent))
    assert summary.warnings and "not a valid stored image" in summary.warnings[0]
    assert not verify_export(tmp / "out" / "bundle").ok  # the edited row no longer matches its hash


def test_verify_export_finds_modified_added_and_removed_files(station) -> None:
    log, users, tmp = station
    for name in ("a", "b", "c", "d"):
        log.export(FAR_PAST, FAR_FUTURE, tmp / name, users["qa"])
    csv_path = tmp / "a" / "decisions.csv"
    data = bytearray(csv_path.read_bytes())
    data[-5] ^= 0x01
    csv_path.write_bytes(bytes(data))
    assert any("decisions.csv was modified" in p for p in verify_export(tmp / "a").problems)
    (tmp / "b" / "images" / "extra.png").write_bytes(b"x")
    assert any("not listed" in p for p in verify_export(tmp / "b").problems)
    next((tmp / "c" / "images").iterdir()).unlink()
    assert not verify_export(tmp / "c").ok
    # A forger edits a row and fixes the manifest sum: the chain hash still exposes the row,
    # and with the station key the manifest's HMAC fails too.
    path = tmp / "d" / "decisions.jsonl"
    lines = path.read_text().splitlines()
    item = json.loads(lines[0])
    item["row"]["comment"] = "nothing to see"
    lines[0] = json.dumps(item)
    path.write_text("\n".join(lines) + "\n")
    manifest = json.loads((tmp / "d" / "manifest.json").read_text())
    manifest["files"]["decisions.jsonl"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp / "d" / "manifest.json").write_text(json.dumps(manifest))
    problems = verify_export(tmp / "d", log.sdb.key).problems
    assert any("does not match its chain hash" in p for p in problems) and any("HMAC" in p for p in problems)


def test_time_window_exports_a_linked_segment(station) -> None:
    log, users, tmp = station
    start = datetime.now(UTC) + timedelta(milliseconds=5)
    while datetime.now(UTC) < start + timedelta(milliseconds=5):
        pass
    log.record_event("camera_fault", {"camera": "line-2"})
    summary = log.export(start, start + timedelta(hours=1), tmp / "window", users["qa"])
    assert summary.first_seq is not None and summary.first_seq > 1 and summary.rows == 1
    assert verify_export(tmp / "window", log.sdb.key).ok


def test_operator_may_not_export_and_refusal_is_logged(station) -> None:
    log, users, tmp = station
    with pytest.raises(AccessDenied):
        log.export(FAR_PAST, FAR_FUTURE, tmp / "nope", users["op"])
    assert not (tmp / "nope").exists() and log.events(kind="denied")[-1]["subject"] == "export"
    assert os.listdir(tmp / "db")  # the station's own files are untouched


def test_rewritten_bundle_with_recomputed_hashes_fails_the_station_signature(station) -> None:
    """Issue 14 finding 9: rewrite a row, recompute its chain hash, the segment head and the manifest.

    Every sum then agrees, so only an authenticator can tell: the station's signature, checked with
    its PUBLIC key (no station secret needed)."""
    from inspector.cli import main
    from inspector.store.chain import entry_hash
    from inspector.witness.note import signer_verifier, station_origin

    log, users, tmp = station
    log.export("2000-01-01", "2100-01-01", tmp / "e", users["qa"])
    public = str(signer_verifier(log.identity(), station_origin(log.identity())))
    assert verify_export(tmp / "e", station_key=public).authenticated
    assert main(["log", "verify-export", str(tmp / "e"), "--station-key", public]) == 0
    root = tmp / "e"
    chain = [json.loads(x) for x in (root / "chain.jsonl").read_text().splitlines()]
    tables = {
        t: [json.loads(x) for x in (root / f"{t}.jsonl").read_text().splitlines()] for t in {e["table"] for e in chain}
    }
    target = next(item for item in tables["decisions"])
    target["row"]["comment"] = "nothing to see"
    rows = {(t, item["row"]["id"]): item for t, items in tables.items() for item in items}
    prev = chain[0]["prev_hash"]
    for e in chain:  # the public chain formula, from the segment's start
        item = rows[(e["table"], e["row_id"])]
        e["prev_hash"], e["hash"] = prev, entry_hash(e["seq"], e["table"], e["row_id"], e["ts"], item["row"], prev)
        item["hash"] = prev = e["hash"]
    (root / "chain.jsonl").write_text("".join(json.dumps(e) + "\n" for e in chain))
    for t, items in tables.items():
        (root / f"{t}.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (root / "anchor.json").unlink()
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"] = {
        n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in manifest["files"] if (root / n).exists()
    }
    manifest["segment"]["head_hash"] = prev
    (root / "manifest.json").write_text(json.dumps(manifest))
    for t in tables:  # the CSVs would need the same treatment; a forger would redo them, so drop them from view
        manifest["files"].pop(f"{t}.csv", None)
        (root / f"{t}.csv").unlink()
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert verify_export(root).ok  # every sum and link agrees: without a key nothing shows ...
    assert not verify_export(root).authenticated
    signed = verify_export(root, station_key=public)
    assert not signed.ok and any("manifest.sig" in p for p in signed.problems)  # ... the signature does
    assert main(["log", "verify-export", str(root)]) == 1  # no key given: not authenticated, exit 1
    assert main(["log", "verify-export", str(root), "--station-key", public]) == 1
