"""Issue 14, findings 1-4: an insider who can write the station's files but never reads its key file.

Each test performs the attack with a raw sqlite3 connection (triggers dropped, chain hashes
recomputed with the public formula) and/or by editing the anchor file, then asks verify().
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from inspector.frame.records import Decision
from inspector.store.anchor import ANCHOR_SLOT_BYTES, AnchorError
from inspector.store.chain import GENESIS, entry_hash, fetch_row
from inspector.store.decision_log import DecisionLog
from inspector.store.users import AccountTampered, AuthenticationFailed
from tests.inspector.test_chain_tamper import LIBRARY, _result


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("insider") / "s.db"
    with DecisionLog.open(path) as log:
        log.users.create_first_admin("admin", "admin-pass-1")
        admin = log.login("admin", "admin-pass-1")
        log.users.add_user("qa1", "qa", "qa-pass-123", admin, temporary=False)
        log.users.add_user("op1", "operator", "op-pass-123", admin, temporary=False)
        qa = log.login("qa1", "qa-pass-123")
        version = log.library.import_library(LIBRARY, qa, "seed")
        for i in range(4):
            inspection = log.record_inspection(_result(version, i), qa)
            log.record_decision(Decision(inspection, "confirm", "qa1", "scratch", 1, comment=f"note {i}"), qa)
    return path


@pytest.fixture()
def db(template: Path, tmp_path: Path) -> Path:
    for suffix in ("", ".key", ".anchor"):
        shutil.copy2(f"{template}{suffix}", tmp_path / f"s.db{suffix}")
    return tmp_path / "s.db"


def _raw(db: Path) -> sqlite3.Connection:
    raw = sqlite3.connect(db, isolation_level=None)
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        raw.execute(f'DROP TRIGGER "{name}"')
    return raw


def _rechain(raw: sqlite3.Connection, from_seq: int) -> None:
    """Recompute every entry hash from `from_seq` on with the public formula (what an attacker can do)."""
    prev = (
        GENESIS if from_seq == 1 else raw.execute("SELECT hash FROM chain WHERE seq = ?", (from_seq - 1,)).fetchone()[0]
    )
    for seq, table, row_id, ts in raw.execute(
        "SELECT seq, tbl, row_id, ts FROM chain WHERE seq >= ? ORDER BY seq", (from_seq,)
    ).fetchall():
        digest = entry_hash(seq, table, row_id, ts, fetch_row(raw, table, row_id), prev)
        raw.execute("UPDATE chain SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
        prev = digest


def _verify(db: Path):
    with DecisionLog.open(db, create=False) as log:
        return log.verify()


def _failed_sign_in(db: Path) -> None:
    """One ordinary commit: a failed sign-in is logged as an event (an anchor refusal may follow it)."""
    with DecisionLog.open(db, create=False) as log:
        with pytest.raises((AuthenticationFailed, AnchorError)):
            log.login("qa1", "wrong password")


def test_rewrite_below_the_anchor_stays_detected_after_later_commits(db: Path) -> None:
    """Finding 1: edit a decision, recompute the chain; one ordinary commit must not make it 'intact'."""
    raw = _raw(db)
    row_id = raw.execute("SELECT MIN(id) FROM decisions").fetchone()[0]
    raw.execute("UPDATE decisions SET comment = 'forged' WHERE id = ?", (row_id,))
    seq = raw.execute("SELECT seq FROM chain WHERE tbl = 'decisions' AND row_id = ?", (row_id,)).fetchone()[0]
    _rechain(raw, seq)
    raw.close()
    assert not _verify(db).ok
    _failed_sign_in(db)
    _failed_sign_in(db)
    report = _verify(db)
    assert not report.ok, report
    assert report.bad_seq == seq, report


def test_rows_appended_around_the_application_are_detected(db: Path) -> None:
    """Finding 2: a users version turning op1 into QA, chained with correct hashes, then a library edit."""
    raw = _raw(db)
    seq, prev = raw.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    user = raw.execute("SELECT * FROM users WHERE name = 'op1' ORDER BY version DESC LIMIT 1").fetchone()
    ts = "2030-01-01T00:00:00.000Z"
    raw.execute(
        "INSERT INTO users (recorded_at, name, version, role, printed_name, active, changed_by, reason)"
        " VALUES (?, 'op1', ?, 'qa', 'op1', 1, 'admin', 'promoted')",
        (ts, user[3] + 1),
    )
    row_id = raw.execute("SELECT MAX(id) FROM users").fetchone()[0]
    digest = entry_hash(seq + 1, "users", row_id, ts, fetch_row(raw, "users", row_id), prev)
    raw.execute(
        "INSERT INTO chain (seq, tbl, row_id, ts, prev_hash, hash) VALUES (?, 'users', ?, ?, ?, ?)",
        (seq + 1, row_id, ts, prev, digest),
    )
    raw.close()
    assert not _verify(db).ok
    with DecisionLog.open(db, create=False) as log:  # the operator, now "QA", cannot even sign in
        with pytest.raises(AccountTampered, match="no MAC"):
            log.login("op1", "op-pass-123")
    report = _verify(db)
    assert not report.ok, report


def test_deleted_anchor_is_not_recreated(db: Path) -> None:
    """Finding 3: a commit after the anchor file was deleted must not write a fresh one."""
    Path(f"{db}.anchor").unlink()
    assert not _verify(db).ok
    _failed_sign_in(db)
    assert not Path(f"{db}.anchor").exists()
    assert not _verify(db).ok


def test_blanked_newest_slot_and_cut_tail_are_detected(db: Path) -> None:
    """Finding 4: blank the newer anchor slot, delete the last commit's rows (and commit once more)."""
    _failed_sign_in(db)  # two anchor writes at least: both slots hold an anchor
    anchor = Path(f"{db}.anchor")
    data = anchor.read_bytes()
    slots = [data[:ANCHOR_SLOT_BYTES], data[ANCHOR_SLOT_BYTES:]]
    import json

    seqs = [json.loads(s.strip())["seq"] for s in slots]
    newer, older = (0, 1) if seqs[0] > seqs[1] else (1, 0)
    slots[newer] = b" " * (ANCHOR_SLOT_BYTES - 1) + b"\n"
    anchor.write_bytes(b"".join(slots))
    raw = _raw(db)
    for seq, table, row_id in raw.execute(
        "SELECT seq, tbl, row_id FROM chain WHERE seq > ?", (seqs[older],)
    ).fetchall():
        raw.execute(f'DELETE FROM "{table}" WHERE id = ?', (row_id,))
        raw.execute("DELETE FROM chain WHERE seq = ?", (seq,))
    raw.close()
    assert not _verify(db).ok
    _failed_sign_in(db)
    assert not _verify(db).ok


def test_garbled_newest_slot_and_cut_tail_are_detected(db: Path) -> None:
    """Finding 4 variant: a newest slot made to look like a torn write, and its commit's rows deleted."""
    _failed_sign_in(db)
    anchor = Path(f"{db}.anchor")
    data = bytearray(anchor.read_bytes())
    import json

    seqs = [json.loads(bytes(data[i * ANCHOR_SLOT_BYTES : (i + 1) * ANCHOR_SLOT_BYTES]).strip())["seq"] for i in (0, 1)]
    newer = 0 if seqs[0] > seqs[1] else 1
    data[newer * ANCHOR_SLOT_BYTES : newer * ANCHOR_SLOT_BYTES + 20] = b"\x00" * 20
    anchor.write_bytes(bytes(data))
    raw = _raw(db)
    for seq, table, row_id in raw.execute("SELECT seq, tbl, row_id FROM chain WHERE seq > ?", (min(seqs),)).fetchall():
        raw.execute(f'DELETE FROM "{table}" WHERE id = ?', (row_id,))
        raw.execute("DELETE FROM chain WHERE seq = ?", (seq,))
    raw.close()
    _failed_sign_in(db)
    assert not _verify(db).ok


def test_whole_station_rollback_needs_a_witness(db: Path, tmp_path: Path) -> None:
    """Finding 4, second half: an older database restored with its older anchor verifies on its own.

    Nothing on the station can tell (the copy is a state the station really was in); the witness
    tests (test_witness.py) show it detected. This test pins down that limit, and that verify says so.
    """
    saved = tmp_path / "saved"
    saved.mkdir()
    for suffix in ("", ".anchor"):
        shutil.copy2(f"{db}{suffix}", saved / f"s.db{suffix}")
    _failed_sign_in(db)
    for suffix in ("", ".anchor"):
        shutil.copy2(saved / f"s.db{suffix}", f"{db}{suffix}")
    report = _verify(db)
    assert report.ok
    assert "witness" in str(report) and "rollback" in str(report)
