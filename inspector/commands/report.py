"""`inspector report --from --to [--model A --versus B] [--costs FILE] --out report.html` and
`inspector costs show|set` (the QA cost matrix stored in the database, versioned)."""

from __future__ import annotations

import argparse
import json

from inspector.commands.user import add_db_argument, add_user_argument, open_log, sign_in


def _cmd_report(args: argparse.Namespace) -> int:
    from inspector.report.build import build_report

    with open_log(args) as log:
        path = build_report(
            log, args.from_ts, args.to_ts, args.out, model=args.model, versus=args.versus, costs_path=args.costs
        )
    print(f"report written to {path}")
    return 0


def _cmd_costs_show(args: argparse.Namespace) -> int:
    from inspector.report.costs import costs_in_force

    with open_log(args) as log:
        version, costs, event = costs_in_force(log)
    who = {} if event is None else {"set_by": event["user"], "set_at": event["recorded_at"]}
    reason = "the defaults" if event is None else json.loads(event["detail"])["reason"]
    print(json.dumps({"version": version, **who, "reason": reason, "costs": costs}, indent=1))
    return 0


def _cmd_costs_set(args: argparse.Namespace) -> int:
    from inspector.report.costs import set_costs
    from inspector.report.kpi import load_costs

    matrix = load_costs(args.file)  # checked before anyone is asked for a password
    with open_log(args) as log:
        version = set_costs(log, matrix, args.reason, sign_in(log, args.user))
    print(f"cost matrix version {version} is in force")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `report` and `costs`."""
    p = sub.add_parser("report", help="the PoC / KPI report of a period as one self-contained HTML file")
    p.add_argument("--from", dest="from_ts", required=True, help="UTC start, ISO 8601")
    p.add_argument("--to", dest="to_ts", required=True, help="UTC end, exclusive")
    p.add_argument("--model", help="a model id (prefix): its figures ...")
    p.add_argument("--versus", help="... beside this model's")
    p.add_argument(
        "--costs", help="a cost matrix JSON file instead of the one in force in the database (`inspector costs show`)"
    )
    p.add_argument("--out", required=True, help="the HTML file to write")
    add_db_argument(p)
    p.set_defaults(func=_cmd_report)

    costs = sub.add_parser("costs", help="the QA cost matrix the report uses (stored in the database, versioned)")
    verbs = costs.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("show", help="the matrix in force, its version, who set it and why (JSON)")
    add_db_argument(p)
    p.set_defaults(func=_cmd_costs_show)
    p = verbs.add_parser("set", help="store a new version (QA): {true disposition: {proposed: cost per part}}")
    p.add_argument("file", help="JSON file; cells not given keep the defaults")
    p.add_argument("--reason", required=True, help="why these costs (recorded in the chained event)")
    add_db_argument(p)
    add_user_argument(p)
    p.set_defaults(func=_cmd_costs_set)
