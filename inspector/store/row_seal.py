"""Is one record row still as the application wrote it? The fast check sign-in makes on an account.

`log verify` recomputes the whole chain; sign-in cannot afford that on every attempt, yet must not
trust a `users` row (role, active) or a credential seal that someone with write access to the
database file changed with sqlite3. A row is sound when its chain entry exists, the entry's hash
recomputes from the row as stored, and the entry carries a valid MAC with the station key, which
that someone does not hold. Rows chained before MACs existed (0004_chain_mac) were sealed at the
upgrade by a MAC'd `user_row_sealed` event naming their entry hash (seal_user_rows).
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from collections.abc import Callable
from typing import Any

from inspector.store.chain import entry_hash, entry_mac, fetch_row

USER_ROW_SEAL = "user_row_sealed"  # the event kind of an upgrade seal (subject: the user name)


def entry_problem(conn: sqlite3.Connection, key: bytes, table: str, row: dict[str, Any]) -> str:
    """'' when `row` (all its columns, as stored) matches its MAC'd chain entry, else what is wrong."""
    entry = conn.execute(
        "SELECT seq, ts, prev_hash, hash, mac FROM chain WHERE tbl = ? AND row_id = ?", (table, row["id"])
    ).fetchone()
    if entry is None:
        return f"its {table} row {row['id']} is not in the chain (inserted around the application)"
    seq, ts, prev, digest, mac = entry
    if entry_hash(seq, table, row["id"], ts, row, prev) != digest:
        return f"its {table} row {row['id']} was changed after it was written"
    if mac is None:
        return f"its {table} row {row['id']} has no MAC"
    if not hmac.compare_digest(entry_mac(key, seq, digest), str(mac)):
        return f"its {table} row {row['id']} was chained without the station key"
    return ""


def user_row_problem(conn: sqlite3.Connection, key: bytes, row: dict[str, Any]) -> str:
    """'' when the account's latest `users` row is sound (see the module doc), else what is wrong."""
    gone = conn.execute(
        "SELECT COUNT(*) FROM chain WHERE tbl = 'users' AND row_id NOT IN (SELECT id FROM users)"
    ).fetchone()[0]
    if gone:  # a newer version (a role change, a deactivation) deleted: the one left would look current
        return f"{gone} chained users row(s) were deleted from the database"
    problem = entry_problem(conn, key, "users", row)
    if not problem.endswith("has no MAC"):
        return problem
    digest = conn.execute("SELECT hash FROM chain WHERE tbl = 'users' AND row_id = ?", (row["id"],)).fetchone()[0]
    for (event_id,) in conn.execute(
        "SELECT id FROM events WHERE subject = ? AND kind = ? ORDER BY id DESC", (row["name"], USER_ROW_SEAL)
    ):
        event = fetch_row(conn, "events", event_id)
        seal = json.loads(event["detail"]) if event else {}
        if seal.get("row_id") == row["id"] and seal.get("entry_hash") == digest:
            return entry_problem(conn, key, "events", event) if event else problem
    return problem + " and no sealed upgrade record names it"


def user_row_problems(conn: sqlite3.Connection, key: bytes) -> list[str]:
    """One line per account whose latest users row fails user_row_problem (`log verify`, `user list`)."""
    rows = [
        fetch_row(conn, "users", row_id)
        for (row_id,) in conn.execute(
            "SELECT id FROM users u WHERE version = (SELECT MAX(version) FROM users WHERE name = u.name) ORDER BY name"
        )
    ]
    return [
        f"account {row['name']!r}: {problem} (the users table was changed outside the application)"
        for row in rows
        if row is not None and (problem := user_row_problem(conn, key, row))
    ]


def seal_user_rows(conn: sqlite3.Connection, seal: Callable[[str, dict[str, Any]], object]) -> None:
    """At the upgrade: seal(name, detail) for each account whose latest users row has no MAC.

    `seal` chains a USER_ROW_SEAL event (open_database). As with the credential seals, the upgrade
    trusts what it finds; from here on that row is bound to a MAC'd record.
    """
    found = conn.execute(
        "SELECT u.name, u.id, c.hash FROM users u JOIN chain c ON c.tbl = 'users' AND c.row_id = u.id"
        " WHERE c.mac IS NULL AND u.version = (SELECT MAX(version) FROM users WHERE name = u.name) ORDER BY u.id"
    ).fetchall()
    for name, row_id, digest in found:
        seal(name, {"row_id": row_id, "entry_hash": digest, "reason": "sealed at the upgrade"})
