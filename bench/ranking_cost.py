"""Ranking cost beyond the image encode, at 10, 1 000 and 100 000 descriptions.

    python -m bench.ranking_cost [--sizes 10,1000,100000] [--labels 50] [--repeats 200] [--dim 256]

Times `inspector.frame.ranking.rank` + `decide` for one image embedding against a library of M
descriptions spread over L labels (random unit embeddings: the cost does not depend on their
values), and prints a markdown table with p50/p95 in milliseconds. Compare with the image encode
of the default model on the same machine (bench.latency) to get the share of the frame time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from inspector.frame.ranking import RankingIndex, decide, rank
from inspector.library.labels import Label, Library


def _index(m: int, n_labels: int, dim: int, rng: np.random.Generator) -> RankingIndex:
    n_labels = min(n_labels, m)
    counts = np.full(n_labels, m // n_labels)
    counts[: m - counts.sum()] += 1
    labels = tuple(
        Label(
            id=f"l{i}",
            name=f"label {i}",
            disposition="accept" if i == 0 else "rework",
            severity=0 if i == 0 else 2,
            descriptions=tuple(f"description {i}-{j}" for j in range(c)),
        )
        for i, c in enumerate(counts)
    )
    emb = rng.normal(size=(m, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    texts = tuple(t for label in labels for t in label.descriptions)
    return RankingIndex(Library("bench", labels), emb, starts, counts.astype(np.int64), texts, "bench", 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,1000,100000")
    ap.add_argument("--labels", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--dim", type=int, default=256)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}")
    print("| descriptions | labels | p50 ms | p95 ms | max ms |")
    print("|---:|---:|---:|---:|---:|")
    for m in (int(s) for s in args.sizes.split(",")):
        index = _index(m, args.labels, args.dim, rng)
        image = rng.normal(size=args.dim).astype(np.float32)
        image /= np.linalg.norm(image)
        for _ in range(5):  # warm-up
            decide(rank(image, index, 50.0, top_k=10), index)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            decide(rank(image, index, 50.0, top_k=10), index)
            times.append(1000 * (time.perf_counter() - t0))
        p50, p95 = np.percentile(times, [50, 95])
        print(f"| {m:,} | {len(index.library.labels)} | {p50:.3f} | {p95:.3f} | {max(times):.3f} |")


if __name__ == "__main__":
    main()
