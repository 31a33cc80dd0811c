"""What the examples cost: the probe's fit (once per example set) and rank() per frame.

    python -m bench.example_rank_cost [--repeats 2000] [--out bench/results]

Synthetic unit vectors at the shipped model's width (256): L labels with 3 descriptions each, K
examples spread over the labels. Fit: inspector.frame.example_probe.fit_probe (ProbeParams'
defaults, median of 5, the fit memo bypassed). Per frame: inspector.frame.ranking.rank for one image embedding (what
Station.inspect runs after the encoder), the three ranking paths interleaved frame by frame so a
loaded machine's noise falls on all of them: words only (no examples), the calibrated blend, the
probe (the default). Single-threaded BLAS, as the station runs it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from inspector.frame.example_cache import build_cache
from inspector.frame.example_probe import ProbeParams, fit_probe, text_prototypes
from inspector.frame.ranking import build_index, rank
from inspector.library.labels import Label, Library

ROOT = Path(__file__).resolve().parent.parent
DIM = 256
SIZES = ((2, 50), (2, 1000), (3, 1000), (20, 200), (20, 1000))


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _problem(n_labels: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(n_labels, DIM)))
    label_of = np.arange(k) % n_labels
    keys = _unit(centres[label_of] + 0.8 * rng.normal(size=(k, DIM)) / np.sqrt(DIM) * 8)
    texts = _unit(np.repeat(centres, 3, axis=0) + rng.normal(size=(3 * n_labels, DIM)))
    return keys, label_of, texts


def fit_times(repeats: int = 5) -> list[dict[str, float]]:
    """Best-of-`repeats` fit time (ms) and iterations per (labels, examples)."""
    from threadpoolctl import threadpool_limits

    out = []
    with threadpool_limits(limits=1, user_api="blas"):
        for n_labels, k in SIZES:
            keys, label_of, texts = _problem(n_labels, k)
            protos = text_prototypes(texts, np.full(n_labels, 3))
            times, probe = [], None
            for _ in range(repeats):
                t0 = time.perf_counter()
                probe = fit_probe(keys, label_of, protos, np.ones(n_labels, bool), ProbeParams(), reuse=False)
                times.append(1000 * (time.perf_counter() - t0))
            out.append(
                {
                    "labels": n_labels,
                    "examples": k,
                    "fit_ms": float(np.median(times)),
                    "fit_max_ms": max(times),
                    "iterations": probe.iterations,
                }
            )
    return out


def frame_times(n_labels: int, k: int, repeats: int) -> dict[str, dict[str, float]]:
    """p50 / p95 ms of rank() per path, interleaved."""
    keys, label_of, texts = _problem(n_labels, k)
    library = Library("bench", tuple(Label(f"l{i}", f"L{i}", "scrap", 1, ("a", "b", "c")) for i in range(n_labels)))
    embed = lambda _: texts  # noqa: E731 - the descriptions' embeddings, already made
    grouped = [(f"l{c}", [(f"e{i}", keys[i]) for i in np.flatnonzero(label_of == c)]) for c in range(n_labels)]
    indexes = {
        "words only": build_index(library, embed, "m"),
        "blend": build_index(
            library, embed, "m", examples=lambda e, c: build_cache(grouped, np.stack, (e, c), "h", method="blend")
        ),
        "probe (default)": build_index(
            library, embed, "m", examples=lambda e, c: build_cache(grouped, np.stack, (e, c), "h")
        ),
    }
    frames = _unit(np.random.default_rng(1).normal(size=(64, DIM)))
    times: dict[str, list[float]] = {name: [] for name in indexes}
    for i in range(repeats):
        for name, index in indexes.items():
            t0 = time.perf_counter()
            rank(frames[i % len(frames)], index, 100.0)
            times[name].append(1000 * (time.perf_counter() - t0))
    return {n: {"p50_ms": float(np.percentile(t, 50)), "p95_ms": float(np.percentile(t, 95))} for n, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=2000)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    fits = fit_times()
    frames = {f"{n} labels, {k} examples": frame_times(n, k, args.repeats) for n, k in ((3, 1000), (20, 1000))}
    lines = [
        "| labels | examples | fit ms (median of 5) | slowest of 5 | L-BFGS iterations |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {f['labels']} | {f['examples']} | {f['fit_ms']:.1f} | {f['fit_max_ms']:.1f} | {f['iterations']} |"
        for f in fits
    ]
    lines += ["", "| library | path | rank() p50 ms | p95 ms |", "|---|---|---:|---:|"]
    for setup, row in frames.items():
        lines += [f"| {setup} | {name} | {v['p50_ms']:.3f} | {v['p95_ms']:.3f} |" for name, v in row.items()]
    text = "\n".join(lines) + "\n"
    Path(args.out, "example_rank_cost.md").write_text(text)
    Path(args.out, "example_rank_cost.json").write_text(json.dumps({"fit": fits, "frame": frames}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
