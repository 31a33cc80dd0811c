"""Users and roles: argon2id hashes, the permission matrix cell by cell (refusals logged),
forged sessions, lockout after consecutive failures, first-run admin, password changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.learning.registry import ModelRegistry
from inspector.library.labels import library_from_dict
from inspector.store.decision_log import DecisionLog
from inspector.store.passwords import scrypt_hash
from inspector.store.users import (
    MATRIX,
    AccessDenied,
    AccountLocked,
    AuthenticationFailed,
    PasswordChangeRequired,
    Session,
    UserError,
    check_password,
    hash_password,
    require,
)

PW = {"admin": "admin-secret-1", "op": "operator-secret", "qa": "qa-engineer-pw", "aud": "auditor-pass-9"}
ROLE_USER = {"operator": "op", "qa": "qa", "auditor": "aud", "admin": "admin"}
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
_unique = itertools.count()


def _result(version: int) -> InspectionResult:
    ranking = Ranking(
        (
            Candidate("scratch", "S", "rework", "a thin scratch", 0.3, 0.6, 1),
            Candidate("ok", "O", "accept", "a clean surface", 0.1, 0.4, 2),
        ),
        "model",
        version,
    )
    frame = Frame(np.zeros((2, 2, 3), np.uint8), datetime.now(UTC), "cam", 0)
    return InspectionResult(frame, ranking, Verdict("rework", False, False, "top"), "0" * 64)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory, add_accounts):
    root = tmp_path_factory.mktemp("roles")
    log = DecisionLog.open(root / "s.db")
    users = add_accounts(log, {"op": "operator", "qa": "qa", "aud": "auditor"}, passwords=PW, sign_in=True)
    version = log.library.import_library(LIBRARY, users["qa"], "seed")
    yield log, users, version, root
    log.close()


def _inspect(log, users, version) -> int:
    return log.record_inspection(_result(version), users["qa"])


# Each action exercises one permission; setup that needs rights is done as QA (or admin).
ACTIONS = {
    "record_inspection": lambda log, u, s, v, root: log.record_inspection(_result(v), s),
    "record_decision": lambda log, u, s, v, root: log.record_decision(
        Decision(_inspect(log, u, v), "confirm", s.name, "scratch", 1), s
    ),
    "correct_decision": lambda log, u, s, v, root: (
        lambda i: log.correct_decision(
            log.record_decision(Decision(i, "confirm", "qa", "scratch", 1), u["qa"]),
            Decision(i, "reject_image", s.name),
            "image was blurred",
            s,
        )
    )(_inspect(log, u, v)),
    "edit_library": lambda log, u, s, v, root: log.library.add_description(
        "scratch", f"a fine scratch number {next(_unique)}", s, "more wording"
    ),
    "promote_model": lambda log, u, s, v, root: ModelRegistry(log).register(
        f"model-{next(_unique)}", "/models/m", s, parent_id=None, data_hash="", recipe={}, figures={"top1": 0.9}
    ),
    "export": lambda log, u, s, v, root: log.export("2000-01-01", "2100-01-01", root / f"export{next(_unique)}", s),
    "verify": lambda log, u, s, v, root: log.verify(s),
    "add_user": lambda log, u, s, v, root: log.users.add_user(
        f"user{next(_unique)}", "operator", "a-long-password", s, temporary=False
    ),
    "set_others_password": lambda log, u, s, v, root: log.users.change_password(
        "op" if s.name != "op" else "qa", PW["op" if s.name != "op" else "qa"], s, "matrix test"
    ),
}
# The matrix, written out independently of inspector.store.users.MATRIX.
ALLOWED = {
    "operator": {"record_inspection", "record_decision"},
    "qa": {"record_inspection", "record_decision", "correct_decision", "edit_library", "promote_model", "export"},
    "auditor": {"export", "verify"},
    "admin": {"add_user", "set_others_password"},
}


@pytest.mark.parametrize("role, action", list(itertools.product(ALLOWED, ACTIONS)))
def test_role_matrix_cell(station, role: str, action: str) -> None:
    log, users, version, root = station
    session = users[ROLE_USER[role]]
    denied_before = len(log.events(kind="denied", limit=10**6))
    if action in ALLOWED[role]:
        ACTIONS[action](log, users, session, version, root)
        assert len(log.events(kind="denied", limit=10**6)) == denied_before
    else:
        with pytest.raises(AccessDenied, match=session.name):
            ACTIONS[action](log, users, session, version, root)
        denied = log.events(kind="denied", limit=10**6)
        assert len(denied) == denied_before + 1 and denied[-1]["user"] == session.name
    assert log.verify().ok


def test_permission_table_matches_station_requirements() -> None:
    assert MATRIX == {
        "operator": {"decide"},
        "qa": {"decide", "correct", "edit_library", "promote_model", "export", "view"},
        "auditor": {"view", "export", "verify"},
        "admin": {"manage_users", "config"},
    }
    with pytest.raises(AccessDenied):
        require(None, "view")


def test_forged_session_grants_nothing(station) -> None:
    log, users, version, _ = station
    fake = Session("qa", "qa", "QA", users["qa"].authenticated_at, token="0" * 32)
    with pytest.raises(AccessDenied, match="sign in"):
        log.library.add_description("scratch", "forged wording", fake, "forged")
    assert log.events(kind="denied")[-1]["subject"] == "library_add_description"


def test_argon2id_hash_format_salt_and_checks() -> None:
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and a != b  # OWASP parameters, per-user salt
    assert check_password("correct horse", a) and check_password("correct horse", b)
    assert not check_password("correct hors", a) and not check_password("correct horse", "scrypt$bad")
    bomb = a.replace("m=19456", f"m={2**24}")
    assert not check_password("correct horse", bomb)  # refused, not computed
    legacy = scrypt_hash("correct horse", b"0123456789abcdef")
    assert check_password("correct horse", legacy) and not check_password("correct hors", legacy)
    scheme, n, r, p, salt, digest = legacy.split("$")
    assert not check_password("correct horse", "$".join([scheme, str(2**30), r, p, salt, digest]))


def test_lockout_after_five_consecutive_failures(tmp_path: Path) -> None:
    with DecisionLog.open(tmp_path / "s.db") as log:
        log.users.create_first_admin("admin", PW["admin"])
        admin = log.login("admin", PW["admin"])
        log.users.add_user("op", "operator", PW["op"], admin, temporary=False)
        for _ in range(4):
            with pytest.raises(AuthenticationFailed) as info:
                log.login("op", "wrong-password")
            assert not isinstance(info.value, AccountLocked)
        log.login("op", PW["op"])  # a success resets the count
        for _ in range(4):
            with pytest.raises(AuthenticationFailed):
                log.login("op", "wrong-password")
        with pytest.raises(AccountLocked):
            log.login("op", "wrong-password")  # the 5th in a row
        with pytest.raises(AccountLocked):
            log.login("op", PW["op"])  # even the right password
        assert len(log.events(kind="login_failed", subject="op")) == 10
        assert len(log.events(kind="account_locked", subject="op")) == 1
        log.users.unlock("op", admin, "operator called, identity checked")
        assert log.login("op", PW["op"]).role == "operator"


def test_lockout_threshold_is_configurable(tmp_path: Path) -> None:
    with DecisionLog.open(tmp_path / "s.db", max_failures=2) as log:
        log.users.create_first_admin("admin", PW["admin"])
        with pytest.raises(AuthenticationFailed):
            log.login("admin", "nope-nope")
        with pytest.raises(AccountLocked):
            log.login("admin", "nope-nope")


def test_first_admin_once_ids_never_reused_and_policies(tmp_path: Path) -> None:
    with DecisionLog.open(tmp_path / "s.db") as log:
        with pytest.raises(UserError, match="characters"):
            log.users.create_first_admin("admin", "short")
        log.users.create_first_admin("admin", PW["admin"])
        with pytest.raises(UserError, match="already has users"):
            log.users.create_first_admin("other", PW["admin"])
        admin = log.login("admin", PW["admin"])
        with pytest.raises(UserError, match="never reused"):
            log.users.add_user("admin", "qa", "another-password", admin, temporary=False)
        with pytest.raises(UserError, match="role"):
            log.users.add_user("bob", "superuser", "another-password", admin, temporary=False)
        with pytest.raises(UserError, match="invalid"):
            log.users.add_user("Bob Smith", "qa", "another-password", admin, temporary=False)
        with pytest.raises(AuthenticationFailed, match="user name or password is wrong"):
            log.login("nobody", "whatever-pass")


def test_password_changes_and_secrets_stay_out_of_records(tmp_path: Path) -> None:
    with DecisionLog.open(tmp_path / "s.db") as log:
        log.users.create_first_admin("admin", PW["admin"])
        admin = log.login("admin", PW["admin"])
        log.users.add_user("op", "operator", PW["op"], admin, temporary=False)
        op = log.login("op", PW["op"])
        log.users.change_password("op", "brand-new-secret", op)
        with pytest.raises(AuthenticationFailed):
            log.login("op", PW["op"])
        assert log.login("op", "brand-new-secret").name == "op"
        with pytest.raises(AccessDenied):
            log.users.change_password("admin", "hijacked-pass", op)
        log.users.change_password("op", "reset-by-admin", admin, "forgotten")
        with pytest.raises(PasswordChangeRequired, match="choose your own"):
            log.login("op", "reset-by-admin")  # the admin cannot act as op with the password they set
        log.users.change_own_password("op", "reset-by-admin", "ops-own-choice")
        assert log.login("op", "ops-own-choice").name == "op"
        assert [e["user"] for e in log.events(kind="password_changed")] == ["op", "admin", "op"]
        log.users.logout(op)
        with pytest.raises(AccessDenied, match="sign in"):
            log.users.change_password("op", "after-logout-pw", op)
        for table in ("users", "events", "chain"):
            dump = str(list(log.sdb.db.query(f"SELECT * FROM {table}")))
            assert "argon2id$" not in dump and "brand-new-secret" not in dump
