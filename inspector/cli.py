"""`inspector ...` subcommands: parse, call the core, map InspectorError to exit status 2.

Heavy imports (torch through models/) happen inside the subcommands so that `--help` and
`library check` stay instant.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence

from inspector.config import DEFAULT_MODEL, load_config
from inspector.errors import InspectorError

# Each module in inspector/commands/ adds its subcommands with `register(subparsers)`; its
# handlers do their heavy imports inside, so `inspector --help` stays fast.
COMMAND_MODULES: tuple[str, ...] = (
    "inspect",
    "log",
    "user",
    "library_db",
    "good_model",
    "model",
    "witness",
    "search",
    "report",
)


def _cmd_library_check(args: argparse.Namespace) -> int:
    from inspector.library.check import check_library_file, label_table
    from inspector.library.threshold_review import shipped_model_id, thresholds_to_review

    model_id = shipped_model_id(args.model)

    bad = 0
    for path in args.files:  # every file, every problem: one pass shows all there is to fix
        check = check_library_file(path)
        if not check.ok:
            bad += 1
            # flushed, so that a terminal shows each file's count before its problems (stderr)
            print(f"{path}: {len(check.problems)} problem{'s' if len(check.problems) != 1 else ''}", flush=True)
            for problem in check.problems:
                print(f"inspector: error: {problem}", file=sys.stderr, flush=True)
            continue
        library = check.library
        n_desc = sum(len(label.descriptions) for label in library.labels)
        print(
            f"{path}: ok: library {library.name!r}, {len(library.labels)} labels, {n_desc} descriptions,"
            f" {check.examples} examples"
        )
        print("\n".join(label_table(library)))
        for flag in thresholds_to_review(library, model_id):  # a warning: the file itself is valid
            print(f"{path}: review: {flag.reason}")
    if len(args.files) > 1:
        print(f"checked {len(args.files)} files: {len(args.files) - bad} ok, {bad} with problems")
    return 2 if bad else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from inspector.demo import run_headless_demo

    config = load_config(args.config)
    return run_headless_demo(config, frames=args.frames, out=sys.stdout)


def _cmd_train(args: argparse.Namespace) -> int:
    from inspector.learning.training import train_command

    result = train_command(args)
    print(json.dumps(result, indent=2) if args.json else result["summary"])
    return 0 if result.get("completed", True) else 3


def _cmd_eval(args: argparse.Namespace) -> int:
    from inspector.learning.training import eval_command

    metrics = eval_command(args)
    if args.json:
        print(json.dumps(metrics))
    else:
        from inspector.learning.eval_report import eval_text
        from inspector.library.labels import load_library

        print(eval_text(metrics, load_library(args.library)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="inspector", description="RANKCLIP inspection station")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="start the station on its embedded defaults")
    p.add_argument("--config", help="station TOML file (default: embedded defaults)")
    p.add_argument("--frames", type=int, default=4, help="frames the headless demo ranks")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("library", help="description libraries")
    lib = p.add_subparsers(dest="library_command", required=True)
    c = lib.add_parser("check", help="validate library YAML files")
    c.add_argument("files", nargs="+")
    c.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="shipped model name or checkpoint .json whose id hand-set thresholds must have been set for",
    )
    c.set_defaults(func=_cmd_library_check)

    p = sub.add_parser("train", help="train or fine-tune a model with the RANKCLIP loss")
    p.add_argument(
        "--recipe",
        help="a named recipe that fixes data and settings: 'default' reproduces the shipped "
        "model (models/MODEL_CARD.md), 'tiny' is a seconds-long smoke run",
    )
    p.add_argument("--no-eval", action="store_true", help="with --recipe: skip the held-out evaluation")
    p.add_argument("--model", default=DEFAULT_MODEL, help="architecture name or checkpoint to start from")
    p.add_argument("--data", help="CSV/TSV (image path, caption) or a folder with one sub-folder per label id")
    p.add_argument("--library", help="library YAML whose descriptions caption a labelled folder")
    p.add_argument("--image-col", default="filepath")
    p.add_argument("--caption-col", default="title")
    p.add_argument(
        "--out",
        help="checkpoint path to write (NAME.safetensors + NAME.json); with --recipe default ./inspector-default-v1",
    )
    p.add_argument("--loss", default="rankclip", choices=["clip", "rankclip", "rankclip_c", "rankclip_i"])
    p.add_argument("--numerics", default="official", choices=["official", "exact"])
    p.add_argument("--weight-cap", type=float, default=2.0)
    p.add_argument("--position-decay", choices=["log2"], default=None)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (lists span it)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--unfreeze-image-blocks", type=int, default=0)
    p.add_argument("--unfreeze-text-blocks", type=int, default=0)
    p.add_argument("--train-towers", action="store_true", help="train both towers whole (default: frozen)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--log", help="JSONL file for the per-step loss terms")
    p.add_argument("--checkpoint-dir", help="folder for resumable training state")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="ranking metrics of a model on a labelled image folder")
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help="architecture name or checkpoint (default: the station's model)"
    )
    p.add_argument("--library", required=True, help="library YAML (labels and descriptions)")
    p.add_argument("--data", required=True, help="folder with one sub-folder per label id")
    p.add_argument("--aggregate", default="mean", choices=["mean", "max"])
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--shots",
        type=int,
        help="use N images per label folder (seeded) as the examples, replacing the library's, and rank the rest",
    )
    p.add_argument("--seed", type=int, default=0, help="with --shots: which images are drawn")
    p.set_defaults(func=_cmd_eval)

    for name in COMMAND_MODULES:
        importlib.import_module(f"inspector.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `inspector` console script."""
    os.umask(0o077)  # everything the station writes (database, images, anchor, bundles) is private to its account
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InspectorError as exc:
        print(f"inspector: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inspector: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
