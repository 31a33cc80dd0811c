"""Good-part model on the trunk's MID-LEVEL statistics read off the ranking's own forward.

    python -m bench.goodpart_mid [--datasets elpv,textile] [--goods 50,200] [--seeds 0,1] [--size 224]

Exactly bench.goodpart_local's protocol (the same VALIDATION splits of bench.examples_curve, the
same 400 seeded pool good parts, the same bank / threshold draws: N good parts for the bank plus
max(N/4, 10) for the threshold, seeds 0 and 1; the held-out test splits are not touched), with the
station's own code (inspector.frame.good_parts.fit) on other rows:

- "mid": the whole-frame view's stage statistics (models.trunk_features: strides 4 / 8 / 16, per
  channel mean, std, max), captured by hooks during the ranking's forward (TorchScorer.encode_frame
  at the ranking's input size, --size, the default model's native 224 px), standardised by the bank;
- "mid + global": the same with the ranking's unit embedding appended (standardised together);
- "global": the unit embedding of the same forward (at 448 px: the earlier default's rows);
- sub-variants of "mid" (single stages, mean+std only) to choose the rows on validation.

Each with the threshold from the held-out parts alone ("held-out") and with the bank parts'
leave-one-out scores added ("+LOO"): the share of validation good parts flagged shows which holds
the 2 % target. Encoded once per data set, cached in --cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.examples_curve import ROOT, splits
from bench.goodpart_local import GOOD_CANDIDATES
from inspector.frame.good_parts import fit
from models.metrics import auroc

# column blocks of the default capture (stages 1, 2, 3 of 24, 40, 112 channels; mean, std, max each)
BLOCKS = {"s1": (0, 72), "s2": (72, 192), "s3": (192, 528)}


def encode(name: str, size: int, cache: Path) -> dict[str, Any]:
    """{idx, mid [n, F], emb [n, D], labels, extras} through the station's frame path (batch 1)."""
    path = cache / f"{name}_{size}_mid.npz"
    if not path.is_file():
        from models.benchdata import load_elpv, load_textiles
        from models.dense_map import FrontEnd
        from models.factory import load_model
        from models.scorer import TorchScorer

        data = {"elpv": load_elpv, "textile": load_textiles}[name]()
        meta = {"labels": np.array(data.labels), **{"x_" + k: np.array(v) for k, v in data.extras.items()}}
        _, val, pool = splits(name, meta)
        goods = pool[meta["labels"][pool] == "ok"]
        idx = np.sort(np.concatenate([val, np.random.default_rng(0).choice(goods, GOOD_CANDIDATES, replace=False)]))
        scorer = TorchScorer(load_model("inspector-default-v1", device="cpu"))
        fe = FrontEnd(size)
        mid, emb = [], []
        t0 = time.perf_counter()
        for n, i in enumerate(idx):
            f = scorer.encode_frame(data.images[i], None, fe, mid=True)
            mid.append(f.mid)
            emb.append(f.embedding)
            if n % 100 == 0:
                print(f"{name} {size}px: {n}/{len(idx)} ({time.perf_counter() - t0:.0f} s)", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, idx=idx, mid=np.stack(mid), emb=np.stack(emb), spec=f.mid_spec, **meta)
    return dict(np.load(path, allow_pickle=False))


def variants(mid: np.ndarray, emb: np.ndarray) -> dict[str, tuple[np.ndarray, str]]:
    """name -> (rows [n, F], cells given to fit: "mid" standardises, "global" does not)."""
    c = mid.shape[1] // 528  # 1 for the default capture
    assert c == 1, "BLOCKS assume the default capture (stages 1,2,3; mean,std,max)"

    def cols(*blocks: str, stats: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
        out = []
        for b in blocks:
            lo, hi = BLOCKS[b]
            ch = (hi - lo) // 3
            out += [mid[:, lo + s * ch : lo + (s + 1) * ch] for s in stats]
        return np.concatenate(out, axis=1)

    return {
        "mid": (mid, "mid"),
        "mid + global": (np.concatenate([mid, emb], axis=1), "mid"),
        "global": (emb, "global"),
        "mid s1": (cols("s1"), "mid"),
        "mid s2": (cols("s2"), "mid"),
        "mid s3": (cols("s3"), "mid"),
        "mid s2+s3": (cols("s2", "s3"), "mid"),
        "mid mean+std": (cols("s1", "s2", "s3", stats=(0, 1)), "mid"),
    }


def _gauss(bank: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Bench-only comparison (not the station's scorer): Mahalanobis distance to one Gaussian of the
    standardised bank rows, Ledoit-Wolf shrinkage (PaDiM's score, for a whole part)."""
    from sklearn.covariance import LedoitWolf

    b = np.concatenate(bank).astype(np.float64)
    mu, sd = b.mean(0), b.std(0) + 1e-6
    lw = LedoitWolf().fit((b - mu) / sd)
    z = (rows - mu) / sd - lw.location_
    return np.einsum("ij,jk,ik->i", z, lw.precision_, z)


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in args.datasets:
        f = encode(name, args.size, Path(args.cache))
        labels = f["labels"]
        _, val, pool = splits(name, f)
        defect = labels[val] != "ok"
        row = {int(i): r for r, i in enumerate(f["idx"])}
        goods = np.array(sorted(i for i in row if i in set(pool.tolist()) and labels[i] == "ok"))
        vals = np.array([row[int(i)] for i in val])
        res: dict[str, Any] = {"validation": int(len(val)), "spec": str(f["spec"])}
        for vname, (x, cells) in variants(f["mid"].astype(np.float32), f["emb"].astype(np.float32)).items():
            for n in args.goods:
                acc: dict[str, list[float]] = {}
                for seed in args.seeds:
                    pick = np.random.default_rng([seed, n]).choice(goods, n + max(n // 4, 10), replace=False)
                    bank, cal = [x[row[i]][None] for i in pick[:n]], [x[row[i]][None] for i in pick[n:]]
                    for loo in (False, True):
                        m = fit(bank, cal, {"cells": cells}, {}, args.max_bank, leave_one_out=loo)
                        s = m.distances(x[vals])
                        tag = "loo" if loo else "heldout"
                        if not loo:
                            acc.setdefault("auroc", []).append(float(auroc(s, defect)))
                            acc.setdefault("auroc_gauss", []).append(float(auroc(_gauss(bank, x[vals]), defect)))
                        acc.setdefault(f"good_flagged_{tag}", []).append(float((s[~defect] > m.threshold).mean()))
                        acc.setdefault(f"defects_flagged_{tag}", []).append(float((s[defect] > m.threshold).mean()))
                res[f"{vname} | {n}"] = {
                    k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in acc.items()
                }
        out[f"{name}@{args.size}"] = res
        print(json.dumps({f"{name}@{args.size}": res}), flush=True)
    return out


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "| data set @ px | rows | good parts | AUROC | AUROC, Gaussian (bench only) | good flagged (held-out) | defects flagged (held-out) |"
        " good flagged (+LOO) | defects flagged (+LOO) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, res in out.items():
        if not isinstance(res, dict):
            continue
        for vn, r in res.items():
            if not isinstance(r, dict):
                continue
            v, n = vn.split(" | ")

            def cell(k: str, r: dict = r) -> str:
                return f"{r[k]['mean']:.3f} ± {r[k]['std']:.3f}"

            lines.append(
                f"| {key} | {v} | {n} | {cell('auroc')} | {cell('auroc_gauss')} | {cell('good_flagged_heldout')} |"
                f" {cell('defects_flagged_heldout')} | {cell('good_flagged_loo')} | {cell('defects_flagged_loo')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="elpv,textile")
    p.add_argument("--goods", default="50,200")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--max-bank", type=int, default=4096)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default=str(ROOT / "runs" / "goodpart_local"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    args.datasets = args.datasets.split(",")
    args.goods = [int(g) for g in args.goods.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    out = run(args)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["command"] = "python -m bench.goodpart_mid " + " ".join(sys.argv[1:] if argv is None else argv)
    stem = f"goodpart_mid_{args.size}"
    (Path(args.out) / f"{stem}.json").write_text(json.dumps(out, indent=1))
    (Path(args.out) / f"{stem}.md").write_text(markdown(out) + f"\n`{out['command']}`, {out['seconds']} s\n")
    print(markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
