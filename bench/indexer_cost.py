"""CPU cost of the live search indexer per committed part (issue 17).

    python -m bench.indexer_cost [--model MODEL] [--parts 30] [--size 224]

What SearchIndexer._drain does for each committed inspection, timed: search_vectors with the
ranking's global embedding already given (so only the local tiles are encoded) and VectorStore.put
into a temporary side file. CPU = the thread's CPU time (time.thread_time: torch's worker threads
are not counted, so the torch thread count is pinned to 1 to make it the whole cost); wall beside it.
The first part is a warm-up and not counted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from inspector.capture.samples import sample_parts
from inspector.config import DEFAULT_MODEL, LibraryConfig
from inspector.frame.records import Frame
from inspector.frame.scorer import load_scorer
from inspector.library.labels import load_library
from inspector.search.embed import search_vectors
from inspector.search.vectors import VectorStore
from inspector.station import Station


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--parts", type=int, default=30)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    scorer = load_scorer(args.model, "cpu")
    station = Station(scorer, load_library(LibraryConfig().path))
    parts = sample_parts(args.parts + 1, size=args.size, seed=5)
    results = [station.inspect(Frame(p.rgb, datetime.now(UTC), "cam", i)) for i, p in enumerate(parts)]
    cpu, wall, rank_cpu = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = VectorStore(Path(tmp) / "s.db")
        for i, r in enumerate(results):
            c0, w0 = time.thread_time(), time.perf_counter()
            store.put(i, scorer.model_id, search_vectors(scorer, r.frame.rgb, r.embedding))
            c1, w1 = time.thread_time(), time.perf_counter()
            station.inspect(r.frame)  # the ranking itself, same thread settings, for scale
            c2 = time.thread_time()
            if i:
                cpu.append(c1 - c0)
                wall.append(w1 - w0)
                rank_cpu.append(c2 - c1)
        store.close()
    print(
        f"model {args.model} ({scorer.model_id[:12]}), {args.parts} parts of {args.size} px, 1 torch thread:"
        f" indexer CPU {1000 * np.median(cpu):.0f} ms/part median (p90 {1000 * np.percentile(cpu, 90):.0f}),"
        f" wall {1000 * np.median(wall):.0f} ms; the ranking itself (inspect) {1000 * np.median(rank_cpu):.0f} ms CPU"
    )


if __name__ == "__main__":
    main()
