"""Short pilot runs that chose the inspector-default-v2 recipe (validation split only).

    python -m bench.v2_pilot --n-train 1600 --steps 60 --configs v1:448 arch:448 [--val-n 400]

One process generates the training images once, caches the frozen trunk at the pilot input size
once, then trains each config (init:lr) for --steps RANKCLIP steps from that cache and reports
validation top-1 of the global embedding at that input size (held-out wording = validation, image
seed 1, split "test"). Init "v1" starts from inspector-default-v1's trained block and projections,
"arch" from the architecture (ImageNet trunk, random projections) like v1 did. Figures are for
choosing only: short runs, CPU shared with other engineers' jobs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from models.recipes import at_input_size, evaluate_cached, get_recipe, training_samples
from models.synth import SyntheticDefectDataset, generate
from models.tower_cache import TowerCache
from models.train import fit


def main() -> int:
    """Run the pilots; print one JSON line per config."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=1600)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--input", type=int, default=448)
    ap.add_argument("--native-share", type=float, default=0.5, help="share of training images generated at --input")
    ap.add_argument("--val-n", type=int, default=400)
    ap.add_argument("--configs", nargs="+", default=["v1:1e-3", "arch:1e-3"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    recipe = get_recipe(
        "default",
        n_train=args.n_train,
        steps=args.steps,
        warmup_steps=max(2, args.steps // 10),
        input_size=args.input,
        native_share=args.native_share,
        batch_size=args.batch,
    )
    samples = training_samples(recipe)
    train = SyntheticDefectDataset(samples, seed=recipe.seed)
    val = generate(args.val_n, seed=1, split="test")
    val_ds = SyntheticDefectDataset(val, seed=0)
    print(f"generated {len(samples)} + {len(val)} in {time.monotonic() - t0:.0f} s", flush=True)
    t = time.monotonic()
    base = at_input_size("inspector-default-v1", args.input)
    cache = TowerCache(base, train, recipe.unfreeze_image_blocks)
    val_cache = TowerCache(base, val_ds, recipe.unfreeze_image_blocks)
    print(f"cached in {time.monotonic() - t:.0f} s", flush=True)
    v1 = evaluate_cached(base, val_cache, [s.defect for s in val])
    print(json.dumps({"config": f"v1 as shipped @ {args.input}", "top1": v1["top1"], "mrr": v1["mrr"]}), flush=True)
    for config in args.configs:
        init, lr = config.split(":")
        bundle = at_input_size("inspector-default-v1" if init == "v1" else "inspector-default", args.input)
        t = time.monotonic()
        result = fit(bundle, train, recipe.train_config(lr=float(lr), progress_bar=False), cache=cache)
        train_s = time.monotonic() - t
        h = evaluate_cached(bundle, val_cache, [s.defect for s in val])
        row = {
            "config": config,
            "input": args.input,
            "n_train": args.n_train,
            "steps": result.steps_done,
            "train_s": round(train_s),
            "top1": h["top1"],
            "top3": h["top3"],
            "mrr": h["mrr"],
            "recall": h["per_label_recall"],
        }
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
