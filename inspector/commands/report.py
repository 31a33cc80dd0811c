"""`inspector report --from --to [--model A --versus B] [--costs FILE] --out report.html`."""

from __future__ import annotations

import argparse

from inspector.commands.user import add_db_argument, open_log


def _cmd_report(args: argparse.Namespace) -> int:
    from inspector.report.build import build_report

    with open_log(args) as log:
        path = build_report(
            log, args.from_ts, args.to_ts, args.out, model=args.model, versus=args.versus, costs_path=args.costs
        )
    print(f"report written to {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `report`."""
    p = sub.add_parser("report", help="the PoC / KPI report of a period as one self-contained HTML file")
    p.add_argument("--from", dest="from_ts", required=True, help="UTC start, ISO 8601")
    p.add_argument("--to", dest="to_ts", required=True, help="UTC end, exclusive")
    p.add_argument("--model", help="a model id (prefix): its figures ...")
    p.add_argument("--versus", help="... beside this model's")
    p.add_argument("--costs", help="QA cost matrix JSON {true disposition: {proposed: cost per part}}")
    p.add_argument("--out", required=True, help="the HTML file to write")
    add_db_argument(p)
    p.set_defaults(func=_cmd_report)
