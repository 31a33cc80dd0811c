"""Measure a model's verdict thresholds on the validation split and (with --write) store them in its sidecar.

    python -m bench.calibrate --model inspector-default-v2 [--n 400] [--precision 0.9] [--false-open 0.02] [--write]

Validation = generated images of image seed 1 (split "test" textures) ranked through the station's
own path (score_frame with the default [scoring] settings for that model, rank, softmax at the model's
logit scale) against the validation wording (captions.heldout_descriptions) as the label
descriptions; label ids are the defect types, as in inspector/library/seeds/generic_surfaces.yaml.
The fresh test split is never used here. --write adds "calibration" to the checkpoint's JSON
sidecar (the weights, and so the model id, do not change).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from inspector.frame.calibration import calibrate
from inspector.frame.ranking import build_index, rank
from inspector.frame.scorer import score_frame
from inspector.frame.scoring import ScoringSettings
from inspector.library.labels import Label, Library
from models.checkpoint import checkpoint_paths
from models.durable import atomic_write
from models.factory import SHIPPED_MODELS, WEIGHTS_DIR, load_model
from models.scorer import TorchScorer
from models.synth import DEFECT_TYPES, generate, heldout_descriptions


def validation_library() -> Library:
    """The defect types with the validation wording as descriptions."""
    return Library(
        "validation",
        tuple(
            Label(d, d, "accept" if d == "ok" else "review", 0, tuple(heldout_descriptions(d))) for d in DEFECT_TYPES
        ),
    )


def main() -> int:
    """Print the calibration JSON; with --write store it in the model's sidecar."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="inspector-default-v2")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--precision", type=float, default=0.9)
    ap.add_argument("--false-open", type=float, default=0.02)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    scorer = TorchScorer(load_model(args.model, device="cpu"))
    library = validation_library()
    index = build_index(library, scorer.embed_texts, scorer.model_id)
    settings = ScoringSettings()
    rankings, truths = [], []
    for s in generate(args.n, seed=1, split="test"):
        scored = score_frame(scorer, s.image, settings)
        rankings.append(
            rank(scored.embedding, index, scorer.logit_scale, local=scored.local, local_weight=settings.local_weight)
        )
        truths.append(s.defect)
    cal = calibrate(
        rankings,
        truths,
        precision=args.precision,
        false_open=args.false_open,
        split=f"validation: image seed 1 (split test), n={args.n}, held-out wording; bench.calibrate",
    )
    record = {
        **cal.as_dict(),
        "model_id": scorer.model_id,
        "scoring": json.loads(rankings[0].scoring_config_json or "{}"),
    }
    print(json.dumps(record, indent=1))
    print(f"{args.n} frames in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if args.write:
        stem = WEIGHTS_DIR / SHIPPED_MODELS[args.model] if args.model in SHIPPED_MODELS else args.model
        sidecar_path = checkpoint_paths(stem)[1]
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        sidecar["calibration"] = record
        atomic_write(sidecar_path, json.dumps(sidecar, indent=2, sort_keys=True).encode() + b"\n")
        print(f"wrote the calibration into {sidecar_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
