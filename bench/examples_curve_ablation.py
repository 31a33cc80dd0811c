"""Diagnostic, chooses nothing: the station's probe with its small-budget corrections taken apart.

    python -m bench.examples_curve_ablation [--split test|val] [--seeds 0,1,2]

bench.examples_curve's splits, draws and scoring, the probe only, four settings: the current default
(prior shift 1 + shrinkage 2), prior shift alone, shrinkage alone, neither (the previous default).
Run on the held-out split it is a look at the held-out split: its figures explain, they choose nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.examples_curve import BUDGETS, ROOT, STATION, draw, load_set, metrics, scores

SETTINGS = {
    "prior 1 + shrink 2 (default)": {**STATION, "prior": 1.0, "shrink": 2.0},
    "prior 1 only": {**STATION, "prior": 1.0, "shrink": 0.0},
    "shrink 2 only": {**STATION, "prior": 0.0, "shrink": 2.0},
    "neither (before)": {**STATION, "prior": 0.0, "shrink": 0.0},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--cache", default=str(ROOT / "runs" / "examples_curve"))
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    from models.factory import load_model
    from models.scorer import TorchScorer

    scorer = TorchScorer(load_model("inspector-default-v1", device="cpu"))
    print(f"| data set | confirmed parts | {' | '.join(SETTINGS)} |\n|---|---|" + "---|" * len(SETTINGS))
    for name in ("textile", "elpv"):
        f, y, names, text_emb, counts, (test, val, pool) = load_set(name, Path(args.cache), scorer)
        idx = test if args.split == "test" else val
        probs = f["x_probability"].astype(float)[idx] if name == "elpv" else None
        plant = np.bincount(y[pool], minlength=len(names))  # the pool's mix, as in examples_curve
        for budget in BUDGETS[1:]:
            cells = []
            for params in SETTINGS.values():
                acc = []
                for seed in seeds:
                    ex = draw(pool, y, list(range(len(names))), budget, seed)
                    s = scores("probe", params, f["emb"][idx], f["emb"][ex], y[ex], text_emb, counts, len(names), plant)
                    acc.append(metrics(name, s, y[idx], probs, names)["accuracy"])
                cells.append(f"{np.mean(acc):.3f}")
            print(f"| {name} | {budget[0]} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
