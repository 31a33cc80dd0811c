"""Probe: does a good-part model help tell ok from defective ELPV cells, beside the ranking?

    python -m bench.goodpart_probe [--seeds 0,1,2] [--goods 50,200,1000]

A Gaussian (mean + shrunk covariance, Mahalanobis distance: PaDiM's per-location model, here on
the GLOBAL image embedding only, not on local features) is fitted on N operator-confirmed good
cells drawn from the pool of bench.examples_curve (p = 0 cells), and scores the held-out split;
its ok-vs-defect AUROC is reported beside the ranking's (text only, and the station's blend with
the same budget of confirmed parts as examples). Embeddings: bench.examples_curve's cache.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.examples_curve import ROOT, draw, features, library_texts, scores, splits
from models.metrics import auroc, softmax


def mahalanobis(train: np.ndarray, test: np.ndarray, shrink: float = 0.1) -> np.ndarray:
    mu = train.mean(0)
    cov = np.cov(train, rowvar=False) if len(train) > 1 else np.eye(train.shape[1])
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    d = test - mu
    return np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)


def main(argv: list[str] | None = None) -> int:
    from models.factory import load_model
    from models.scorer import TorchScorer

    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--goods", default="50,200,1000")
    p.add_argument("--cache", default=str(ROOT / "runs" / "examples_curve"))
    args = p.parse_args(argv)
    f = features("elpv", Path(args.cache))
    texts = library_texts("elpv")
    names = list(texts)
    scorer = TorchScorer(load_model("inspector-default-v1", device="cpu"))
    text_emb = scorer.embed_texts([t for n in names for t in texts[n]])
    counts = np.array([len(texts[n]) for n in names])
    y = np.array([names.index(v) for v in f["labels"]])
    test, _, pool = splits("elpv", f)
    probs = f["x_probability"].astype(float)[test]
    keep = (probs == 0) | (probs >= 0.5)
    emb = f["emb"]
    ok = names.index("ok")

    def ranking_auroc(s: np.ndarray) -> float:
        z = np.where(np.isfinite(s), s, -1e9)
        return float(auroc((1 - softmax(z - z.max(1, keepdims=True), 30.0)[:, ok])[keep], probs[keep] >= 0.5))

    out = {"text_only": ranking_auroc(scores("text", {}, emb[test], emb[:0], y[:0], text_emb, counts, 2))}
    goods = pool[y[pool] == ok]
    for n in [int(g) for g in args.goods.split(",")]:
        rows = {"good_part_model": [], "blend": [], "blend_plus_good_part_rank": []}
        for seed in [int(s) for s in args.seeds.split(",")]:
            good = np.random.default_rng([seed, n]).choice(goods, min(n, len(goods)), replace=False)
            dist = mahalanobis(emb[good], emb[test])
            rows["good_part_model"].append(float(auroc(dist[keep], probs[keep] >= 0.5)))
            ex = draw(pool, y, [0, 1], (str(n), n), seed)
            s = scores("both", {"weight": 0.85, "sharpness": 30.0}, emb[test], emb[ex], y[ex], text_emb, counts, 2)
            rows["blend"].append(ranking_auroc(s))
            z = np.where(np.isfinite(s), s, -1e9)
            defect = 1 - softmax(z - z.max(1, keepdims=True), 30.0)[:, ok]
            ranks = (np.argsort(np.argsort(defect)) + np.argsort(np.argsort(dist))) / 2  # mean rank of the two
            rows["blend_plus_good_part_rank"].append(float(auroc(ranks[keep], probs[keep] >= 0.5)))
        out[str(n)] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in rows.items()}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
