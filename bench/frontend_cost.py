"""Per-frame cost of the front end's options, side by side in one run (frame path, headless).

    python -m bench.frontend_cost [--model inspector-default-v1] [--frames 40] [--large-frames 3]
                                  [--descriptions 1000] [--threads N]

Each 640x480 frame is scored by every variant in turn (rotating the order per frame), so load from
other processes on a shared machine hits all variants alike; the ratios are medians of per-frame
ratios against the 448-px front end with the local blend. One variant = score_frame + rank + decide (Station.inspect
minus the Frame record): "v1 path" is the old one (224 px centre crop, global embedding only).
Caption templates change the description embeddings only (compiled once per library), not the
per-frame work. 2448x2048 frames: 448 px with the blend (whole-frame view + 42 native tiles).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

import numpy as np

from bench.perf_common import (
    bench_library,
    command_line,
    machine,
    set_threads,
    stats_ms,
    synthetic_frames,
)


def _variants():
    from inspector.frame.scoring import ScoringSettings

    base = ScoringSettings(input_size=448, local_weight=0.5)
    return {
        "v1 path (224 crop, global only)": None,
        "station default (v1: 224 whole frame)": ScoringSettings(),
        REF: base,
        "448, flips h (2 passes)": replace(base, flips="h"),
        "448, flips hv (3 passes)": replace(base, flips="hv"),
    }


REF = "448 + local blend (flips none)"


def _one(station, rgb: np.ndarray, settings) -> float:
    from inspector.frame.ranking import decide, rank
    from inspector.frame.scorer import score_frame

    model = station.model
    t0 = time.perf_counter()
    if settings is None:
        emb = model.scorer.embed_images([rgb])[0]
        ranking = rank(emb, model.index, model.scorer.logit_scale)
    else:
        scored = score_frame(model.scorer, rgb, settings, "bench")
        ranking = rank(
            scored.embedding,
            model.index,
            model.scorer.logit_scale,
            local=scored.local,
            local_weight=scored.config.local_weight,
            scoring=scored.config,
        )
    decide(ranking, model.index, station.policy)
    return (time.perf_counter() - t0) * 1e3


def _encoder_arms(station, frames: list[np.ndarray], settings) -> None:
    """The tiled encode alone, this front end against the one before (8 views per forward, unfused)."""
    from inspector.frame.scorer import front_end
    from models.dense_map import DenseEncoder

    scorer = station.model.scorer
    visual = scorer.bundle.model.visual
    args = (visual, tuple(visual.preprocess_cfg["mean"]), tuple(visual.preprocess_cfg["std"]))
    fe = front_end(scorer, settings)
    arms = {
        "now (CPU: 1 view per forward, channels_last, BatchNorm folded)": DenseEncoder(*args, scorer.bundle.device, fe),
        "before (8 views per forward, contiguous, BatchNorm separate)": DenseEncoder(
            *args, scorer.bundle.device, fe, batch_size=8, channels_last=False, fuse=False
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in arms}
    names = list(arms)
    for i, rgb in enumerate(frames):
        for k in names[i % 2 :] + names[: i % 2]:
            t0 = time.perf_counter()
            arms[k].encode(rgb)
            times[k].append((time.perf_counter() - t0) * 1e3)
    print("\n| 2448x2048 tiled encode (interleaved) | p50 ms | max ms |\n|---|---:|---:|")
    for k, values in times.items():
        s = stats_ms(values)
        print(f"| {k} | {s['p50']:.0f} | {s['max']:.0f} |")
    ratio = statistics.median(b / a for a, b in zip(*times.values()))
    print(f"\nmedian per-frame ratio before / now: {ratio:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.frontend_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="inspector-default-v1")
    parser.add_argument("--frames", type=int, default=40, help="640x480 frames (each scored by every variant)")
    parser.add_argument("--large-frames", type=int, default=3, help="2448x2048 frames (default settings)")
    parser.add_argument("--descriptions", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    from inspector.frame.scorer import load_scorer
    from inspector.station import Station

    station = Station(load_scorer(args.model, "cpu"), bench_library(args.descriptions))
    variants = _variants()
    frames = synthetic_frames(8, (640, 480))
    for rgb in frames[:2]:  # warm-up
        for settings in variants.values():
            _one(station, rgb, settings)
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for i in range(args.frames):
        rgb = frames[i % len(frames)]
        for k in names[i % len(names) :] + names[: i % len(names)]:
            times[k].append(_one(station, rgb, variants[k]))
    print(f"`{command_line('bench.frontend_cost', argv)}`  \n{machine('cpu', args.threads)}\n")
    print(f"640x480, {args.descriptions} descriptions, {args.frames} frames per variant (interleaved)\n")
    print(f"| variant | p50 ms | p95 ms | x '{REF}' (median per-frame ratio) |\n|---|---:|---:|---:|")
    ref = times[REF]
    for k, values in times.items():
        s = stats_ms(values)
        ratio = statistics.median(v / r for v, r in zip(values, ref))
        print(f"| {k} | {s['p50']:.1f} | {s['p95']:.1f} | {ratio:.2f} |")
    if args.large_frames:
        large = synthetic_frames(args.large_frames, (2448, 2048))
        tiled = variants[REF]
        _one(station, large[0], tiled)
        big = [_one(station, rgb, tiled) for rgb in large]
        s = stats_ms(big)
        print(
            f"\n2448x2048, {REF} (whole view + 42 native 448-px tiles), {len(big)} frames: p50 {s['p50']:.0f} ms,"
            f" max {s['max']:.0f} ms"
        )
        _encoder_arms(station, large, tiled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
