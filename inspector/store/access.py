"""Roles, permissions and signed-in sessions: the permission check every core action makes.

Permissions are checked here, in the service layer, not only by hiding buttons in the UI. A
Session is issued only by UserStore.authenticate() (inspector.store.users), which registers its
token here; require() refuses any other object, so a hand-made Session grants nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from inspector.errors import InspectorError
from inspector.store.database import StationDB, event_row

ROLES: tuple[str, ...] = ("operator", "qa", "auditor", "admin")
PERMISSIONS: tuple[str, ...] = (
    "decide",
    "correct",
    "edit_library",
    "promote_model",
    "export",
    "view",
    "verify",
    "manage_users",
    "config",
)
# station-requirements 3.1 as the issue states it; the admin can neither decide nor edit records.
MATRIX: dict[str, frozenset[str]] = {
    "operator": frozenset({"decide"}),
    "qa": frozenset({"decide", "correct", "edit_library", "promote_model", "export", "view"}),
    "auditor": frozenset({"view", "export", "verify"}),
    "admin": frozenset({"manage_users", "config"}),
}


class AccessDenied(InspectorError):
    """The signed-in user's role does not allow this action."""


class AuthenticationFailed(InspectorError):
    """Wrong user name or password."""


class AccountLocked(AuthenticationFailed):
    """Too many consecutive failed logins; the lock runs out, or an admin unlocks it."""


class AccountTampered(AuthenticationFailed):
    """The account's users row or password hash is not what the application wrote: sign-in is refused."""


class PasswordChangeRequired(AuthenticationFailed):
    """The password is right but was set by an admin: the user must choose their own before signing in."""


class UserError(InspectorError):
    """A user name, role, printed name or password is not acceptable."""


@dataclass(frozen=True)
class Session:
    """A signed-in user; only UserStore.authenticate() makes valid ones."""

    name: str
    role: str
    printed_name: str
    authenticated_at: str
    token: str = field(default="", repr=False, compare=False)


_ISSUED: dict[str, str] = {}  # token -> user name, for sessions this process issued


def issue_session_token(name: str) -> str:
    """A new session token for `name` (UserStore.authenticate only); require() accepts only these."""
    token = secrets.token_hex(16)
    _ISSUED[token] = name
    return token


def revoke_session_token(token: str) -> bool:
    """Forget a token (sign-out, idle lock); whether it was one this process issued."""
    return _ISSUED.pop(token, None) is not None


def require(user: Session | None, permission: str | None) -> None:
    """Raise AccessDenied unless `user` is a signed-in session whose role has `permission`.

    permission None asks only for a signed-in user (e.g. changing one's own password).
    """
    if permission is not None and permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}")
    what = "this" if permission is None else f"'{permission}'"
    if not isinstance(user, Session) or not user.token or _ISSUED.get(user.token) != user.name:
        raise AccessDenied(f"{what} needs a signed-in user; sign in first")
    if permission is not None and permission not in MATRIX.get(user.role, frozenset()):
        allowed = [r for r in ROLES if permission in MATRIX[r]]
        raise AccessDenied(
            f"user {user.name!r} (role {user.role}) may not {permission.replace('_', ' ')};"
            f" roles that may: {', '.join(allowed)}"
        )


def latest_user(sdb: StationDB, name: str) -> dict[str, Any] | None:
    """The latest version of user `name`, or None."""
    rows = list(sdb.db.query("SELECT * FROM users WHERE name = ? ORDER BY version DESC LIMIT 1", [name]))
    return rows[0] if rows else None


def authorize(sdb: StationDB, user: Session | None, permission: str | None, action: str) -> None:
    """require(), but a refusal is logged as a 'denied' event first; the role in force is re-read."""
    try:
        require(user, permission)
        current = latest_user(sdb, user.name if isinstance(user, Session) else "")
        if current is None or not current["active"] or current["role"] != user.role:
            raise AccessDenied(f"user {user.name!r} was deactivated or changed role since signing in; sign in again")
    except AccessDenied as exc:
        name = user.name if isinstance(user, Session) else None
        with sdb.transaction():
            sdb.append("events", event_row("denied", name, action, {"permission": permission, "message": str(exc)}))
        raise
