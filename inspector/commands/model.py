"""`inspector finetune` and `inspector model list|register|promote|rollback`: the learning loop's commands.

Ctrl-C during `finetune` stops training at the next step and keeps its resumable state (a second
Ctrl-C interrupts at once); the same command then continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from inspector.commands.user import add_db_argument, add_user_argument, open_log, sign_in
from inspector.errors import DataError


def _stop_flag() -> tuple[threading.Event, Any]:
    flag = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        flag.set()
        print("\nstopping after this step (Ctrl-C again to interrupt now)", file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return flag, signal.signal(signal.SIGINT, handler)


def _cmd_finetune(args: argparse.Namespace) -> int:
    from inspector.commands.finetune_summary import training_set_json, training_set_text
    from inspector.config import load_config
    from inspector.learning.job import _progress, config_from_args
    from inspector.learning.loop import run_finetune, training_set_from
    from inspector.learning.pairs import write_pairs_jsonl
    from inspector.learning.readiness import data_needs
    from inspector.learning.reliability import is_small
    from inspector.store.users import authorize

    with open_log(args) as log:
        user = sign_in(log, args.user)
        if args.dry_run or args.write_pairs:
            # Reading decisions is 'view'; writing them out of the station is 'export'.
            authorize(log.sdb, user, "export" if args.write_pairs else "view", "finetune_pairs")
            ts = training_set_from(
                log,
                args.bundle,
                heldout_fraction=args.heldout_fraction,
                seed=args.split_seed,
                station_keys=args.station_key,
            )
            version, library = log.library.in_force()
            names = {label.id: label.name for label in library.labels} if version else {}
            needs = data_needs(ts, config_from_args(args).min_train_pairs, names)
            if args.json and not args.write_pairs:
                print(json.dumps(training_set_json(ts, needs), indent=1, sort_keys=True))
            else:
                print(training_set_text(ts, needs))
            if args.write_pairs:
                print(f"wrote {write_pairs_jsonl(ts, args.write_pairs)}")
            return 0
        flag, previous = _stop_flag()
        try:
            result = run_finetune(
                log,
                args.base,
                config_from_args(args),
                _progress,
                flag.is_set,
                user=user,
                default_ref=load_config(args.config).model.ref,
                out_dir=args.out,
                bundles=args.bundle,
                station_keys=args.station_key,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
    if args.json:
        o = result.outcome
        print(
            json.dumps(
                {
                    "status": result.status,
                    "model_id": o.model_id,
                    "checkpoint": o.checkpoint,
                    "parent_id": o.parent_id,
                    "data_hash": o.data_hash,
                    "figures": o.figures,
                    "steps_done": o.steps_done,
                    "completed": o.completed,
                    # held-out sets of fewer than SMALL_SET images: their figures are unreliable
                    "small_sets": sorted(k for k, v in (o.figures.get("candidate") or {}).items() if is_small(v)),
                },
                indent=1,
                sort_keys=True,
            )
        )
    else:
        print(result.summary())
    return 0 if result.status == "candidate" else 3


def _top1(figures: dict[str, Any], name: str) -> str:
    value = (figures.get("candidate") or figures.get("baseline") or {}).get(name, {}).get("top1")
    return "-" if value is None else f"{value:.3f}"


def _cmd_list(args: argparse.Namespace) -> int:
    from inspector.learning.registry import ModelRegistry

    with open_log(args) as log:
        models = ModelRegistry(log).list()
    if args.json:
        print(json.dumps([m.__dict__ for m in models], indent=1, sort_keys=True))
        return 0
    print(f"{'model':<14}{'state':<11}{'parent':<14}{'confirm top1':>13}{'typed top1':>12}  registered")
    for m in models:
        parent = (m.parent_id or "-")[:12]
        print(
            f"{m.model_id[:12]:<14}{m.state:<11}{parent:<14}{_top1(m.figures, 'confirmations'):>13}"
            f"{_top1(m.figures, 'typed_defects'):>12}  {m.registered_at} by {m.registered_by}: {m.checkpoint}"
        )
    return 0


def _set_tolerances(items: list[str]) -> dict[str, float]:
    """`SET=DROP` arguments as a mapping; the registry checks the names and the range."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise DataError(f"--set-tolerance {item!r}: write it as SET=DROP, e.g. typed_defects=0.6")
    return out


def _cmd_change(args: argparse.Namespace) -> int:
    from inspector.learning.loop import register_checkpoint
    from inspector.learning.registry import ModelRegistry

    with open_log(args) as log:
        user = sign_in(log, args.user)
        registry = ModelRegistry(log)
        if args.model_command == "register":
            from inspector.config import load_config

            default = load_config(args.config).model.ref  # the baseline when no model is active
            model = register_checkpoint(log, args.checkpoint, user, args.reason, default_ref=default)
        elif args.model_command == "promote":
            model = registry.promote(args.model, user, args.reason, args.tolerance, _set_tolerances(args.set_tolerance))
        else:
            model = registry.rollback(args.model, user, args.reason)
    print(f"model {model.model_id[:12]} is now {model.state} ({model.checkpoint})")
    return 0


def _finetune_arguments(p: argparse.ArgumentParser) -> None:
    from inspector.commands.training_args import add_training_arguments
    from inspector.learning.engine import FinetuneConfig

    p.add_argument("--config", help="station TOML (its model is the base when nothing is active)")
    p.add_argument("--base", help="model to start from (default: the active model, else the configured one)")
    p.add_argument("--out", help="folder for candidates (default: models/ beside the database)")
    p.add_argument("--bundle", action="append", default=[], help="also learn from another station's export bundle")
    p.add_argument(
        "--station-key",
        action="append",
        default=[],
        help="public key of each --bundle's station, same order (`inspector log identity` there)",
    )
    add_training_arguments(p, max_minutes=FinetuneConfig.max_wall_seconds / 60)
    p.add_argument("--dry-run", action="store_true", help="show the training set and proposals; train nothing")
    p.add_argument("--write-pairs", help="write the pairs as JSONL (for inspector.learning.job --pairs) and stop")
    p.add_argument("--json", action="store_true", help="print one JSON object (also with --dry-run)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `finetune` and `model` to the top-level subparsers."""
    p = sub.add_parser("finetune", help="fine-tune from confirmed decisions; registers a candidate (QA)")
    add_db_argument(p)
    add_user_argument(p)
    _finetune_arguments(p)
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("model", help="the model registry: list, register, promote, roll back")
    models = p.add_subparsers(dest="model_command", required=True)
    c = models.add_parser("list", help="registered models with their state and held-out top-1")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_list)
    c = models.add_parser(
        "register",
        help="register a candidate written by inspector.learning.job (QA); the station measures its figures",
    )
    c.add_argument("checkpoint")
    c.add_argument("--config", help="station TOML (its model is the baseline when nothing is active)")
    c.add_argument("--reason", default="candidate from a fine-tuning job")
    add_user_argument(c)
    c.set_defaults(func=_cmd_change)
    c = models.add_parser("promote", help="make a candidate active if not worse on either held-out set (QA)")
    c.add_argument("model", help="model id (or a unique prefix of 8+ digits)")
    c.add_argument("--reason", required=True)
    c.add_argument("--tolerance", type=float, default=0.02, help="allowed drop in top-1 and MRR (default 0.02)")
    c.add_argument(
        "--set-tolerance",
        action="append",
        default=[],
        metavar="SET=DROP",
        help="another allowed drop for one held-out set, e.g. typed_defects=0.6 for a plant whose"
        " parts are unlike the shipped generic defects (recorded with the promotion)",
    )
    add_user_argument(c)
    c.set_defaults(func=_cmd_change)
    c = models.add_parser("rollback", help="make an earlier active model active again (QA)")
    c.add_argument("model")
    c.add_argument("--reason", required=True)
    add_user_argument(c)
    c.set_defaults(func=_cmd_change)
    for parser in models.choices.values():
        add_db_argument(parser)
