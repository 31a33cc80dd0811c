"""The hash chain catches tampering done around the application: a raw sqlite3 connection with
the append-only triggers dropped edits a byte, deletes, swaps or truncates; verify() names the
first bad row, and the HMAC'ed anchor file catches a cut-off tail, an edited slot and another
station's anchor."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.library.labels import library_from_dict
from inspector.store.anchor import ANCHOR_FILE_BYTES, ANCHOR_SLOT_BYTES, AnchorError, read_anchor, write_anchor
from inspector.store.chain import GENESIS, canonical, entry_hash
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


def _result(version: int, i: int) -> InspectionResult:
    ranking = Ranking(
        (
            Candidate("scratch", "S", "rework", "a thin scratch", 0.3, 0.6, 1),
            Candidate("ok", "O", "accept", "a clean surface", 0.1, 0.4, 2),
        ),
        "model",
        version,
    )
    frame = Frame(np.full((3, 3, 3), i, np.uint8), datetime.now(UTC), "cam", i)
    return InspectionResult(frame, ranking, Verdict("rework", False, False, "top"), "0" * 64)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, add_accounts) -> Path:
    """A station with 6 inspections and decisions; each test tampers with its own copy."""
    path = tmp_path_factory.mktemp("chain") / "s.db"
    with DecisionLog.open(path) as log:
        add_accounts(log, {"qa1": "qa"}, passwords={"qa1": "qa-pass-123"})
        qa = log.login("qa1", "qa-pass-123")
        version = log.library.import_library(LIBRARY, qa, "seed")
        for i in range(6):
            inspection = log.record_inspection(_result(version, i), qa)
            log.record_decision(Decision(inspection, "confirm", "qa1", "scratch", 1, comment=f"note {i}"), qa)
    return path


@pytest.fixture()
def db(template: Path, tmp_path: Path) -> Path:
    for suffix in ("", ".key", ".anchor"):
        shutil.copy2(f"{template}{suffix}", tmp_path / f"s.db{suffix}")
    return tmp_path / "s.db"


def _tamper(db: Path, *statements: tuple[str, tuple]) -> None:
    raw = sqlite3.connect(db)
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        raw.execute(f'DROP TRIGGER "{name}"')
    for sql, params in statements:
        raw.execute(sql, params)
    raw.commit()
    raw.close()


def _verify(db: Path):
    with DecisionLog.open(db, create=False) as log:
        return log.verify()


def _seq_of(db: Path, table: str, row_id: int) -> int:
    with sqlite3.connect(db) as raw:
        return raw.execute("SELECT seq FROM chain WHERE tbl = ? AND row_id = ?", (table, row_id)).fetchone()[0]


def test_untouched_chain_verifies(db: Path) -> None:
    report = _verify(db)
    assert report.ok and report.rows == report.head_seq == report.anchor_seq > 12


def test_one_edited_byte_is_named(db: Path) -> None:
    _tamper(db, ("UPDATE decisions SET comment = 'note 4' WHERE id = 3", ()))  # was 'note 2'
    report = _verify(db)
    assert not report.ok and (report.bad_table, report.bad_row_id) == ("decisions", 3)
    assert report.bad_seq == _seq_of(db, "decisions", 3) and "decisions row 3" in str(report)


def test_edited_score_inside_the_ranking_is_named(db: Path) -> None:
    with sqlite3.connect(db) as raw:
        text = raw.execute("SELECT candidates FROM inspections WHERE id = 5").fetchone()[0]
    _tamper(db, ("UPDATE inspections SET candidates = ? WHERE id = 5", (text.replace("0.3", "0.9", 1),)))
    report = _verify(db)
    assert (report.ok, report.bad_table, report.bad_row_id) == (False, "inspections", 5)


def test_deleted_row_is_named(db: Path) -> None:
    _tamper(db, ("DELETE FROM decisions WHERE id = 2", ()))
    report = _verify(db)
    assert (report.ok, report.bad_table, report.bad_row_id) == (False, "decisions", 2)
    assert "missing" in report.problem


def test_deleted_row_and_its_chain_entry_break_the_links(db: Path) -> None:
    seq = _seq_of(db, "decisions", 2)
    _tamper(db, ("DELETE FROM decisions WHERE id = 2", ()), ("DELETE FROM chain WHERE seq = ?", (seq,)))
    report = _verify(db)
    assert not report.ok and report.bad_seq == seq + 1 and "gap" in report.problem


def test_swapped_row_contents_are_detected(db: Path) -> None:
    with sqlite3.connect(db) as raw:
        a, b = raw.execute("SELECT comment, recorded_at FROM decisions WHERE id IN (2, 4) ORDER BY id").fetchall()
    _tamper(
        db,
        ("UPDATE decisions SET comment = ?, recorded_at = ? WHERE id = 2", b),
        ("UPDATE decisions SET comment = ?, recorded_at = ? WHERE id = 4", a),
    )
    report = _verify(db)
    assert (report.ok, report.bad_table, report.bad_row_id) == (False, "decisions", 2)


def test_reordered_chain_entries_are_detected(db: Path) -> None:
    first, second = _seq_of(db, "decisions", 1), _seq_of(db, "decisions", 2)
    with sqlite3.connect(db) as raw:
        rows = {
            s: raw.execute("SELECT tbl, row_id, ts, prev_hash, hash FROM chain WHERE seq = ?", (s,)).fetchone()
            for s in (first, second)
        }
    move = "UPDATE chain SET tbl = ?, row_id = ?, ts = ?, prev_hash = ?, hash = ? WHERE seq = ?"
    _tamper(
        db,
        ("UPDATE chain SET row_id = -row_id WHERE seq IN (?, ?)", (first, second)),  # dodge UNIQUE while swapping
        (move, (*rows[second], first)),
        (move, (*rows[first], second)),
    )
    report = _verify(db)
    assert not report.ok and report.bad_seq == first


def test_truncated_tail_is_caught_by_the_anchor(db: Path) -> None:
    with sqlite3.connect(db) as raw:
        head = raw.execute("SELECT MAX(seq) FROM chain").fetchone()[0]
        tail = raw.execute("SELECT tbl, row_id FROM chain WHERE seq > ?", (head - 3,)).fetchall()
    statements = [(f"DELETE FROM {table} WHERE id = ?", (row_id,)) for table, row_id in tail]
    _tamper(db, *statements, ("DELETE FROM chain WHERE seq > ?", (head - 3,)))
    report = _verify(db)
    assert not report.ok and report.head_seq == head - 3 and report.anchor_seq == head
    assert "removed from the end" in report.problem


def _anchored_seq(db: Path) -> int:
    with DecisionLog.open(db, create=False) as log:
        anchor = read_anchor(log.sdb.anchor_path, log.sdb.key)
    assert anchor is not None
    return anchor.seq


def _edit_newest_slot(anchor: Path, edit) -> None:
    """Apply `edit` to the record in the slot with the higher seq, keeping it valid JSON of slot size."""
    data = bytearray(anchor.read_bytes())
    assert len(data) == ANCHOR_FILE_BYTES
    slots = [json.loads(data[i : i + ANCHOR_SLOT_BYTES]) for i in (0, ANCHOR_SLOT_BYTES)]
    newest = max((0, 1), key=lambda i: slots[i]["seq"])
    line = json.dumps(edit(slots[newest]), separators=(",", ":")).encode()
    data[newest * ANCHOR_SLOT_BYTES : (newest + 1) * ANCHOR_SLOT_BYTES] = line.ljust(ANCHOR_SLOT_BYTES - 1) + b"\n"
    anchor.write_bytes(bytes(data))


def test_missing_or_edited_anchor_fails_verification(db: Path) -> None:
    anchor = Path(f"{db}.anchor")
    _edit_newest_slot(anchor, lambda slot: {**slot, "seq": slot["seq"] - 2})
    report = _verify(db)
    assert not report.ok and "HMAC" in report.problem and "slot" in report.problem
    anchor.unlink()
    report = _verify(db)
    assert not report.ok and "no anchor" in report.problem


def test_anchor_of_another_station_fails_verification(db: Path, tmp_path: Path) -> None:
    other, other_key = tmp_path / "other.anchor", os.urandom(32)
    for seq in (1, 2):  # both slots written, with another station's key
        write_anchor(other, other_key, seq, "ab" * 32, "2026-01-01T00:00:00.000Z")
    shutil.copy(other, f"{db}.anchor")
    report = _verify(db)
    assert not report.ok and "HMAC" in report.problem and "another station" in report.problem
    with DecisionLog.open(db, create=False) as log, pytest.raises(AnchorError, match="another station"):
        log.record_event("camera_note", {"n": 1})  # committed, but the foreign anchor is never overwritten


def test_truncated_tail_with_the_newest_anchor_slot_destroyed_is_caught(db: Path) -> None:
    """Destroying the newer slot leaves the older one valid; the damage itself is still reported."""
    with sqlite3.connect(db) as raw:
        head = raw.execute("SELECT MAX(seq) FROM chain").fetchone()[0]
        table, row_id = raw.execute("SELECT tbl, row_id FROM chain WHERE seq = ?", (head,)).fetchone()
    _tamper(db, (f"DELETE FROM {table} WHERE id = ?", (row_id,)), ("DELETE FROM chain WHERE seq = ?", (head,)))
    _edit_newest_slot(Path(f"{db}.anchor"), lambda slot: {**slot, "mac": "0" * 64})
    report = _verify(db)
    assert not report.ok and "HMAC" in report.problem


def test_row_inserted_around_the_application_is_named(db: Path) -> None:
    _tamper(
        db,
        (
            "INSERT INTO events (recorded_at, kind, user, subject, detail) VALUES ('2026-01-01T00:00:00.000Z',"
            " 'login_ok', 'ghost', 'ghost', '{}')",
            (),
        ),
    )
    report = _verify(db)
    assert not report.ok and report.bad_table == "events" and "not in the chain" in report.problem


def test_key_file_is_private_and_anchor_only_moves_forward(db: Path) -> None:
    assert os.stat(f"{db}.key").st_mode & 0o777 == 0o600
    seq_before = _anchored_seq(db)
    with DecisionLog.open(db, create=False) as log:
        log.record_event("camera_note", {"n": 1})
        after = read_anchor(log.sdb.anchor_path, log.sdb.key)
        assert after is not None and after.seq == seq_before + 1
        write_anchor(log.sdb.anchor_path, log.sdb.key, 1, "0" * 64, "2020-01-01T00:00:00.000Z")
        assert read_anchor(log.sdb.anchor_path, log.sdb.key) == after


def test_anchor_every_n_commits_and_on_close(tmp_path: Path) -> None:
    with DecisionLog.open(tmp_path / "n.db", anchor_every=4) as log:
        # opening commits the schema migrations in ONE transaction: commit 1, chain rows 1..m
        m = len(log.events(kind="schema_migration"))
        for i in range(5):
            log.record_event("camera_note", {"i": i})  # commits 2..6, chain rows m+1..m+5
        assert _anchored_seq(tmp_path / "n.db") == m + 3  # anchored at the 4th commit: the 3rd note
    assert _anchored_seq(tmp_path / "n.db") == m + 5  # close anchors the rest


def test_canonical_form_and_entry_hash_follow_the_spec() -> None:
    assert canonical({"b": 1, "a": "é", "c": None}) == '{"a":"é","b":1,"c":null}'.encode()
    row = {"id": 3, "recorded_at": "2026-01-01T00:00:00.000Z", "x": 0.5}
    body = (
        b'{"id":3,"row":{"id":3,"recorded_at":"2026-01-01T00:00:00.000Z","x":0.5},"seq":1,"table":"events",'
        b'"ts":"2026-01-01T00:00:00.000Z"}'
    )
    expected = hashlib.sha256(b"rankclip-inspector/chain/v1\x00" + body + bytes(32)).hexdigest()
    assert entry_hash(1, "events", 3, "2026-01-01T00:00:00.000Z", row, GENESIS) == expected
    assert entry_hash(2, "events", 3, "2026-01-01T00:00:00.000Z", row, GENESIS) != expected
