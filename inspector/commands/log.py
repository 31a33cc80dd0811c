"""`inspector log export|verify|archive|verify-export|correct`: the auditor's commands,
the admin's `archive` and QA's `correct`.

`log verify` exits 0 when the chain and its anchor are intact and 1 naming the first bad row (3: a
witness was asked but could not be, and the output says what was not checked);
`log verify-export` likewise for a bundle. Errors (no database, wrong password) exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.commands.user import (
    add_db_argument,
    add_user_argument,
    open_log,
    sign_in,
)
from inspector.errors import InspectorError


def _cmd_export(args: argparse.Namespace) -> int:
    from inspector.store.database import parse_time

    if parse_time(args.from_ts) >= parse_time(args.to_ts):
        raise InspectorError(
            f"--from {args.from_ts} is not before --to {args.to_ts}: the range is empty; nothing exported"
        )
    with open_log(args) as log:
        user = sign_in(log, args.user)
        selection = None
        if args.operator or args.label or args.verdict:  # only what the audit filter would list
            from inspector.store.audit import AuditFilter
            from inspector.store.export_filter import plan_export

            plan = plan_export(log, AuditFilter(args.from_ts, args.to_ts, args.operator, args.label, args.verdict))
            print(plan.describe())
            selection = plan.selection()
        summary = log.export(args.from_ts, args.to_ts, args.out, user, selection)
    if not summary.rows:
        print(f"no records between {args.from_ts} and {args.to_ts}: the bundle {summary.out_dir} holds no rows")
        return 0
    print(
        f"exported {summary.rows} chained rows (seq {summary.first_seq}..{summary.last_seq}) and"
        f" {summary.images} images to {summary.out_dir}; manifest SHA-256 {summary.manifest_sha256}"
    )
    for warning in summary.warnings:
        print(f"warning: {warning}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    if bool(args.witness) != bool(args.witness_key):
        raise InspectorError("--witness and --witness-key go together (the key: `inspector witness key`)")
    from inspector.store.account_state import credential_problems
    from inspector.store.row_seal import user_row_problems

    with open_log(args) as log:
        user = sign_in(log, args.user) if args.user else None
        report = log.verify(user, args.witness, args.witness_key)
        credentials = credential_problems(log.sdb.conn)  # password hashes are checked against their chained seals
        credentials += user_row_problems(log.sdb.conn, log.sdb.key)  # each account's row, as sign-in checks it
        images = log.verify_images(args.archive) if args.images else None
    print(report)
    for problem in credentials:
        print(f"credentials NOT intact: {problem}")
    if images is not None:  # archived images are not a failure; missing or replaced ones are
        print(f"images: {images}")
    if not report.ok or credentials or (images is not None and not images.ok):
        return 1
    return 3 if report.unchecked else 0


def _cmd_correct(args: argparse.Namespace) -> int:
    from inspector.store.corrections import correct_label, corrections

    if not args.reason.strip():
        raise InspectorError("--reason is empty: a correction needs a reason; say why the original answer was wrong")
    with open_log(args) as log:
        user = sign_in(log, args.user)
        decision_id = correct_label(log, args.inspection, args.label, args.reason, user)
        done = [c for c in corrections(log.decisions(inspection_id=args.inspection)) if c.decision_id == decision_id]
    print(f"inspection {args.inspection}: decision {decision_id} corrects decision {done[0].corrects_id}: {done[0]}")
    return 0


def _cmd_archive(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from inspector.config import load_config
    from inspector.store.retention import archive_images

    before = args.before
    if before is None:
        days = load_config(args.config).database.image_retention_days
        if not days:
            raise InspectorError("give --before DATE, or set [database] image_retention_days in the --config file")
        before = (datetime.now(UTC) - timedelta(days=days)).isoformat()
    with open_log(args) as log:
        summary = archive_images(log, before, args.to, sign_in(log, args.user), args.reason)
    print(f"archived {summary.archived} images recorded before {before} to {summary.folder}")
    if summary.missing:
        print(f"{len(summary.missing)} earlier images were not in the store (archived before, or missing):")
        print("  `inspector log verify --images --archive DIR` tells which")
    return 0


def _cmd_identity(args: argparse.Namespace) -> int:
    from inspector.witness.note import signer_verifier, station_origin

    with open_log(args) as log:
        key = log.identity()
    print(signer_verifier(key, station_origin(key)))
    return 0


def _cmd_verify_export(args: argparse.Namespace) -> int:
    from inspector.store.export import verify_export

    key = None
    if args.key:
        try:
            key = bytes.fromhex(Path(args.key).read_text(encoding="ascii").strip())
        except (OSError, ValueError) as exc:
            raise InspectorError(f"cannot read the station key {args.key}: {exc}") from None
    report = verify_export(args.bundle, key, args.station_key)
    print(report)
    return 0 if report.authenticated else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add `log` and its subcommands to the top-level subparsers."""
    p = sub.add_parser("log", help="the decision log: export, verify, and QA's corrections")
    log = p.add_subparsers(dest="log_command", required=True)
    c = log.add_parser("export", help="write an audit bundle (CSV, JSONL, images, chain, manifest)")
    c.add_argument("--from", dest="from_ts", required=True, help="UTC start, ISO 8601 (e.g. 2026-05-01)")
    c.add_argument("--to", dest="to_ts", required=True, help="UTC end, exclusive (e.g. 2026-06-01T00:00Z)")
    c.add_argument("--out", required=True, help="a new folder for the bundle (never an existing one)")
    c.add_argument("--operator", help="only inspections recorded by (and events of) this user, as the audit filter")
    c.add_argument("--label", help="only inspections whose #1 label was this label id")
    c.add_argument("--verdict", help="only inspections with this proposed disposition")
    add_user_argument(c)
    add_db_argument(c)
    c.set_defaults(func=_cmd_export)
    c = log.add_parser(
        "verify",
        help="recompute the hash chain and check the anchor; exit 1 if broken, 3 if the witness could not be asked",
    )
    add_user_argument(c, required=False)
    add_db_argument(c)
    c.add_argument("--witness", help="witness URL: also check for a cut tail or a whole-station rollback")
    c.add_argument("--witness-key", help="the witness's verifier key (`inspector witness key` prints it)")
    c.add_argument(
        "--images",
        action="store_true",
        help="also re-hash every evidence image: present, archived, missing (exit 1) or replaced (exit 1)",
    )
    c.add_argument("--archive", help="with --images: the archive folder, to check each archived image there too")
    c.set_defaults(func=_cmd_verify)
    c = log.add_parser(
        "correct",
        help="QA: correct the decision in force for an inspection to another label (a new record with a reason)",
    )
    c.add_argument("inspection", type=int, help="the inspection id (the audit view's 'Inspection' column)")
    c.add_argument("--label", required=True, help="the right label id (one the inspection was ranked against)")
    c.add_argument("--reason", required=True, help="why the recorded answer was wrong (required, on the record)")
    add_user_argument(c)
    add_db_argument(c)
    c.set_defaults(func=_cmd_correct)
    c = log.add_parser("archive", help="move evidence images recorded before a date to an archive folder (admin)")
    c.add_argument("--before", help="UTC date, ISO 8601 (default: now minus [database] image_retention_days)")
    c.add_argument("--to", required=True, help="archive folder (content-addressed: images/sha256/ab/cd/HASH.png)")
    c.add_argument("--reason", required=True)
    c.add_argument("--config", help="station TOML (its image_retention_days when --before is not given)")
    add_user_argument(c)
    add_db_argument(c)
    c.set_defaults(func=_cmd_archive)
    c = log.add_parser("identity", help="print the station's public key (verifies checkpoints and bundles)")
    add_db_argument(c)
    c.set_defaults(func=_cmd_identity)
    c = log.add_parser("verify-export", help="check an export bundle offline; exit 1 if not intact")
    c.add_argument("bundle")
    c.add_argument(
        "--station-key",
        help="the exporting station's public key (`inspector log identity` there):"
        " checks its signature; without it (or --key) the bundle is not authenticated and exits 1",
    )
    c.add_argument("--key", help="station secret key file, to check the manifest's HMAC too")
    c.set_defaults(func=_cmd_verify_export)
