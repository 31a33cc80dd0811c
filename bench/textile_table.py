"""Textile k-shot three-class accuracy (ok / local / global): what the station's features beat, and by how much.

    python -m bench.textile_table [--k 10 50] [--seeds 0 1 2] [--models inspector-default-v1 ...]
                                  [--max-test 600] [--no-baseline]

Data: conformal-clip-data textiles (MIT), split by models.benchdata.textile_fewshot_split (k images
per class for training, the rest for testing; nominal images that were generator seed textures are
left out of both). --max-test caps the test images per seed (a fixed random subset; stated in the output).
Rows:
- two-statistic high-pass baseline: at the native resolution, residual r = grey - Gaussian blur
  (sigma 2); statistics: std(r) over the image, and the largest 8x8-block std of r over the median
  block std; standardised, then multinomial logistic regression;
- plain linear probe: logistic regression on the model's global image embedding (its station path:
  native input size from the sidecar, whole frame);
- multi-scale probe: the same on [global embedding, max over locations of the unit local features]
  (the dense front end's local evidence, generic: no hand-made statistic).
The station's own fine-tune (bench.quality) is reported separately.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from models.benchdata import load_textiles, textile_fewshot_split


def highpass_stats(rgb: np.ndarray) -> np.ndarray:
    """[2]: global std of the high-pass residual, and its peak 8x8-block std over the median block std."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) if rgb.ndim == 3 else rgb.astype(np.float32)
    r = grey - cv2.GaussianBlur(grey, (0, 0), 2.0)
    h, w = (r.shape[0] // 8) * 8, (r.shape[1] // 8) * 8
    blocks = r[:h, :w].reshape(h // 8, 8, w // 8, 8).std(axis=(1, 3))
    return np.array([r.std(), blocks.max() / max(float(np.median(blocks)), 1e-6)], np.float64)


def probe(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray, test_y: list[str]) -> float:
    """Accuracy of a standardised multinomial logistic regression."""
    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(max_iter=5000).fit(scaler.transform(train_x), train_y)
    return float((clf.predict(scaler.transform(test_x)) == np.array(test_y)).mean())


def station_features(ref: str, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """[N, D] global embeddings and [N, 2D] global + max-local features through the station's front end."""
    from inspector.frame.scorer import score_frame
    from inspector.frame.scoring import ScoringSettings
    from models.factory import load_model
    from models.scorer import TorchScorer

    scorer = TorchScorer(load_model(ref, device="cpu"))
    settings = ScoringSettings(local_weight=1e-6)  # > 0 keeps the local features (no tiles at this size)
    glob, multi = [], []
    for im in images:
        scored = score_frame(scorer, im, settings)
        glob.append(scored.embedding)
        multi.append(np.concatenate([scored.embedding, scored.local.max(axis=0)]))
    return np.array(glob), np.array(multi)


def main() -> int:
    """Print one JSON line per (row, k, seed) and a mean per (row, k)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="*", default=[])
    ap.add_argument("--max-test", type=int, default=600)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    data = load_textiles()
    splits = {}
    for k in args.k:
        for seed in args.seeds:
            tr, te = textile_fewshot_split(data, k, seed)
            if len(te) > args.max_test:
                te = np.sort(np.random.default_rng([seed, k, 7]).choice(te, args.max_test, replace=False))
            splits[k, seed] = (tr, te)
    used = sorted({int(i) for tr, te in splits.values() for i in (*tr, *te)})
    feats: dict[str, np.ndarray] = {}
    if not args.no_baseline:
        feats["two-statistic high-pass baseline"] = np.stack([highpass_stats(data.images[i]) for i in range(len(data))])
    for ref in args.models:
        g, m = station_features(ref, [data.images[i] for i in used])
        gl, ml = np.zeros((len(data), g.shape[1])), np.zeros((len(data), m.shape[1]))
        gl[used], ml[used] = g, m
        feats[f"{ref}: linear probe (global embedding)"] = gl
        feats[f"{ref}: multi-scale probe (global + max local)"] = ml
    labels = np.array(data.labels)
    summary = {}
    for name, x in feats.items():
        for k in args.k:
            accs = []
            for seed in args.seeds:
                tr, te = splits[k, seed]
                accs.append(probe(x[tr], labels[tr].tolist(), x[te], labels[te].tolist()))
                print(json.dumps({"row": name, "k": k, "seed": seed, "n_test": len(te), "accuracy": accs[-1]}))
            summary[f"{name} | k={k}"] = (float(np.mean(accs)), float(np.std(accs)))
    print(f"\n{len(used)} images used; test capped at {args.max_test} per seed; {time.monotonic() - t0:.0f} s")
    print("| row | k | accuracy (mean ± std over seeds) |\n|---|---:|---:|")
    for key, (m, s) in summary.items():
        name, k = key.split(" | ")
        print(f"| {name} | {k[2:]} | {m:.3f} ± {s:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
