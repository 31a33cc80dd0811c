"""Issue 14: a station database written by main's code (tests/fixtures/main_station) upgrades in place.

The chain stays continuous across the upgrade: the old entries keep their hashes (no MAC), the
migration event and every later entry carry a MAC, and verify passes before and after new commits.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from inspector.store.decision_log import DecisionLog

FIXTURE = Path(__file__).parent.parent / "fixtures" / "main_station"


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "station", ignore=shutil.ignore_patterns("README.md"))
    (tmp_path / "station" / "station.db.key").chmod(0o600)
    return tmp_path / "station" / "station.db"


def test_main_database_upgrades_with_a_continuous_verifiable_chain(db: Path) -> None:
    with sqlite3.connect(db) as raw:
        before = raw.execute("SELECT seq, hash FROM chain ORDER BY seq").fetchall()
    assert len(before) == 21
    with DecisionLog.open(db, create=False) as log:
        report = log.verify()
        assert report.ok and report.rows > 21, report  # + one event per migration applied
        assert log.verify_images().ok
        qa = log.login("qa1", "qa-pass-123")
        log.record_event("note", {"after": "upgrade"}, qa)
        assert log.verify().ok
    with sqlite3.connect(db) as raw:
        after = raw.execute("SELECT seq, hash, prev_hash, mac FROM chain ORDER BY seq").fetchall()
        migrations = [
            s
            for (s,) in raw.execute(
                "SELECT subject FROM events WHERE kind = 'schema_migration' AND id IN"
                " (SELECT row_id FROM chain WHERE tbl = 'events' AND seq > 21) ORDER BY id"
            )
        ]
    assert [(s, h) for s, h, _, _ in after[:21]] == before  # old entries untouched
    assert after[21][2] == before[-1][1]  # the first new entry links to main's head
    assert all(mac is None for *_, mac in after[:21]) and all(mac for *_, mac in after[21:])
    assert migrations[0] == "0004_chain_mac" and "0005_embedding_mac" in migrations


def test_an_old_row_rewritten_after_the_upgrade_is_still_caught(db: Path) -> None:
    with DecisionLog.open(db, create=False) as log:
        assert log.verify().ok
    raw = sqlite3.connect(db, isolation_level=None)
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        raw.execute(f'DROP TRIGGER "{name}"')
    raw.execute("UPDATE decisions SET comment = 'forged' WHERE id = 1")
    raw.close()
    with DecisionLog.open(db, create=False) as log:
        assert not log.verify().ok
