"""Textile k-shot accuracy from the trunk's mid-level stages (models.trunk_features), chosen on validation.

    python -m bench.textile_midlayer --select [--models inspector-default-v1 inspector-default-v2]
    python -m bench.textile_midlayer --test --model M --size S --stages 1,2,3 --stats mean,std,max --C 1.0
           [--with-global]

Features: each stage's map pooled per channel (mean / std / max / GeM), stages concatenated,
optionally with the global embedding; standardised; multinomial logistic regression (as
bench.textile_table's probe rows). Encoded once per model and input size (0 = the image's native
250 px) for every usable textile image, cached in --cache.

Validation (--select): stratified 4-fold cross-validation INSIDE each (k, seed) training set of
bench.textile_table (k = 10 and 50, seeds 0, 1, 2); the test images are never scored. The variant
with the best mean CV accuracy is the one --test reports, once, on textile_table's test split
(same splits, same 600-image cap).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.examples_curve import ROOT

ALL_STATS = ("mean", "std", "max", "gem")


def encode(ref: str, size: int, cache: Path) -> dict[str, np.ndarray]:
    """{"stage{i}_{stat}": [N, C_i], "global": [N, D] unit, "labels", "usable"} for all textiles."""
    path = cache / f"{ref}_{size}.npz"
    if path.is_file():
        return dict(np.load(path))
    import torch

    from models.benchdata import load_textiles
    from models.factory import load_model
    from models.trunk_features import capture, pooled_stats, stages

    data = load_textiles()
    usable = np.array([s == "test" for s in data.extras["seed_split"]])
    visual = load_model(ref, device="cpu").model.visual.eval()
    n_st = len(stages(visual))
    mean = np.float32(visual.preprocess_cfg["mean"]) * 255.0
    std = np.float32(visual.preprocess_cfg["std"]) * 255.0
    cols: dict[str, list[np.ndarray]] = {}
    idx = np.flatnonzero(usable)
    t0 = time.perf_counter()
    import cv2

    for start in range(0, len(idx), 16):
        ims = [data.images[i] for i in idx[start : start + 16]]
        if size:
            ims = [cv2.resize(im, (size, size), interpolation=cv2.INTER_CUBIC) for im in ims]
        x = torch.from_numpy(np.stack([(im.astype(np.float32) - mean) / std for im in ims]).transpose(0, 3, 1, 2))
        with torch.inference_mode(), capture(visual, range(n_st)) as maps:
            feats = visual.trunk.forward_features(x.contiguous())
            emb = torch.einsum("bchw,dc->bd", feats, visual.head.proj.weight) / (feats.shape[2] * feats.shape[3])
            for i, m in enumerate(maps):
                for s in ALL_STATS:
                    cols.setdefault(f"stage{i}_{s}", []).append(pooled_stats([m], [s]))
        cols.setdefault("global", []).append(torch.nn.functional.normalize(emb, dim=1).numpy())
        print(f"{ref}@{size}: {start + len(ims)}/{len(idx)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = {k: np.zeros((len(data), np.concatenate(v).shape[1]), np.float32) for k, v in cols.items()}
    for k, v in cols.items():
        out[k][idx] = np.concatenate(v)
    out["labels"], out["usable"] = np.array(data.labels), usable
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def features(
    f: dict[str, np.ndarray], stages: tuple[int, ...], stats: tuple[str, ...], with_global: bool
) -> np.ndarray:
    parts = [f[f"stage{i}_{s}"] for i in stages for s in stats] + ([f["global"]] if with_global else [])
    return np.concatenate(parts, axis=1)


def probe_acc(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, c: float) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(x_tr)
    clf = LogisticRegression(C=c, max_iter=3000).fit(sc.transform(x_tr), y_tr)
    return float((clf.predict(sc.transform(x_te)) == y_te).mean())


def cv_acc(x: np.ndarray, y: np.ndarray, c: float, folds: int = 4, seed: int = 0) -> float:
    """Stratified `folds`-fold cross-validation accuracy inside one training set."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), int)
    for label in np.unique(y):
        where = np.flatnonzero(y == label)
        fold[rng.permutation(where)] = np.arange(len(where)) % folds
    return float(np.mean([probe_acc(x[fold != j], y[fold != j], x[fold == j], y[fold == j], c) for j in range(folds)]))


def _splits(ks: list[int], seeds: list[int], max_test: int, labels: np.ndarray, usable: np.ndarray) -> dict:
    from models.benchdata import LabelledImages, textile_fewshot_split

    fake = LabelledImages(
        [None] * len(labels), list(labels), {"seed_split": ["test" if u else "train" for u in usable]}
    )
    out = {}
    for k in ks:
        for seed in seeds:
            tr, te = textile_fewshot_split(fake, k, seed)
            if len(te) > max_test:  # the same cap and draw as bench.textile_table
                te = np.sort(np.random.default_rng([seed, k, 7]).choice(te, max_test, replace=False))
            out[k, seed] = (tr, te)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--select", action="store_true")
    p.add_argument("--test", action="store_true")
    p.add_argument("--models", nargs="+", default=["inspector-default-v1", "inspector-default-v2"])
    p.add_argument("--sizes", default="0")
    p.add_argument("--model", default="inspector-default-v2")
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--stages", default="1,2,3")
    p.add_argument("--stats", default="mean,std,max")
    p.add_argument("--C", type=float, default=1.0)
    p.add_argument("--with-global", action="store_true")
    p.add_argument("--k", type=int, nargs="+", default=[10, 50])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-test", type=int, default=600)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default=str(ROOT / "runs" / "textile_midlayer"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "textile_midlayer"))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = "python -m bench.textile_midlayer " + " ".join(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    if args.select:
        grid_stages = [(1, 2, 3), (1, 2, 3, 4), (2, 3), (0, 1, 2, 3), (2, 3, 4)]
        grid_stats = [("mean", "std"), ("mean", "std", "max"), ("mean", "std", "max", "gem")]
        results = []
        for ref in args.models:
            for size in [int(s) for s in args.sizes.split(",")]:
                f = encode(ref, size, Path(args.cache))
                splits = _splits(args.k, args.seeds, args.max_test, f["labels"], f["usable"])
                for st, sa, g, c in itertools.product(grid_stages, grid_stats, (False, True), (0.05, 0.5)):
                    x = features(f, st, sa, g)
                    accs = {
                        k: [cv_acc(x[tr], f["labels"][tr], c) for (kk, _), (tr, _) in splits.items() if kk == k]
                        for k in args.k
                    }
                    row = {
                        "model": ref,
                        "size": size,
                        "stages": st,
                        "stats": sa,
                        "with_global": g,
                        "C": c,
                        **{f"cv_k{k}": float(np.mean(v)) for k, v in accs.items()},
                    }
                    row["cv_mean"] = float(np.mean([row[f"cv_k{k}"] for k in args.k]))
                    results.append(row)
                    print(json.dumps(row), flush=True)
        results.sort(key=lambda r: -r["cv_mean"])
        (out_dir / "select.json").write_text(
            json.dumps({"command": cmd, "seconds": round(time.perf_counter() - t0), "ranked": results}, indent=1)
        )
        print("best:", json.dumps(results[:5], indent=1))
    if args.test:
        f = encode(args.model, args.size, Path(args.cache))
        splits = _splits(args.k, args.seeds, args.max_test, f["labels"], f["usable"])
        st = tuple(int(s) for s in args.stages.split(","))
        x = features(f, st, tuple(args.stats.split(",")), args.with_global)
        rows = []
        for (k, seed), (tr, te) in splits.items():
            acc = probe_acc(x[tr], f["labels"][tr], x[te], f["labels"][te], args.C)
            rows.append({"k": k, "seed": seed, "n_test": int(len(te)), "accuracy": acc})
            print(json.dumps(rows[-1]), flush=True)
        summary = {
            k: (
                float(np.mean([r["accuracy"] for r in rows if r["k"] == k])),
                float(np.std([r["accuracy"] for r in rows if r["k"] == k])),
            )
            for k in args.k
        }
        for k, (m, s) in summary.items():
            print(f"k={k}: {m:.3f} ± {s:.3f}")
        (out_dir / "test.json").write_text(json.dumps({"command": cmd, "rows": rows, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
