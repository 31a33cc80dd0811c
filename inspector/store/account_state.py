"""What the chained events say about an account now: lockout, who set its password, its credential seal.

Read-only helpers for inspector.store.users; every state is derived from chained rows, so it is as
trustworthy as the chain, and nothing here is a mutable flag that could be edited on its own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from inspector.store.chain import fetch_row
from inspector.store.passwords import fingerprint
from inspector.store.row_seal import entry_problem

# Events that end a run of sign-in attempts (a correct password, an unlock, a new password, an expired lock).
RESETS = (
    "login_ok",
    "user_unlocked",
    "password_changed",
    "lockout_expired",
    "password_change_required",
    "password_reset_local",
)
# Events that set a credential row; each carries that row's fingerprint in detail["credential"].
CREDENTIAL_EVENTS = (
    "first_admin_created",
    "user_added",
    "password_changed",
    "password_rehashed",
    "credential_sealed",
    "password_reset_local",
)
# The subset that says who chose the password (a rehash or a seal keeps whoever chose it).
ORIGIN_EVENTS = ("first_admin_created", "user_added", "password_changed", "password_reset_local")


@dataclass(frozen=True)
class LockState:
    """Sign-in attempts since the last reset; when the account locked and until when (None: not locked)."""

    attempts: int
    locked_at: datetime | None
    locked_until: datetime | None
    expired: bool  # a lock that has run out: the next attempt records lockout_expired first


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def lock_state(conn: sqlite3.Connection, name: str, max_failures: int, lockout_s: float, now: datetime) -> LockState:
    """Count `login_attempt` events back to the last reset; `max_failures` of them lock for `lockout_s`.

    Attempts are counted when they start (before the password check), so parallel attempts cannot
    get more than `max_failures` checks. lockout_s <= 0 keeps the lock until an admin unlocks it.
    """
    kinds = ("login_attempt",) + RESETS
    marks = ", ".join("?" * len(kinds))
    rows = conn.execute(
        f"SELECT kind, recorded_at FROM events WHERE subject = ? AND kind IN ({marks}) ORDER BY id DESC LIMIT ?",
        [name, *kinds, max_failures + 1],
    ).fetchall()
    attempts: list[str] = []
    for kind, recorded_at in rows:
        if kind != "login_attempt":
            break
        attempts.append(recorded_at)
    if len(attempts) < max_failures:
        return LockState(len(attempts), None, None, False)
    locked_at = _stamp(max(attempts))  # the attempt that reached the limit (stamps sort as text)
    until = locked_at + timedelta(seconds=lockout_s) if lockout_s > 0 else datetime.max.replace(tzinfo=now.tzinfo)
    return LockState(len(attempts), locked_at, until, now >= until)


def password_origin(conn: sqlite3.Connection, name: str) -> tuple[bool, bool]:
    """(admin_set, must_change): whether someone else chose the current password, and whether a change is forced."""
    marks = ", ".join("?" * len(ORIGIN_EVENTS))
    row = conn.execute(
        f"SELECT kind, user, detail FROM events WHERE subject = ? AND kind IN ({marks}) ORDER BY id DESC LIMIT 1",
        [name, *ORIGIN_EVENTS],
    ).fetchone()
    if row is None:
        return False, False
    kind, by, detail = row
    admin_set = kind in ("user_added", "password_reset_local") or (kind == "password_changed" and by != name)
    return admin_set, bool(_detail(detail).get("forced"))


def credential_sealed(conn: sqlite3.Connection, name: str, key: bytes | None = None) -> tuple[str | None, bool]:
    """(encoded, ok): the newest credential row of `name` and whether the newest seal names it.

    With the station `key` (sign-in) the seal event must also match its MAC'd chain entry: an events
    row inserted or edited with sqlite3 seals nothing. `log verify` checks the whole chain instead.
    """
    found = conn.execute(
        "SELECT encoded FROM credentials WHERE user_name = ? ORDER BY id DESC LIMIT 1", [name]
    ).fetchone()
    if found is None:
        return None, False
    marks = ", ".join("?" * len(CREDENTIAL_EVENTS))
    for event_id, detail in conn.execute(
        f"SELECT id, detail FROM events WHERE subject = ? AND kind IN ({marks}) ORDER BY id DESC",
        [name, *CREDENTIAL_EVENTS],
    ):
        seal = _detail(detail).get("credential")
        if seal is not None:
            ok = seal == fingerprint(name, found[0])
            if ok and key is not None:
                event = fetch_row(conn, "events", event_id)
                ok = event is not None and not entry_problem(conn, key, "events", event)
            return found[0], ok
    return found[0], False


def credential_problems(conn: sqlite3.Connection) -> list[str]:
    """One line per account whose stored password hash is not the one its chained events set."""
    names = [r[0] for r in conn.execute("SELECT DISTINCT user_name FROM credentials ORDER BY user_name")]
    names += [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT name FROM users WHERE name NOT IN (SELECT user_name FROM credentials) ORDER BY name"
        )
    ]
    problems = []
    for name in names:
        encoded, ok = credential_sealed(conn, name)
        if not ok:
            what = "has no password hash" if encoded is None else "has a password hash that no chained event set"
            problems.append(f"account {name!r} {what} (the credentials table was changed outside the application)")
    return problems


# For a decision row `d` with its chain entry `cd`: 1 when the operator's password at that moment was
# chosen by someone else (an admin), from the chained events before it. Used by DecisionLog.decisions().
ADMIN_SET_SQL = (
    "(SELECT CASE WHEN e.kind IN ('user_added', 'password_reset_local') THEN 1"
    " WHEN e.kind = 'password_changed' AND IFNULL(e.user, '') <> e.subject THEN 1 ELSE 0 END"
    " FROM events e JOIN chain ce ON ce.tbl = 'events' AND ce.row_id = e.id"
    " WHERE e.subject = d.operator AND e.kind IN ('first_admin_created', 'user_added', 'password_changed',"
    " 'password_reset_local') AND ce.seq < cd.seq ORDER BY ce.seq DESC LIMIT 1)"
)


def admin_set_flags(conn: sqlite3.Connection, decision_ids: Iterable[int]) -> dict[int, int]:
    """{decision id: 1 or 0}: ADMIN_SET_SQL for these decisions (the export's decision_flags.csv)."""
    wanted = sorted({int(i) for i in decision_ids})
    out: dict[int, int] = {}
    for start in range(0, len(wanted), 500):  # sqlite's bound-parameter limit
        chunk = wanted[start : start + 500]
        sql = (
            "SELECT d.id, IFNULL(" + ADMIN_SET_SQL + ", 0) FROM decisions d"
            " LEFT JOIN chain cd ON cd.tbl = 'decisions' AND cd.row_id = d.id WHERE d.id IN ("
            + ",".join("?" * len(chunk))
            + ")"
        )
        out.update({int(r[0]): int(r[1]) for r in conn.execute(sql, chunk)})
    return out


def _detail(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
