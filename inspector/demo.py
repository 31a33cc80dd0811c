"""`inspector run`: a headless demo of the station on its embedded defaults (the Qt app is
`inspector-station`): default model, seed library, generated sample parts, candidates and verdicts."""

from __future__ import annotations

import time
from typing import TextIO

from inspector.config import StationConfig
from inspector.frame.ranking import build_index, decide, rank
from inspector.library.labels import load_library


def run_headless_demo(config: StationConfig, frames: int, out: TextIO) -> int:
    """Rank `frames` generated parts against the configured library and print the results."""
    from models.factory import load_model
    from models.scorer import TorchScorer
    from models.synth import generate

    t0 = time.perf_counter()
    library = load_library(config.library.path)
    scorer = TorchScorer(load_model(config.model.ref, device=config.model.device))
    index = build_index(library, scorer.embed_texts, scorer.model_id)
    print(
        f"station ready in {time.perf_counter() - t0:.1f} s: model {scorer.model_id[:12]} on {scorer.device},"
        f" library {library.name!r} ({len(index.texts)} descriptions)",
        file=out,
    )
    samples = generate(frames, seed=int(time.time()) % 10_000, size=scorer.image_size, split="test")
    for i, sample in enumerate(samples, start=1):
        t1 = time.perf_counter()
        embedding = scorer.embed_images([sample.image])[0]
        ranking = rank(embedding, index, scorer.logit_scale, top_k=3)
        verdict = decide(ranking, index)
        ms = 1000 * (time.perf_counter() - t1)
        print(f"\nframe {i}: generated {sample.defect!r} on {sample.surface} ({ms:.0f} ms)", file=out)
        for c in ranking.candidates:
            print(f'  #{c.rank} {c.label_name:<24} p={c.probability:.2f}  "{c.description}"', file=out)
        flag = "REVIEW" if verdict.needs_review else verdict.disposition.upper()
        print(f"  verdict: {flag}: {verdict.reason}", file=out)
    return 0
