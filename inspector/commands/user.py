"""`inspector user add|passwd|unlock|role|deactivate|reactivate|list`, and the shared sign-in helpers.

Passwords never come from the command line (it shows in `ps` and shell history): the signing-in
user's from $INSPECTOR_PASSWORD or a prompt, a new password from $INSPECTOR_NEW_PASSWORD or a
prompt asked twice.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING

from inspector.errors import InspectorError

if TYPE_CHECKING:  # the handlers import the database modules when they run, keeping --help fast
    from inspector.store.decision_log import DecisionLog
    from inspector.store.users import Session


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="station database (default: the configured one in the user's data folder)")


def add_user_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--user", required=required, help="sign in as this user; password from $INSPECTOR_PASSWORD or a prompt"
    )


def open_log(args: argparse.Namespace, create: bool = False) -> DecisionLog:
    """The DecisionLog at --db (default from the station config)."""
    from inspector.config import load_config
    from inspector.store.decision_log import DecisionLog

    database = load_config().database
    if not args.db:
        say_default_database(database.path)
    return DecisionLog.open(
        args.db or database.path,
        create=create,
        max_failures=database.max_failed_logins,
        lockout_s=database.lockout_minutes * 60,
    )


def say_default_database(path: str) -> None:
    """Without --db a command uses the station's own database: say so, once, on stderr."""
    print(f"inspector: using the station database {path} (pass --db to use another)", file=sys.stderr)


def sign_in(log: DecisionLog, name: str) -> Session:
    """Authenticate `name` with $INSPECTOR_PASSWORD or a prompt; a failure names the database asked."""
    from inspector.store.users import AccountLocked, AccountTampered, AuthenticationFailed, PasswordChangeRequired

    try:
        return log.login(name, _current_password(name))
    except (AccountLocked, AccountTampered, PasswordChangeRequired):
        raise
    except AuthenticationFailed as exc:
        raise AuthenticationFailed(f"{exc} (checked against database {log.sdb.path}; is it the right --db?)") from None


def _current_password(name: str) -> str:
    password = os.environ.get("INSPECTOR_PASSWORD")
    return password if password is not None else _ask(f"password for {name}: ", "INSPECTOR_PASSWORD")


def has_terminal() -> bool:
    """Whether getpass can ask someone: it uses the controlling terminal, even with stdin redirected."""
    if sys.stdin is not None and sys.stdin.isatty():
        return True
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def _ask(prompt: str, variable: str) -> str:
    """getpass, but without a terminal (a pipe, a service) a one-line error instead of EOFError."""
    error = InspectorError(f"no terminal to ask for the password: set ${variable}")
    if not has_terminal():
        raise error
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise error from None


def _new_password(name: str) -> str:
    password = os.environ.get("INSPECTOR_NEW_PASSWORD")
    if password is not None:
        return password
    first = _ask(f"new password for {name}: ", "INSPECTOR_NEW_PASSWORD")
    if _ask("repeat it: ", "INSPECTOR_NEW_PASSWORD") != first:
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
        log.users.add_user(
            args.name, args.role, _new_password(args.name), admin, args.printed_name or "", args.reason, args.temporary
        )
        first = "they choose their own password at the first sign-in" if args.temporary else "no forced change"
        print(f"added user {args.name!r} with role {args.role}; {first}")
    return 0


def _cmd_passwd(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        if args.local:
            log.users.unlock_local(args.name, _local_reason(args), _new_password(args.name))
            print(f"password of {args.name!r} set locally; it must be changed at the next sign-in")
        elif args.user == args.name:  # one's own: proving the current password, even when a change is forced
            log.users.change_own_password(args.name, _current_password(args.name), _new_password(args.name))
            print(f"password of {args.name!r} changed")
        else:
            if not args.user:
                raise InspectorError("pass --user ADMIN (or your own id to change your own password)")
            actor = sign_in(log, args.user)
            log.users.change_password(args.name, _new_password(args.name), actor, args.reason)
            print(f"password of {args.name!r} reset; {args.name} must choose a new one at the next sign-in")
    return 0


def _cmd_unlock(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        if args.local:
            log.users.unlock_local(args.name, _local_reason(args))
        else:
            if not args.user:
                raise InspectorError("pass --user ADMIN, or --local on the station itself (see the README)")
            log.users.unlock(args.name, sign_in(log, args.user), args.reason)
        print(f"account {args.name!r} unlocked")
    return 0


def _local_reason(args: argparse.Namespace) -> str:
    if not args.reason.strip():
        raise InspectorError("--local needs --reason (kept in the audit trail)")
    return args.reason.strip()


def _cmd_role(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        log.users.change_role(args.name, args.role, sign_in(log, args.user), args.reason)
        print(f"{args.name!r} now has role {args.role}")
    return 0


def _cmd_active(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        log.users.set_active(args.name, args.active, sign_in(log, args.user), args.reason)
        print(f"account {args.name!r} {'reactivated' if args.active else 'deactivated'}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        for row in log.users.accounts():
            state = row["state"] + (f" until {row['locked_until']}" if row["state"] == "locked" else "")
            note = (
                " (must change password)"
                if row["must_change_password"]
                else (" (admin-set password)" if row["admin_set_password"] else "")
            )
            print(f"{row['name']:<20} {row['role']:<9} {state:<8} {row['printed_name']}{note}")
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
    c.add_argument(
        "--no-forced-change",
        dest="temporary",
        action="store_false",
        help="do not make its user choose their own password at the first sign-in (their decisions stay"
        " flagged as made under an admin-set password until they do)",
    )
    add_user_argument(c, required=False)
    c.set_defaults(func=_cmd_add)
    c = users.add_parser(
        "passwd",
        help="change your own password (--user yourself), reset anyone's (--user ADMIN), or set one locally (--local)",
    )
    c.add_argument("name")
    c.add_argument("--reason", default="", help="why (required for a reset and with --local)")
    c.add_argument(
        "--local",
        action="store_true",
        help="break-glass on the station itself: no sign-in, needs write access to the database files",
    )
    add_user_argument(c, required=False)
    c.set_defaults(func=_cmd_passwd)
    c = users.add_parser("unlock", help="clear a lockout after failed logins (admin, or --local)")
    c.add_argument("name")
    c.add_argument("--reason", required=True)
    c.add_argument(
        "--local",
        action="store_true",
        help="break-glass on the station itself: no sign-in, needs write access to the database files",
    )
    add_user_argument(c, required=False)
    c.set_defaults(func=_cmd_unlock)
    c = users.add_parser("role", help="give an account another role (admin)")
    c.add_argument("name")
    c.add_argument("role", help="operator, qa, auditor or admin")
    c.add_argument("--reason", required=True)
    add_user_argument(c)
    c.set_defaults(func=_cmd_role)
    for verb, active in (("deactivate", False), ("reactivate", True)):
        c = users.add_parser(verb, help=f"{verb} an account (admin); accounts are never deleted")
        c.add_argument("name")
        c.add_argument("--reason", required=True)
        add_user_argument(c)
        c.set_defaults(func=_cmd_active, active=active)
    c = users.add_parser("list", help="list accounts")
    c.set_defaults(func=_cmd_list)
    for parser in users.choices.values():
        add_db_argument(parser)
