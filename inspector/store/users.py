"""User accounts: argon2id password hashes, time-limited lockout, sign-in that issues sessions.

Roles, permissions, Session and the permission check live in inspector.store.access and are
re-exported here. A Session is issued only by UserStore.authenticate(); require() refuses any
other object, so a hand-made Session grants nothing.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from inspector.store.access import (
    MATRIX,
    PERMISSIONS,
    ROLES,
    AccessDenied,
    AccountLocked,
    AccountTampered,
    AuthenticationFailed,
    PasswordChangeRequired,
    Session,
    UserError,
    authorize,
    issue_session_token,
    latest_user,
    require,
    revoke_session_token,
)
from inspector.store.account_state import credential_sealed, lock_state, password_origin
from inspector.store.database import StationDB, event_row, utc_stamp
from inspector.store.passwords import check_password, fingerprint, hash_password, needs_rehash
from inspector.store.row_seal import user_row_problem

# Re-exported: callers hash, and check roles and sessions, through this module.
__all__ = [
    "MATRIX",
    "PERMISSIONS",
    "ROLES",
    "AccessDenied",
    "AccountLocked",
    "AccountTampered",
    "AuthenticationFailed",
    "PasswordChangeRequired",
    "Session",
    "UserError",
    "authorize",
    "check_password",
    "hash_password",
    "require",
]

_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 8
LOCKOUT_S = 900.0  # default lock after max_failures attempts: 15 minutes, then sign-in is possible again


class UserStore:
    """Accounts over the station database: every change is a new chained row, never an update."""

    def __init__(self, sdb: StationDB, max_failures: int = 5, lockout_s: float = LOCKOUT_S) -> None:
        self.sdb, self.max_failures, self.lockout_s = sdb, max_failures, lockout_s

    def get(self, name: str) -> dict[str, Any] | None:
        """The latest version of user `name`, or None."""
        return latest_user(self.sdb, name)

    def accounts(self) -> list[dict[str, Any]]:
        """The latest version of every user, by name, with its state now: `state` (active, locked, inactive,
        or tampered: changed outside the application, see row_seal), `locked_until` (UTC text or None),
        `must_change_password`, `admin_set_password`."""
        rows = list(
            self.sdb.db.query(
                "SELECT * FROM users u WHERE version = (SELECT MAX(version) FROM users WHERE name = u.name)"
                " ORDER BY name"
            )
        )
        now = datetime.now(UTC)
        for row in rows:
            # Before any key is added to the row (the check hashes it as stored); sign-in refuses such an account.
            tampered = bool(user_row_problem(self.sdb.conn, self.sdb.key, row))
            tampered = tampered or not credential_sealed(self.sdb.conn, row["name"], self.sdb.key)[1]
            lock = lock_state(self.sdb.conn, row["name"], self.max_failures, self.lockout_s, now)
            locked = lock.locked_until is not None and not lock.expired
            row["state"] = "inactive" if not row["active"] else "locked" if locked else "active"
            row["state"] = "tampered" if tampered else row["state"]
            until = lock.locked_until if locked and lock.locked_until.year < 9999 else None
            row["locked_until"] = utc_stamp(until) if until else ("until unlocked" if locked else None)
            row["admin_set_password"], row["must_change_password"] = password_origin(self.sdb.conn, row["name"])
        return rows

    def has_users(self) -> bool:
        return bool(list(self.sdb.db.query("SELECT 1 AS x FROM users LIMIT 1")))

    def create_first_admin(self, name: str, password: str, printed_name: str = "") -> None:
        """First run only: the one account made without a signed-in admin."""
        self._check_new(name, password, printed_name or name)
        encoded = hash_password(password)  # outside the transaction: it takes tens of ms
        with self.sdb.transaction():
            if self.has_users():
                raise UserError("the station already has users; sign in as an admin to add more")
            self._append_user(name, "admin", printed_name or name, None, "first run", 1, 1)
            self._set_credential(name, encoded, "first_admin_created", None, {})

    def add_user(
        self,
        name: str,
        role: str,
        password: str,
        user: Session,
        printed_name: str = "",
        reason: str = "",
        temporary: bool = True,
    ) -> None:
        """Create an account (admin only); user ids are never reused. The password an admin chose is
        `temporary` by default: its user must choose their own at the first sign-in. Until they do,
        the account's decisions are flagged as made under an admin-set password."""
        authorize(self.sdb, user, "manage_users", "add_user")
        if role not in ROLES:
            raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
        self._check_new(name, password, printed_name or name)
        encoded = hash_password(password)
        with self.sdb.transaction():
            if self.get(name) is not None:
                raise UserError(f"user id {name!r} is already taken (ids are never reused); choose another")
            self._append_user(name, role, printed_name or name, user.name, reason or "new account", 1, 1)
            self._set_credential(name, encoded, "user_added", user.name, {"role": role, "forced": bool(temporary)})

    def change_password(self, name: str, new_password: str, user: Session, reason: str = "") -> None:
        """A user changes their own password; an admin may reset anyone's (with a reason), which also
        unlocks the account and forces its user to choose a new password at the next sign-in."""
        own = isinstance(user, Session) and user.name == name
        authorize(self.sdb, user, None if own else "manage_users", "change_password")
        _check_password_policy(new_password)
        if not own and not reason.strip():
            raise UserError("a password reset needs a reason (kept in the audit trail)")
        if self.get(name) is None:
            raise UserError(f"there is no user {name!r}")
        encoded = hash_password(new_password)
        with self.sdb.transaction():
            self._set_credential(
                name, encoded, "password_changed", user.name, {"reason": reason.strip(), "forced": not own}
            )

    def change_own_password(self, name: str, current: str, new_password: str) -> None:
        """Set one's own password by proving the current one (the way out of a forced change)."""
        _check_password_policy(new_password)
        if current == new_password:
            raise UserError("the new password must differ from the current one")
        self._checked(name, current)
        encoded = hash_password(new_password)
        with self.sdb.transaction():
            self._set_credential(name, encoded, "password_changed", name, {"reason": "own choice", "forced": False})

    def change_role(self, name: str, role: str, user: Session, reason: str) -> None:
        """Give an account another role (admin only, reason required); a new chained users version."""
        authorize(self.sdb, user, "manage_users", "change_role")
        if role not in ROLES:
            raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
        self._new_version(name, user.name, reason, "role_changed", role=role)

    def set_active(self, name: str, active: bool, user: Session, reason: str) -> None:
        """Deactivate (or reactivate) an account (admin only, reason required); its sessions stop working."""
        authorize(self.sdb, user, "manage_users", "deactivate_user" if not active else "reactivate_user")
        self._new_version(
            name, user.name, reason, "user_deactivated" if not active else "user_reactivated", active=int(active)
        )

    def unlock(self, name: str, user: Session, reason: str) -> None:
        """Clear a lockout (admin only, reason required)."""
        authorize(self.sdb, user, "manage_users", "unlock_user")
        if not reason.strip():
            raise UserError("unlocking an account needs a reason (kept in the audit trail)")
        if self.get(name) is None:
            raise UserError(f"there is no user {name!r}")
        with self.sdb.transaction():
            self.sdb.append("events", event_row("user_unlocked", user.name, name, {"reason": reason.strip()}))

    def unlock_local(self, name: str, reason: str, new_password: str | None = None) -> None:
        """Break-glass: clear a lockout (and optionally set a password that must be changed at the next
        sign-in) without signing in. Only whoever can write the database file and read its key file can
        call this, i.e. OS-level access to the station's files; the event names the OS account."""
        if not reason.strip():
            raise UserError("a local unlock needs a reason (kept in the audit trail)")
        if self.get(name) is None:
            raise UserError(f"there is no user {name!r}")
        encoded = None
        if new_password is not None:
            _check_password_policy(new_password)
            encoded = hash_password(new_password)
        detail = {"reason": reason.strip(), "local": True, "os_user": _os_user()}
        with self.sdb.transaction():
            self.sdb.append("events", event_row("user_unlocked", None, name, detail))
            if encoded is not None:
                self._set_credential(name, encoded, "password_reset_local", None, {**detail, "forced": True})

    def authenticate(self, name: str, password: str) -> Session:
        """Check the password and issue a Session; every outcome is an event."""
        row, encoded = self._checked(name, password)
        _, must_change = password_origin(self.sdb.conn, name)
        upgraded = hash_password(password) if needs_rehash(encoded) else None
        with self.sdb.transaction():
            if upgraded:  # a scrypt hash, or older argon2 parameters than this release's: re-hash now
                self._set_credential(name, upgraded, "password_rehashed", None, {"scheme": upgraded.split("$")[1]})
            if must_change:
                self.sdb.append("events", event_row("password_change_required", None, name))
            else:
                self.sdb.append("events", event_row("login_ok", name, name))
        if must_change:
            raise PasswordChangeRequired(
                f"the password of {name!r} was set by an admin (a new account or a reset): choose your own now"
                f" (inspector user passwd {name} --user {name})"
            )
        return Session(name, row["role"], row["printed_name"], utc_stamp(), issue_session_token(name))

    def logout(self, user: Session) -> None:
        """End a session (sign-out, idle lock): its token no longer grants anything."""
        if revoke_session_token(user.token):
            with self.sdb.transaction():
                self.sdb.append("events", event_row("logout", user.name, user.name))

    def _checked(self, name: str, password: str) -> tuple[dict[str, Any], str]:
        """The user row and stored hash once `password` is right; counts the attempt before checking it."""
        cut = self.sdb.anchor_problem()
        if cut:  # e.g. a role change or deactivation deleted with its chain entry at the chain's end
            raise AccountTampered(
                f"the decision log was changed outside the application ({cut}); sign-in refused for"
                " every account: run `inspector log verify` and restore the station from its backup"
            )
        row = self.get(name)
        problem = user_row_problem(self.sdb.conn, self.sdb.key, row) if row is not None else ""
        if problem:  # a role raised or an account re-activated with sqlite3: refused before any password check
            self._log("login_failed", name, {"reason": "account record changed outside the application"})
            raise AccountTampered(
                f"account {name!r}: {problem} (changed outside the application); sign-in refused:"
                " run `inspector log verify` and tell the admin"
            )
        if row is None or not row["active"]:
            check_password(password, _dummy_hash())  # same work as a real check: no user-enumeration by timing
            # Only known names are stored: a password typed into the name field must not reach the log.
            subject = name if row is not None else self._unknown(name)
            self._log("login_failed", subject, {"reason": "unknown or inactive user"})
            raise AuthenticationFailed("user name or password is wrong")
        encoded = self._reserve(name)
        if not check_password(password, encoded):
            with self.sdb.transaction():
                self.sdb.append("events", event_row("login_failed", None, name, {"reason": "wrong password"}))
                lock = lock_state(self.sdb.conn, name, self.max_failures, self.lockout_s, datetime.now(UTC))
                locked = lock.locked_until is not None
                if locked:
                    self.sdb.append("events", event_row("account_locked", None, name, {"failures": lock.attempts}))
            if locked:
                raise AccountLocked(
                    f"account {name!r} is now locked after {self.max_failures} failed logins; {self._lock_advice()}"
                )
            raise AuthenticationFailed("user name or password is wrong")
        return row, encoded

    def _reserve(self, name: str) -> str:
        """In one write transaction: refuse a locked account, else record the attempt (atomic check-and-count)."""
        problem, locked = "", False
        with self.sdb.transaction():
            encoded, sealed = credential_sealed(self.sdb.conn, name, self.sdb.key)
            lock = lock_state(self.sdb.conn, name, self.max_failures, self.lockout_s, datetime.now(UTC))
            if encoded is None or not sealed:
                problem = "no password" if encoded is None else "a password hash that no chained event set"
                self.sdb.append("events", event_row("login_failed", None, name, {"reason": "credential not sealed"}))
            elif lock.locked_until is not None and not lock.expired:
                locked = True
                self.sdb.append("events", event_row("login_failed", None, name, {"reason": "locked"}))
            else:
                if lock.expired:
                    self.sdb.append("events", event_row("lockout_expired", None, name, {"attempts": lock.attempts}))
                self.sdb.append("events", event_row("login_attempt", None, name))
        if problem:
            raise AccountTampered(
                f"account {name!r} has {problem} (the credentials were changed outside the"
                " application); sign-in refused: run `inspector log verify` and tell the admin"
            )
        if locked:
            raise AccountLocked(
                f"account {name!r} is locked after {self.max_failures} failed logins; {self._lock_advice()}"
            )
        return str(encoded)

    def _lock_advice(self) -> str:
        if self.lockout_s > 0:
            return f"try again in {self.lockout_s / 60:g} minutes, or ask an admin to unlock it"
        return "ask an admin to unlock it"

    def _unknown(self, name: str) -> str:
        """A marker for a name that is no account: keyed, so repeats match without revealing the text."""
        digest = hmac.new(self.sdb.key, b"unknown-user\x00" + name.encode("utf-8", "replace"), hashlib.sha256)
        return f"<unknown user {digest.hexdigest()[:12]}>"

    def _set_credential(self, name: str, encoded: str, kind: str, by: str | None, detail: dict[str, Any]) -> None:
        """Store a hash and chain an event carrying its fingerprint (inside transaction())."""
        self.sdb.add_credential(name, encoded)
        self.sdb.append("events", event_row(kind, by, name, {**detail, "credential": fingerprint(name, encoded)}))

    def _new_version(self, name: str, by: str, reason: str, kind: str, **change: Any) -> None:
        if not reason.strip():
            raise UserError("this change needs a reason (kept in the audit trail)")
        with self.sdb.transaction():
            row = self.get(name)
            if row is None:
                raise UserError(f"there is no user {name!r}")
            new = {**row, **change}
            if row["role"] == "admin" and row["active"] and (new["role"] != "admin" or not new["active"]):
                admins = [a for a in self._latest() if a["role"] == "admin" and a["active"] and a["name"] != name]
                if not admins:
                    raise UserError(f"{name!r} is the only active admin: add another admin first")
            self._append_user(
                name, new["role"], new["printed_name"], by, reason.strip(), row["version"] + 1, new["active"]
            )
            before = {k: row[k] for k in change}
            self.sdb.append(
                "events", event_row(kind, by, name, {"reason": reason.strip(), "before": before, "after": change})
            )

    def _latest(self) -> list[dict[str, Any]]:
        return list(
            self.sdb.db.query(
                "SELECT * FROM users u WHERE version = (SELECT MAX(version) FROM users WHERE name = u.name)"
            )
        )

    def _log(self, kind: str, subject: str, detail: dict[str, Any]) -> None:
        with self.sdb.transaction():
            self.sdb.append("events", event_row(kind, None, subject, detail))

    def _check_new(self, name: str, password: str, printed: str) -> None:
        if not _NAME.match(name):
            raise UserError(
                f"user id {name!r} is invalid: 2-32 characters, lowercase letters, digits, '.', '_' or '-',"
                " starting with a letter"
            )
        if not printed.strip() or len(printed) > 100:
            raise UserError("the printed name must be 1-100 characters")
        _check_password_policy(password)

    def _append_user(
        self, name: str, role: str, printed: str, by: str | None, reason: str, version: int, active: int
    ) -> None:
        self.sdb.append(
            "users",
            {
                "name": name,
                "version": version,
                "role": role,
                "printed_name": printed.strip(),
                "active": active,
                "changed_by": by,
                "reason": reason,
            },
        )


def _check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD or len(password) > 1024:
        raise UserError(f"a password needs {MIN_PASSWORD} to 1024 characters")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(8))
