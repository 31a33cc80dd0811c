"""Issue 14/15: an account edited with plain sqlite3 by someone with write access to the database file
(not the key file) must not sign in, and `log verify` and `user list` must say so. Each test performs
the attack on a real station database and then checks the refusal."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from inspector.cli import main as cli_main
from inspector.store.chain import entry_hash, fetch_row
from inspector.store.decision_log import DecisionLog
from inspector.store.passwords import fingerprint, hash_password
from inspector.store.row_seal import user_row_problems
from inspector.store.users import AccountTampered, AuthenticationFailed, UserError

PW = {"admin": "admin-secret-1", "op": "operator-secret"}
FIXTURE = Path(__file__).parent.parent / "fixtures" / "main_station"


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    with DecisionLog.open(path) as log:
        log.users.create_first_admin("admin", PW["admin"])
        admin = log.login("admin", PW["admin"])
        log.users.add_user("op", "operator", PW["op"], admin, temporary=False)
        log.users.change_own_password("op", PW["op"], "op-own-choice")
    return path


def _raw(path: Path) -> sqlite3.Connection:
    """The attacker's connection: the append-only triggers dropped, as anyone with the file can."""
    raw = sqlite3.connect(path, isolation_level=None)
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        raw.execute(f'DROP TRIGGER "{name}"')
    return raw


def _verify_exit(path: Path, capsys) -> tuple[int, str]:
    code = cli_main(["log", "verify", "--db", str(path)])
    return code, capsys.readouterr().out


def test_a_role_raised_with_sqlite3_refuses_sign_in(db: Path, capsys) -> None:
    with DecisionLog.open(db) as log:
        assert log.login("op", "op-own-choice").role == "operator"  # before the attack
    raw = _raw(db)
    raw.execute("UPDATE users SET role = 'admin' WHERE name = 'op'")
    raw.close()
    with DecisionLog.open(db) as log:
        with pytest.raises(AccountTampered, match="changed after it was written.*sign-in refused"):
            log.login("op", "op-own-choice")
        assert log.login("admin", PW["admin"]).role == "admin"  # other accounts still work
        assert {r["name"]: r["state"] for r in log.users.accounts()}["op"] == "tampered"
        assert log.events(kind="login_failed")[-1]["subject"] == "op"
    code, out = _verify_exit(db, capsys)
    assert code == 1 and "chain broken" in out and "account 'op'" in out
    assert cli_main(["user", "list", "--db", str(db)]) == 0
    assert "tampered" in next(line for line in capsys.readouterr().out.splitlines() if line.startswith("op "))


def test_a_password_hash_replaced_with_sqlite3_refuses_sign_in(db: Path, capsys) -> None:
    raw = _raw(db)
    raw.execute("UPDATE credentials SET encoded = ? WHERE user_name = 'admin'", [hash_password("attacker-chosen")])
    raw.close()
    with DecisionLog.open(db) as log:
        with pytest.raises(AccountTampered, match="outside the application"):
            log.login("admin", "attacker-chosen")
    code, out = _verify_exit(db, capsys)
    assert code == 1 and "credentials NOT intact: account 'admin'" in out


def test_a_forged_unchained_seal_event_does_not_seal_an_inserted_hash(db: Path) -> None:
    """The fingerprint formula is public: an events row carrying it, inserted by hand, must seal nothing."""
    encoded = hash_password("attacker-chosen")
    raw = sqlite3.connect(db, isolation_level=None)  # plain INSERTs: not even a trigger to drop
    raw.execute("INSERT INTO credentials (recorded_at, user_name, encoded) VALUES ('2030-01-01', 'op', ?)", [encoded])
    detail = json.dumps({"credential": fingerprint("op", encoded)})
    raw.execute(
        "INSERT INTO events (recorded_at, kind, user, subject, detail)"
        " VALUES ('2030-01-01', 'password_changed', 'op', 'op', ?)",
        [detail],
    )
    raw.close()
    with DecisionLog.open(db) as log:
        with pytest.raises(AccountTampered, match="no chained event set"):
            log.login("op", "attacker-chosen")


def test_a_deactivation_deleted_with_sqlite3_does_not_bring_the_account_back(db: Path, capsys) -> None:
    with DecisionLog.open(db) as log:
        admin = log.login("admin", PW["admin"])
        log.users.set_active("op", False, admin, "left the company")
    raw = _raw(db)
    raw.execute("DELETE FROM users WHERE name = 'op' AND version = 2")  # version 1 (active) looks current again
    raw.close()
    with DecisionLog.open(db) as log:
        with pytest.raises(AccountTampered, match="deleted"):
            log.login("op", "op-own-choice")
    code, out = _verify_exit(db, capsys)
    assert code == 1 and "row is missing" in out


def test_an_old_users_row_from_before_macs_is_sealed_at_the_upgrade(tmp_path: Path, capsys) -> None:
    """main's database has users rows with no MAC: the upgrade seals them, so a rewrite that also
    recomputes their (unkeyed) chain hash is refused at sign-in."""
    shutil.copytree(FIXTURE, tmp_path / "station", ignore=shutil.ignore_patterns("README.md"))
    (tmp_path / "station" / "station.db.key").chmod(0o600)
    db = tmp_path / "station" / "station.db"
    with DecisionLog.open(db, create=False) as log:
        assert {e["subject"] for e in log.events(kind="user_row_sealed")} == {"admin", "qa1"}
        assert log.login("qa1", "qa-pass-123").role == "qa" and user_row_problems(log.sdb.conn, log.sdb.key) == []
    raw = _raw(db)
    raw.execute("UPDATE users SET role = 'admin' WHERE name = 'qa1'")
    row = fetch_row(raw, "users", 2)
    seq, ts, prev = raw.execute("SELECT seq, ts, prev_hash FROM chain WHERE tbl = 'users' AND row_id = 2").fetchone()
    raw.execute("UPDATE chain SET hash = ? WHERE seq = ?", [entry_hash(seq, "users", 2, ts, row, prev), seq])
    raw.close()
    with DecisionLog.open(db, create=False) as log:
        with pytest.raises(AccountTampered, match="no sealed upgrade record"):
            log.login("qa1", "qa-pass-123")
        assert log.login("admin", "admin-pass-1").name == "admin"


def test_unlock_needs_a_reason_in_the_core(db: Path) -> None:
    with DecisionLog.open(db) as log:
        admin = log.login("admin", PW["admin"])
        with pytest.raises(UserError, match="reason"):
            log.users.unlock("op", admin, "  ")
        with pytest.raises(UserError, match="no user"):
            log.users.unlock("nobody", admin, "typo")
        log.users.unlock("op", admin, "called the help desk")
        assert json.loads(log.events(kind="user_unlocked")[-1]["detail"]) == {"reason": "called the help desk"}


def test_user_list_shows_a_locked_account_as_locked_with_its_end(db: Path, capsys) -> None:
    with DecisionLog.open(db) as log:  # the default policy, as `user list` applies it: 5 failures
        for _ in range(5):
            with pytest.raises(AuthenticationFailed):
                log.login("op", "wrong-password")
    assert cli_main(["user", "list", "--db", str(db)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("op "))
    assert " locked until 20" in line and "active" not in line


def _cut_from_newest_users_row(path: Path) -> int:
    """The attack: delete the newest users row version and every chain entry from its own to the end
    (with their rows), so no gap and no orphaned users entry is left; the anchor is not touched."""
    raw = _raw(path)
    seq = raw.execute("SELECT seq FROM chain WHERE tbl = 'users' AND row_id = (SELECT MAX(id) FROM users)").fetchone()[
        0
    ]
    for entry, table, row_id in raw.execute("SELECT seq, tbl, row_id FROM chain WHERE seq >= ?", (seq,)).fetchall():
        raw.execute(f'DELETE FROM "{table}" WHERE id = ?', (row_id,))
        raw.execute("DELETE FROM chain WHERE seq = ?", (entry,))
    raw.close()
    return seq


def test_a_deactivation_cut_off_the_chains_end_refuses_sign_in(db: Path, capsys) -> None:
    with DecisionLog.open(db) as log:
        admin = log.login("admin", PW["admin"])
        log.users.set_active("op", False, admin, "left the company")
    _cut_from_newest_users_row(db)
    with DecisionLog.open(db) as log:
        assert log.users.get("op")["active"]  # the version before the deactivation looks current
        assert user_row_problems(log.sdb.conn, log.sdb.key) == []  # each remaining row is sound on its own
        heads = log.sdb.conn.execute("SELECT COUNT(*) FROM chain").fetchone()[0]
        with pytest.raises(AccountTampered, match="tail was cut.*sign-in refused for every account"):
            log.login("op", "op-own-choice")
        with pytest.raises(AccountTampered, match="tail was cut"):
            log.login("admin", PW["admin"])
        # refused before anything is committed: the refusal re-uses none of the cut entries' numbers
        assert log.sdb.conn.execute("SELECT COUNT(*) FROM chain").fetchone()[0] == heads
    code, out = _verify_exit(db, capsys)
    assert code == 1


def test_a_commit_into_the_numbers_of_a_cut_tail_is_refused(db: Path) -> None:
    """A commit whose sequence number is at or below the anchor's must still find the anchored entry:
    otherwise commits over a cut tail pass silently until the chain grows past the anchor."""
    from inspector.store.database import AnchorWriteError, event_row

    with DecisionLog.open(db) as log:
        admin = log.login("admin", PW["admin"])
        log.users.change_role("op", "qa", admin, "promoted")
    _cut_from_newest_users_row(db)
    with DecisionLog.open(db) as log:
        with pytest.raises(AnchorWriteError, match="no longer holds the anchored hash"):
            with log.sdb.transaction():
                log.sdb.append("events", event_row("login_failed", None, "op", {"reason": "wrong password"}))
