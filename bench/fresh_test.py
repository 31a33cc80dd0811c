"""The ONE touch of the fresh test split: typed-defect top-1 / top-3 / MRR per model, as the station ranks.

    python -m bench.fresh_test [--n 800] [--models inspector-default-v1 inspector-default-v2]

Images: models.synth.generate(n, split="test", seed=FRESH_TEST_IMAGE_SEED); label descriptions:
models.synth.fresh_test.fresh_test_descriptions (written 2026-12-05, never tuned on). Each model is
run through the station's own path (score_frame with the default [scoring] settings: its native
input size from the sidecar, no flips, no templates), label score = mean cosine. Nothing was chosen
with these figures; they are reported once (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from inspector.frame.scorer import score_frame
from inspector.frame.scoring import ScoringSettings
from models import metrics
from models.factory import load_model
from models.scorer import TorchScorer
from models.synth import DEFECT_TYPES, generate
from models.synth.fresh_test import FRESH_TEST_IMAGE_SEED, fresh_test_descriptions


def main() -> int:
    """Print one JSON line per model."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--models", nargs="+", default=["inspector-default-v1", "inspector-default-v2"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    samples = generate(args.n, seed=FRESH_TEST_IMAGE_SEED, split="test")
    labels = list(DEFECT_TYPES)
    texts = [(lb, d) for lb in labels for d in fresh_test_descriptions(lb)]
    counts = [len(fresh_test_descriptions(lb)) for lb in labels]
    y = np.array([labels.index(s.defect) for s in samples])
    settings = ScoringSettings()
    for ref in args.models:
        t0 = time.monotonic()
        scorer = TorchScorer(load_model(ref, device="cpu"))
        E = scorer.embed_texts([d for _, d in texts])
        rows, size = [], None
        for s in samples:
            scored = score_frame(scorer, s.image, settings)
            size = size or dict(scored.config.front_end).get("input_size")
            rows.append(E @ scored.embedding)
        scores = metrics.segment_label_scores(np.array(rows, np.float64), counts, "mean")
        out = {
            "model": ref,
            "model_id": scorer.model_id[:12],
            "input_size": size,
            "n": len(y),
            "top1": metrics.topk_accuracy(scores, y, 1),
            "top3": metrics.topk_accuracy(scores, y, 3),
            "mrr": metrics.mean_reciprocal_rank(scores, y),
            "per_label_recall": dict(zip(labels, map(float, metrics.per_label_recall(scores, y)))),
            "wall_s": round(time.monotonic() - t0),
        }
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
