"""`inspector train` and `inspector eval`: the core's thin bridge to models.train/evaluate.

Model-side errors are converted to InspectorError subclasses here, at the boundary, so the CLI
prints one clear line and exits 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from inspector.errors import DataError, model_errors
from inspector.library.labels import load_library


def _dataset(args: argparse.Namespace):
    from models.data import CsvCaptionDataset, LabelledFolderDataset

    data = Path(args.data)
    if data.is_dir():
        if not args.library:
            raise DataError(f"{data} is a folder of labelled images: give --library L.yaml for its captions")
        return LabelledFolderDataset(data, load_library(args.library).label_texts(), seed=getattr(args, "seed", 0))
    if data.suffix.lower() in (".csv", ".tsv"):
        return CsvCaptionDataset(data, image_col=args.image_col, caption_col=args.caption_col)
    raise DataError(f"--data {data}: expected a .csv/.tsv file or a folder with one sub-folder per label id")


def recipe_command(args: argparse.Namespace) -> dict[str, Any]:
    """`inspector train --recipe NAME [--out PATH]`: generate, train, evaluate and save a recipe's model."""
    import sys

    from models.recipes import RECIPES, SHIPPED_NAME, get_recipe, run_recipe

    if args.recipe not in RECIPES:
        raise DataError(f"unknown recipe {args.recipe!r}; known recipes: {sorted(RECIPES)}")
    if args.data:
        raise DataError("--recipe generates its own data: drop --data (or drop --recipe to train on your data)")
    out = args.out or (SHIPPED_NAME if args.recipe == "default" else f"inspector-{args.recipe}-recipe")
    with model_errors():
        recipe = get_recipe(args.recipe, seed=args.seed)
        summary = run_recipe(
            recipe,
            out,
            evaluate=not args.no_eval,
            log_path=args.log,
            progress=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
    summary.pop("bundle")
    held = summary.get("heldout")
    scores = f"; held-out top-1 {held['top1']:.3f}, MRR {held['mrr']:.3f}" if held else ""
    total = summary["timings"]["total_train_s"]
    summary["summary"] = (
        f"recipe {args.recipe!r}: {summary['steps_done']} steps, {total / 60:.1f} min "
        f"(generation + caching + training){scores}; wrote {out} (model {summary['model_id'][:12]})"
    )
    return summary


def train_command(args: argparse.Namespace) -> dict[str, Any]:
    """Train from --model on --data and write the checkpoint --out; returns a summary dict."""
    if getattr(args, "recipe", None):
        return recipe_command(args)
    from models.checkpoint import save_checkpoint
    from models.factory import load_model
    from models.freeze import trained_flags
    from models.train import TrainConfig, fit

    if not args.data or not args.out:
        raise DataError("inspector train needs --data and --out (or --recipe NAME)")
    with model_errors():
        bundle = load_model(args.model, device=args.device)
        dataset = _dataset(args)
        cfg = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_steps=args.warmup_steps,
            loss_variant=args.loss,
            numerics=args.numerics,
            weight_cap=args.weight_cap,
            position_decay=args.position_decay,
            freeze_image=not args.train_towers,
            freeze_text=not args.train_towers,
            unfreeze_image_blocks=args.unfreeze_image_blocks,
            unfreeze_text_blocks=args.unfreeze_text_blocks,
            seed=args.seed,
            log_path=args.log,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            device=args.device,
            max_wall_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
        )
        result = fit(bundle, dataset, cfg)
        metadata = {
            "parent_model_id": bundle.model_id,
            "training": asdict(cfg),
            "data": {"source": str(args.data), "library": args.library},
            "result": {
                "steps_done": result.steps_done,
                "completed": result.completed,
                "final_losses": result.final_losses,
                "wall_s": result.wall_s,
            },
        }
        trainable_only = bundle.arch == "inspector-default" and not args.train_towers
        # Store what this run trained plus what the parent checkpoint already carried (a shipped model's
        # trained blocks), nothing else: fit() hands the model back with all-True requires_grad flags.
        with trained_flags(bundle.model, cfg, keep=bundle.metadata.get("partial_keys", ())):
            model_id = save_checkpoint(bundle, args.out, metadata=metadata, trainable_only=trainable_only)
    state = "completed" if result.completed else f"stopped early ({result.reason})"
    return {
        "summary": f"{state} after {result.steps_done} steps in {result.wall_s:.0f} s;"
        f" wrote {args.out} (model {model_id[:12]})",
        "model_id": model_id,
        "steps_done": result.steps_done,
        "completed": result.completed,
        "final_losses": result.final_losses,
        "out": str(args.out),
    }


def eval_command(args: argparse.Namespace) -> dict[str, Any]:
    """Ranking metrics of --model on a labelled folder against --library."""
    from models.data import LabelledFolderDataset
    from models.evaluate import evaluate
    from models.factory import load_model

    library = load_library(args.library)
    shots = getattr(args, "shots", None)
    if shots is not None or any(label.examples for label in library.labels):
        from inspector.frame.scorer import load_scorer
        from inspector.learning.example_eval import evaluate_with_examples

        scorer = load_scorer(args.model, args.device)
        with model_errors():
            return evaluate_with_examples(scorer, library, Path(args.data), shots, getattr(args, "seed", 0))
    with model_errors():
        bundle = load_model(args.model, device=args.device)
        dataset = LabelledFolderDataset(Path(args.data), library.label_texts())
        images = [dataset[i][0] for i in range(len(dataset))]
        return evaluate(
            bundle,
            images,
            list(dataset.labels),
            library.label_texts(),
            ok_labels=library.ok_label_ids,
            aggregate=args.aggregate,
        )
