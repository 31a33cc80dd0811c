"""Validation top-1 of v1 by front-end size and local-evidence blend weight (how the [scoring] defaults were chosen).

    python -m bench.blend_eval N [MODEL] [SIZE]

MODEL (default inspector-default-v1) and SIZE (default 448) pick the model and the dense front end's input size.

Validation = the former held-out wording (captions.heldout_descriptions) and test image seed 1, 8 labels
incl. ok, label score = mean cosine over its descriptions (as the station ranks). Rows: the v1 path
(224 centre crop, global only) and the dense front end at 448 px with blend weights 0..0.75.
"""

import sys

import numpy as np
import torch

from models.dense_map import FrontEnd
from models.factory import load_model
from models.scorer import TorchScorer
from models.synth import DEFECT_TYPES, generate
from models.synth.captions import heldout_descriptions
from models.tiling import TileSpec


def main() -> int:
    """Print the validation table."""
    torch.set_num_threads(1)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 160
    model = sys.argv[2] if len(sys.argv) > 2 else "inspector-default-v1"
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 448
    scorer = TorchScorer(load_model(model, device="cpu"))
    labels = list(DEFECT_TYPES)
    texts = [(l, d) for l in labels for d in heldout_descriptions(l)]
    E = scorer.embed_texts([d for _, d in texts])
    owner = np.array([labels.index(l) for l, _ in texts])

    def top1(sims: np.ndarray) -> int:
        return int(np.argmax([sims[owner == i].mean() for i in range(len(labels))]))

    weights = [0.0, 0.25, 0.5, 0.75]
    hits = {"224 crop": 0, **{f"{size} w={w}": 0 for w in weights}}
    samples = generate(n, seed=1, split="test")
    for s in samples:
        y = labels.index(s.defect)
        g = scorer.embed_images([s.image])[0]
        hits["224 crop"] += top1(E @ g) == y
        f = scorer.encode_frame(s.image, frontend=FrontEnd(size, TileSpec("off")))
        loc = (f.local @ E.T).max(0)
        for w in weights:
            hits[f"{size} w={w}"] += top1((1 - w) * (E @ f.embedding) + w * loc) == y
    print(
        f"{model} ({scorer.model_id[:12]}): validation (seed 1, held-out wording), n={n}, labels={len(labels)} incl. ok"
    )
    for k, v in hits.items():
        print(f"| {k} | {v / n:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
