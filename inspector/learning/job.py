"""One fine-tuning job over several stations' exports; runs alone or under torchrun (DDP).

    torchrun --nproc_per_node 4 -m inspector.learning.job \\
        --bundle exports/line-1 --bundle exports/line-2 --base default --out runs/ft

Every rank builds the same training set (a pure function of the bundles and the seed) and joins
models.train.fit, which all-gathers the features so RANKCLIP's lists span the global batch. Rank 0
evaluates, writes the candidate checkpoint (its sidecar holds the figures) and prints a JSON
summary; a station then adopts it with `inspector model register CHECKPOINT`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from inspector.commands.training_args import add_training_arguments
from inspector.errors import InspectorError
from inspector.learning.engine import FinetuneConfig, FinetuneProgress, train_candidate
from inspector.learning.pairs import TrainingSet, read_pairs_jsonl
from inspector.learning.sources import training_set_from


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the job (also the documentation of its command line)."""
    p = argparse.ArgumentParser(
        prog="python -m inspector.learning.job",
        description="fine-tune one model from several stations' confirmed decisions",
    )
    p.add_argument("--bundle", action="append", default=[], help="audit export bundle folder (repeat per station)")
    p.add_argument("--pairs", action="append", default=[], help="pairs JSONL (inspector finetune --write-pairs)")
    p.add_argument(
        "--key",
        action="append",
        default=[],
        help="station key file per --bundle, in the same order, to check manifest HMACs too",
    )
    p.add_argument(
        "--station-key",
        action="append",
        default=[],
        help="public key of each --bundle's station, same order (`inspector log identity` there)",
    )
    p.add_argument("--base", default="inspector-default", help="model the stations run: name or checkpoint")
    p.add_argument("--out", required=True, help="folder for the candidate checkpoint and resumable state")
    p.add_argument("--summary", help="also write rank 0's JSON summary to this file")
    add_training_arguments(p, max_minutes=None)
    return p


def _training_set(args: argparse.Namespace) -> TrainingSet:
    if args.pairs and args.bundle:
        raise InspectorError("give --bundle or --pairs, not both (pairs files are already deduplicated sets)")
    if args.pairs:
        return read_pairs_jsonl(args.pairs, args.heldout_fraction, args.split_seed)
    try:
        keys = [bytes.fromhex(Path(k).read_text(encoding="ascii").strip()) for k in args.key]
    except (OSError, ValueError) as exc:
        raise InspectorError(f"cannot read a station key: {exc}") from None
    return training_set_from(
        None,
        args.bundle,
        heldout_fraction=args.heldout_fraction,
        seed=args.split_seed,
        keys=keys,
        station_keys=args.station_key,
    )


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The FinetuneConfig a parsed command line asks for."""
    return FinetuneConfig(
        loss=args.loss,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        unfreeze_image_blocks=args.unfreeze_image_blocks,
        seed=args.seed,
        heldout_fraction=args.heldout_fraction,
        split_seed=args.split_seed,
        max_wall_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
        forgetting_n=args.forgetting_n,
        forgetting_size=args.forgetting_size,
        resume=not args.no_resume,
        device=args.device,
    )


def _progress(p: FinetuneProgress) -> None:
    if p.stage != "train" or p.step == p.total or p.step % max(1, p.total // 10) == 0:
        print(f"[{p.stage}] {p.step}/{p.total} {p.message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; 0 on success, 2 on a fault the message explains."""
    from models.distributed import shutdown_distributed

    args = build_parser().parse_args(argv)
    try:
        ts = _training_set(args)
        outcome = train_candidate(ts, args.base, config_from_args(args), args.out, progress=_progress)
        if outcome.status == "done":
            summary = {
                "model_id": outcome.model_id,
                "checkpoint": outcome.checkpoint,
                "parent_id": outcome.parent_id,
                "data_hash": outcome.data_hash,
                "world_size": outcome.world_size,
                "steps_done": outcome.steps_done,
                "completed": outcome.completed,
                "n_train": len(ts.train),
                "n_heldout": len(ts.heldout),
                "figures": outcome.figures,
            }
            text = json.dumps(summary, indent=1, sort_keys=True)
            print(text)
            if args.summary:
                Path(args.summary).write_text(text + "\n", encoding="utf-8")
        return 0
    except InspectorError as exc:
        print(f"inspector.learning.job: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
