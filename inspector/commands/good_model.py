"""`inspector library good-model build|show|retire`: the good-part model under QA control.

`build` encodes every operator-confirmed good part with the station's model in force and its
[scoring] front end (so give the station's --config), stores the model beside the database and
puts it in force: a running station picks it up on its next library poll.
"""

from __future__ import annotations

import argparse
import sys

from inspector.commands.library_db import _library_subparsers
from inspector.commands.user import add_db_argument, add_user_argument, open_log, sign_in
from inspector.frame.good_parts import CELLS, DEFAULT_CELLS, DEFAULT_INPUT_SIZE


def _cmd_build(args: argparse.Namespace) -> int:
    from inspector.config import load_config
    from inspector.learning.good_model import build_good_model, check_can_build
    from inspector.station_model import choose_model, load_choice

    config = load_config(args.config)
    with open_log(args) as log:
        qa = sign_in(log, args.user)
        check_can_build(log, qa, args.reason)  # before the model loads: a refusal is instant
        scorer = load_choice(choose_model(log, config.model.ref), config.model.device)

        def progress(done: int, total: int) -> None:
            if done == total or done % 50 == 0:
                print(f"encoded {done}/{total} confirmed good parts", file=sys.stderr)

        model = build_good_model(
            log,
            scorer,
            config.scoring,
            qa,
            args.reason,
            max_bank=args.max_bank,
            cells=args.cells,
            input_size=args.input_size,
            progress=progress,
        )
    info = model.info
    print(
        f"good-part model {model.sha256} in force: bank of {info['bank_rows']} cells from {info['bank_parts']}"
        f" confirmed good parts, threshold {model.threshold:.4f} set on {info['calibration_parts']} held-out ones"
    )
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from inspector.learning.good_model import active_good_model_id, good_model_history

    with open_log(args) as log:
        active, history = active_good_model_id(log), good_model_history(log)
    print(f"in force: {active}" if active else "no good-part model in force")
    for row in history:
        d = row["detail"]
        what = (
            f"built from {d['bank_parts']}+{d['calibration_parts']} good parts, threshold {d['threshold']:.4f}"
            if row["kind"] == "good_model_built"
            else "retired"
        )
        print(f"{row['recorded_at']} {row['subject'][:12]} {what} by {row['user']}: {d.get('reason', '')}")
    return 0


def _cmd_retire(args: argparse.Namespace) -> int:
    from inspector.learning.good_model import retire_good_model

    with open_log(args) as log:
        sha = retire_good_model(log, sign_in(log, args.user), args.reason)
    print(f"good-part model {sha[:12]} retired; verdicts no longer consult a good-part model")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `good-model` under the existing `library` command."""
    lib = _library_subparsers(sub)
    gm = lib.add_parser("good-model", help="the good-part model built from confirmed good parts (QA)")
    cmds = gm.add_subparsers(dest="good_model_command", required=True)
    c = cmds.add_parser("build", help="build it from every confirmed good part and put it in force (QA)")
    c.add_argument("--config", help="station TOML: its model and [scoring] front end (default: embedded defaults)")
    c.add_argument("--max-bank", type=int, default=4096, help="rows kept in the bank (coreset)")
    c.add_argument(
        "--cells",
        choices=CELLS,
        default=DEFAULT_CELLS,
        help=f"compare whole-part embeddings (default: {DEFAULT_CELLS}, better on validation), the feature"
        " grid's cells (local), or the trunk's mid-level statistics off the ranking's forward (mid)",
    )
    c.add_argument(
        "--input-size",
        type=int,
        default=None,
        help=f"short side px of its forward (0: the ranking's, no second forward; default 0 for mid,"
        f" {DEFAULT_INPUT_SIZE} for global and local)",
    )
    c.set_defaults(func=_cmd_build)
    c = cmds.add_parser("show", help="the model in force and every build and retirement")
    c.set_defaults(func=_cmd_show)
    c = cmds.add_parser("retire", help="stop consulting a good-part model (QA)")
    c.set_defaults(func=_cmd_retire)
    for name in ("build", "retire"):
        cmds.choices[name].add_argument("--reason", required=True, help="why (recorded)")
        add_user_argument(cmds.choices[name])
    for name in ("build", "show", "retire"):
        add_db_argument(cmds.choices[name])
