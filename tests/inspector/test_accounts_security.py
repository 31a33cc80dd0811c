"""Issue 14, accounts and files: each test performs the attack and checks that it now fails."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from inspector.cli import main as cli_main
from inspector.frame.records import Decision
from inspector.store import anchor
from inspector.store import users as users_module
from inspector.store.account_state import credential_problems
from inspector.store.decision_log import DecisionLog
from inspector.store.passwords import hash_password, scrypt_hash
from inspector.store.users import AccessDenied, AccountLocked, AuthenticationFailed, PasswordChangeRequired, UserError
from tests.inspector.test_decision_log import LIBRARY, make_result

PW = {"admin": "admin-secret-1", "op": "operator-secret", "qa": "qa-engineer-pw"}


def _station(path: Path, **kwargs) -> DecisionLog:
    log = DecisionLog.open(path, **kwargs)
    log.users.create_first_admin("admin", PW["admin"])
    admin = log.login("admin", PW["admin"])
    log.users.add_user("op", "operator", PW["op"], admin, temporary=False)
    log.users.add_user("qa", "qa", PW["qa"], admin, temporary=False)
    return log


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_inserted_credential_row_signs_nobody_in_and_verify_reports_it(tmp_path: Path, capsys) -> None:
    """Finding 6: INSERT into credentials (not blocked by the append-only triggers) must not sign in as QA."""
    with _station(tmp_path / "s.db") as log:
        log.users.change_own_password("qa", PW["qa"], "qa-own-password")  # qa's own password, sealed
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute(
        "INSERT INTO credentials (recorded_at, user_name, encoded) VALUES ('2026-01-01T00:00:00.000Z', 'qa', ?)",
        [hash_password("attacker-chosen")],
    )
    conn.commit()
    conn.close()
    with DecisionLog.open(tmp_path / "s.db") as log:
        with pytest.raises(AuthenticationFailed, match="outside the application"):
            log.login("qa", "attacker-chosen")
        assert log.sdb.verify().ok  # the chain itself is intact: the check is the credential seal
        assert any("'qa'" in p for p in credential_problems(log.sdb.conn))
    os.environ["INSPECTOR_PASSWORD"] = "x"
    try:
        assert cli_main(["log", "verify", "--db", str(tmp_path / "s.db")]) == 1
    finally:
        del os.environ["INSPECTOR_PASSWORD"]
    assert "credentials NOT intact" in capsys.readouterr().out


def test_station_files_are_private(tmp_path: Path) -> None:
    """Finding 10: database, its side files, images, anchor, lock file and bundles are 0600 in 0700 folders."""
    folder = tmp_path / "station"
    with _station(folder / "s.db") as log:
        qa = log.login("qa", PW["qa"])
        version = log.library.import_library(LIBRARY, qa, "seed")
        log.record_inspection(make_result(version), qa)
        image = next((folder / "images").rglob("*.png"))
        bundle = tmp_path / "bundle"
        log.export("2000-01-01", "2100-01-01", bundle, qa)
        files = [
            folder / "s.db",
            folder / "s.db-wal",
            folder / "s.db.anchor",
            folder / "s.db.anchor.lock",
            image,
            *[p for p in bundle.rglob("*") if p.is_file()],
        ]
        folders = [
            folder,
            *[p for p in (folder / "images").rglob("*") if p.is_dir()],
            folder / "images",
            bundle,
            bundle / "images",
        ]
        assert [p for p in files + folders if not _private(p)] == []


def test_scrypt_hash_still_signs_in_and_is_upgraded_as_a_chained_event(tmp_path: Path) -> None:
    """Finding 10: earlier releases' scrypt hashes verify once more and are replaced by argon2id."""
    with _station(tmp_path / "s.db") as log:
        legacy = scrypt_hash(PW["op"], os.urandom(16))
        with log.sdb.transaction():  # what the 0004 migration leaves for an upgraded station: a sealed scrypt hash
            log.users._set_credential("op", legacy, "credential_sealed", None, {})
        assert log.login("op", PW["op"]).name == "op"
        stored = log.sdb.conn.execute(
            "SELECT encoded FROM credentials WHERE user_name = 'op' ORDER BY id DESC"
        ).fetchone()
        assert stored[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert [e["subject"] for e in log.events(kind="password_rehashed")] == ["op"]
        assert log.login("op", PW["op"]).name == "op" and log.verify().ok
        assert len(log.events(kind="password_rehashed")) == 1


def test_a_stuck_lock_on_the_anchor_lock_file_ends_in_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    """Finding 11: a process holding the lock file does not stall commits forever."""
    monkeypatch.setattr(anchor, "ANCHOR_LOCK_TIMEOUT_S", 0.5)
    _station(tmp_path / "s.db").close()
    holder = os.open(tmp_path / "s.db.anchor.lock", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_SH)
    outcome: list[BaseException | None] = []

    def commit() -> None:
        try:
            with DecisionLog.open(tmp_path / "s.db") as log:  # sqlite connections stay in their thread
                log.record_event("camera_fault", {"message": "x"})
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    worker = threading.Thread(target=commit, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(10)
    fcntl.flock(holder, fcntl.LOCK_UN)
    os.close(holder)
    worker.join(10)
    assert outcome and outcome[0] is not None and time.monotonic() - started < 10
    assert "held by another process" in str(outcome[0]) and "IS committed" in str(outcome[0])


def test_lockout_runs_out_and_local_break_glass_unlocks_the_only_admin(tmp_path: Path, capsys) -> None:
    """Finding 12: the only admin locks themself out; the lock runs out, and a local unlock works at once."""
    with _station(tmp_path / "s.db", max_failures=2, lockout_s=1.0) as log:
        for _ in range(2):
            with pytest.raises(AuthenticationFailed):
                log.login("admin", "wrong-password")
        with pytest.raises(AccountLocked, match="try again"):
            log.login("admin", PW["admin"])
        assert {r["name"]: r["state"] for r in log.users.accounts()}["admin"] == "locked"
        time.sleep(1.1)
        assert log.login("admin", PW["admin"]).name == "admin"
        assert log.events(kind="lockout_expired")[-1]["subject"] == "admin"
    with DecisionLog.open(tmp_path / "s.db") as log:  # the default policy: 5 failures, 15 minutes
        for _ in range(5):
            with pytest.raises(AuthenticationFailed):
                log.login("admin", "wrong-password")
    assert cli_main(["user", "list", "--db", str(tmp_path / "s.db")]) == 0
    assert "locked" in [line.split()[2] for line in capsys.readouterr().out.splitlines() if line.startswith("admin")][0]
    assert (
        cli_main(
            ["user", "unlock", "admin", "--local", "--reason", "only admin locked out", "--db", str(tmp_path / "s.db")]
        )
        == 0
    )
    with DecisionLog.open(tmp_path / "s.db") as log:
        assert log.login("admin", PW["admin"]).name == "admin"
        event = log.events(kind="user_unlocked")[-1]
        assert event["user"] is None and '"local":true' in event["detail"] and '"os_user"' in event["detail"]


def test_admin_reset_forces_a_change_and_admin_set_passwords_flag_decisions(tmp_path: Path) -> None:
    """Finding 13: the admin resets op's password and tries to act as op."""
    with _station(tmp_path / "s.db") as log:
        admin, qa = log.login("admin", PW["admin"]), log.login("qa", PW["qa"])
        version = log.library.import_library(LIBRARY, qa, "seed")
        op = log.login("op", PW["op"])  # a new account: the password the admin typed in
        first = log.record_decision(
            Decision(log.record_inspection(make_result(version), op), "confirm", "op", "scratch", 1), op
        )
        log.users.change_own_password("op", PW["op"], "ops-own-choice")
        second = log.record_decision(
            Decision(log.record_inspection(make_result(version), op), "confirm", "op", "scratch", 1), op
        )
        flags = {d["id"]: d["admin_set_password"] for d in log.decisions()}
        assert flags[first] == 1 and flags[second] == 0
        with pytest.raises(UserError, match="reason"):
            log.users.change_password("op", "admin-knows-this", admin)
        log.users.change_password("op", "admin-knows-this", admin, "forgotten")
        with pytest.raises(PasswordChangeRequired):
            log.login("op", "admin-knows-this")
        assert {r["name"]: r["must_change_password"] for r in log.users.accounts()}["op"]


def test_a_new_account_chooses_its_own_password_at_the_first_sign_in(tmp_path: Path) -> None:
    """An admin-created account's password is temporary by default (core, not only the GUI): the
    first sign-in is refused until its user sets their own, after which decisions are not flagged."""
    with _station(tmp_path / "s.db") as log:
        admin = log.login("admin", PW["admin"])
        log.users.add_user("new", "operator", "typed-by-admin-1", admin, reason="new hire")
        assert {r["name"]: r["must_change_password"] for r in log.users.accounts()}["new"]
        with pytest.raises(PasswordChangeRequired, match="set by an admin"):
            log.login("new", "typed-by-admin-1")
        log.users.change_own_password("new", "typed-by-admin-1", "my-own-choice-1")
        row = {r["name"]: r for r in log.users.accounts()}["new"]
        assert not row["must_change_password"] and not row["admin_set_password"]
        assert log.login("new", "my-own-choice-1").name == "new"
        # Opting out (provisioning scripts) keeps the account flagged as admin-set until its user changes it.
        log.users.add_user("svc", "operator", "typed-by-admin-2", admin, temporary=False)
        assert log.login("svc", "typed-by-admin-2").name == "svc"
        assert {r["name"]: r["admin_set_password"] for r in log.users.accounts()}["svc"]


def test_deactivate_and_change_role_are_chained_with_a_reason(tmp_path: Path) -> None:
    """Finding 13: a mis-clicked role can be fixed and an account stopped; the only admin stays."""
    with _station(tmp_path / "s.db") as log:
        admin, op = log.login("admin", PW["admin"]), log.login("op", PW["op"])
        with pytest.raises(UserError, match="reason"):
            log.users.change_role("op", "qa", admin, " ")
        log.users.change_role("op", "qa", admin, "hired as QA")
        assert log.users.get("op")["role"] == "qa" and log.users.get("op")["version"] == 2
        with pytest.raises(AccessDenied, match="changed role"):
            log.record_event("ui_error", {"message": "x"}, op)  # the session from before the change
        log.users.set_active("qa", False, admin, "left the company")
        with pytest.raises(AuthenticationFailed):
            log.login("qa", PW["qa"])
        assert {r["name"]: r["state"] for r in log.users.accounts()}["qa"] == "inactive"
        with pytest.raises(UserError, match="only active admin"):
            log.users.set_active("admin", False, admin, "oops")
        with pytest.raises(UserError, match="only active admin"):
            log.users.change_role("admin", "qa", admin, "oops")
        with pytest.raises(AccessDenied):
            log.users.change_role("admin", "operator", log.login("op", "operator-secret"), "self-promotion")
        kinds = [e["kind"] for e in log.events()]
        assert "role_changed" in kinds and "user_deactivated" in kinds and log.verify().ok


def test_parallel_sign_ins_get_no_more_password_checks_than_the_limit(tmp_path: Path, monkeypatch) -> None:
    """Finding 14: twelve simultaneous wrong-password attempts; only max_failures passwords are checked."""
    _station(tmp_path / "s.db").close()
    checks: list[str] = []
    real = users_module.check_password

    def slow_check(password: str, encoded: str) -> bool:
        checks.append(password)
        time.sleep(0.3)  # every attempt is in flight at once
        return real(password, encoded)

    monkeypatch.setattr(users_module, "check_password", slow_check)
    barrier = threading.Barrier(12)

    def attempt(i: int) -> None:
        with DecisionLog.open(tmp_path / "s.db") as log:
            barrier.wait()
            try:
                log.login("qa", f"guess-{i:04d}")
            except AuthenticationFailed:
                pass

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len([c for c in checks if c.startswith("guess-")]) == 5


def test_a_password_typed_as_the_user_name_is_not_stored(tmp_path: Path) -> None:
    """Finding 15: the user types the password in the name field; it must not reach events or exports."""
    with _station(tmp_path / "s.db") as log:
        with pytest.raises(AuthenticationFailed):
            log.login("Tr0ub4dor&3-secret", "")
        dump = str(list(log.sdb.db.query("SELECT * FROM events")))
        assert "Tr0ub4dor" not in dump and "<unknown user " in dump
        with pytest.raises(AuthenticationFailed):
            log.login("op", "wrong-password")
        assert log.events(kind="login_failed")[-1]["subject"] == "op"  # known names are kept


def test_record_event_without_a_user_allows_only_station_kinds(tmp_path: Path) -> None:
    """Finding 17: any API caller recording `model_promoted` (or a forged account event)."""
    with _station(tmp_path / "s.db") as log:
        op = log.login("op", PW["op"])
        for kind, user in (
            ("model_promoted", None),
            ("note", None),
            ("user_added", op),
            ("model_promoted", op),
            ("library_edit", op),
            ("model_rolled_back", None),
        ):
            with pytest.raises(AccessDenied):
                log.record_event(kind, {"model": "forged"}, user)
        assert log.events(kind="model_promoted") == [] and log.events(kind="note") == []
        log.record_event("camera_fault", {"message": "cable"})
        log.record_event("model_loaded", {"ref": "x"})
        log.record_event("ui_error", {"message": "x"}, op)


def test_the_upgrade_seals_the_hashes_it_finds_and_the_chain_stays_verifiable(tmp_path: Path) -> None:
    """Migration 0004 on a database written before it: today's hashes (scrypt) are sealed, not refused."""
    _station(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    legacy = scrypt_hash(PW["op"], os.urandom(16))  # what earlier releases stored, outside the chain
    conn.execute(
        "INSERT INTO credentials (recorded_at, user_name, encoded) VALUES ('2026-01-01T00:00:00.000Z', 'op', ?)",
        [legacy],
    )
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0006_credential_seals'")  # as before the upgrade
    conn.commit()
    conn.close()
    with DecisionLog.open(tmp_path / "s.db") as log:
        assert {e["subject"] for e in log.events(kind="credential_sealed")} == {"admin", "op", "qa"}
        assert credential_problems(log.sdb.conn) == [] and log.verify().ok
        assert log.login("op", PW["op"]).name == "op"  # and the scrypt hash is upgraded
        assert log.events(kind="password_rehashed")[-1]["subject"] == "op" and log.verify().ok


def test_lockout_policy_comes_from_the_config(tmp_path: Path) -> None:
    from inspector.config import ConfigError, config_from_dict

    config = config_from_dict({"database": {"max_failed_logins": 3, "lockout_minutes": 0.5}})
    assert (config.database.max_failed_logins, config.database.lockout_minutes) == (3, 0.5)
    with pytest.raises(ConfigError, match="must be a number"):
        config_from_dict({"database": {"lockout_minutes": "soon"}})
