"""`inspector user add|passwd|unlock|list`, and the sign-in helpers the other DB commands share.

Passwords never come from the command line (it shows in `ps` and shell history): the signing-in
user's from $INSPECTOR_PASSWORD or a prompt, a new password from $INSPECTOR_NEW_PASSWORD or a
prompt asked twice.
"""

from __future__ import annotations

import argparse
import getpass
import os
from typing import TYPE_CHECKING

from inspector.errors import InspectorError

if TYPE_CHECKING:  # the handlers import the database modules when they run, keeping --help fast
    from inspector.store.decision_log import DecisionLog
    from inspector.store.users import Session


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="station database (default: the configured one in the user's data folder)")


def add_user_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--user", required=required,
                        help="sign in as this user; password from $INSPECTOR_PASSWORD or a prompt")


def open_log(args: argparse.Namespace, create: bool = False) -> "DecisionLog":
    """The DecisionLog at --db (default from the station config)."""
    from inspector.config import load_config
    from inspector.store.decision_log import DecisionLog

    return DecisionLog.open(args.db or load_config().database.path, create=create)


def sign_in(log: "DecisionLog", name: str) -> "Session":
    """Authenticate `name` with $INSPECTOR_PASSWORD or a prompt."""
    password = os.environ.get("INSPECTOR_PASSWORD")
    if password is None:
        password = getpass.getpass(f"password for {name}: ")
    return log.login(name, password)


def _new_password(name: str) -> str:
    password = os.environ.get("INSPECTOR_NEW_PASSWORD")
    if password is not None:
        return password
    first = getpass.getpass(f"new password for {name}: ")
    if getpass.getpass("repeat it: ") != first:
        raise InspectorError("the two passwords differ; nothing was changed")
    return first


def _cmd_add(args: argparse.Namespace) -> int:
    with open_log(args, create=True) as log:
        if not log.users.has_users():  # first run: the first account is the admin, made without signing in
            if args.role != "admin":
                raise InspectorError("the station has no users yet: the first one must be an admin (--role admin)")
            log.users.create_first_admin(args.name, _new_password(args.name), args.printed_name or "")
            print(f"created the first admin {args.name!r}")
            return 0
        if not args.user:
            raise InspectorError("adding a user needs an admin: pass --user ADMIN")
        admin = sign_in(log, args.user)
        log.users.add_user(args.name, args.role, _new_password(args.name), admin, args.printed_name or "", args.reason)
        print(f"added user {args.name!r} with role {args.role}")
    return 0


def _cmd_passwd(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        actor = sign_in(log, args.user)
        log.users.change_password(args.name, _new_password(args.name), actor, args.reason)
        print(f"password of {args.name!r} changed")
    return 0


def _cmd_unlock(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        log.users.unlock(args.name, sign_in(log, args.user), args.reason)
        print(f"account {args.name!r} unlocked")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        for row in log.users.accounts():
            state = "active" if row["active"] else "inactive"
            print(f"{row['name']:<20} {row['role']:<9} {state:<8} {row['printed_name']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `user` and its subcommands to the top-level subparsers."""
    p = sub.add_parser("user", help="station accounts and passwords")
    users = p.add_subparsers(dest="user_command", required=True)
    c = users.add_parser("add", help="add an account (the first one, an admin, needs no --user)")
    c.add_argument("name")
    c.add_argument("--role", required=True, help="operator, qa, auditor or admin")
    c.add_argument("--printed-name", help="the name shown on signed records (default: the user id)")
    c.add_argument("--reason", default="", help="why the account is added")
    add_user_argument(c, required=False)
    c.set_defaults(func=_cmd_add)
    c = users.add_parser("passwd", help="change a password (your own, or anyone's as admin)")
    c.add_argument("name")
    c.add_argument("--reason", default="")
    add_user_argument(c)
    c.set_defaults(func=_cmd_passwd)
    c = users.add_parser("unlock", help="clear a lockout after failed logins (admin)")
    c.add_argument("name")
    c.add_argument("--reason", required=True)
    add_user_argument(c)
    c.set_defaults(func=_cmd_unlock)
    c = users.add_parser("list", help="list accounts")
    c.set_defaults(func=_cmd_list)
    for parser in users.choices.values():
        add_db_argument(parser)
