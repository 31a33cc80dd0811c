"""History search at scale (issue 17): p95 query time and recall@10 under filters over N synthetic
vectors, storage per inspection, a comparison of vector indexes, and precision@10 of text search
on held-out generated defects embedded by the shipped model.

    python -m bench.search_scale [--n 1000000] [--queries 200] [--compare 100000] [--precision 64]

Synthetic vectors: unit vectors around 2,000 random centres (so they cluster as image embeddings
do); queries are stored vectors plus noise. Writes bench/results/search_scale.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from inspector.search.ann import FilteredIndex
from inspector.search.embed import N_LOCAL, unit

DIM = 256  # the shipped model's embedding size
OUT = Path(__file__).parent / "results"


def synthetic(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(2000, DIM)))
    out = np.empty((n, DIM), np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        out[s:e] = unit(centres[rng.integers(0, 2000, e - s)] + 0.06 * rng.normal(size=(e - s, DIM)))
    return out


def queries(vectors: np.ndarray, q: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return unit(vectors[rng.integers(0, len(vectors), q)] + 0.05 * rng.normal(size=(q, DIM)))


def recall(got: list[tuple[int, float]], truth: list[tuple[int, float]]) -> float:
    return len({o for o, _ in got} & {o for o, _ in truth}) / max(1, len(truth))


def scale(n: int, n_queries: int) -> dict:
    t0 = time.perf_counter()
    vectors = synthetic(n)
    rng = np.random.default_rng(2)
    time_order = np.arange(n)  # inspection ids grow with time
    label = rng.integers(0, 8, n)
    verdict = rng.integers(0, 3, n)
    t_gen = time.perf_counter() - t0
    index = FilteredIndex(DIM)
    t0 = time.perf_counter()
    index.add(np.arange(n, dtype=np.int64), vectors)
    index.flush()
    t_build = time.perf_counter() - t0
    filters = {
        "none": None,
        "last half (time)": time_order >= n // 2,
        "label (1 of 8)": label == 3,
        "last half + verdict (1 of 3)": (time_order >= n // 2) & (verdict == 1),
        "last 1% (time)": time_order >= n - n // 100,
    }
    qs = queries(vectors, n_queries)
    rows = {}
    for name, mask in filters.items():
        times, recalls = [], []
        for q in qs:
            t = time.perf_counter()
            # the mask as the service builds it per query: numpy comparisons over every inspection
            m = None if mask is None else (mask & (time_order >= 0))
            got = index.search(q, m, 10)
            times.append(1000 * (time.perf_counter() - t))
            recalls.append(recall(got, index.search(q, m, 10, exact=True)))
        rows[name] = {
            "allowed": int(n if mask is None else mask.sum()),
            "p50_ms": float(np.percentile(times, 50)),
            "p95_ms": float(np.percentile(times, 95)),
            "recall_at_10": float(np.mean(recalls)),
        }
        print(name, rows[name], flush=True)
    return {"n_vectors": n, "dim": DIM, "generate_s": t_gen, "build_s": t_build, "ivf": index.uses_ivf, "filters": rows}


def storage(n: int = 2000) -> dict:
    """Bytes per inspection in the side file: 1 global + N_LOCAL local float16 vectors."""
    from inspector.search.vectors import VectorStore

    with tempfile.TemporaryDirectory() as d:
        store = VectorStore(Path(d) / "s.db")
        vecs = synthetic(n * (1 + N_LOCAL), seed=5).reshape(n, 1 + N_LOCAL, DIM)
        for i in range(n):
            store.put(i + 1, "m" * 64, vecs[i])
        store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = store.bytes_on_disk()
        store.close()
    return {
        "inspections": n,
        "vectors_per_inspection": 1 + N_LOCAL,
        "bytes_per_inspection": size / n,
        "raw_vector_bytes": (1 + N_LOCAL) * DIM * 2,
        # arithmetic, not measured: float32 row + SQ8 code + IVF id + owner + row position
        "in_memory_bytes_per_vector": DIM * 4 + DIM + 8 + 8 + 8,
    }


def compare(n: int, n_queries: int = 100) -> dict:
    """Build time, unfiltered and 25 %-filtered p95 and recall@10 of each index at n vectors."""
    vectors = synthetic(n, seed=7)
    qs = queries(vectors, n_queries, seed=8)
    mask = np.random.default_rng(9).random(n) < 0.25
    truth = [np.argsort(-(vectors @ q))[:10] for q in qs]
    truth_f = [np.flatnonzero(mask)[np.argsort(-(vectors[mask] @ q))[:10]] for q in qs]
    out: dict = {}

    def measure(name: str, build, search, search_f) -> None:
        t = time.perf_counter()
        handle = build()
        b = time.perf_counter() - t
        res = {"build_s": b}
        for tag, fn, tr in (("unfiltered", search, truth), ("filter 25%", search_f, truth_f)):
            if fn is None:
                continue
            times, rec = [], []
            for q, want in zip(qs, tr):
                t = time.perf_counter()
                got = fn(handle, q)
                times.append(1000 * (time.perf_counter() - t))
                rec.append(len(set(map(int, got)) & set(map(int, want))) / 10)
            res[tag] = {"p95_ms": float(np.percentile(times, 95)), "recall_at_10": float(np.mean(rec))}
        out[name] = res
        print(name, res, flush=True)

    def fi_build():
        idx = FilteredIndex(DIM)
        idx.add(np.arange(n, dtype=np.int64), vectors)
        idx.flush()
        return idx

    # at this n the filtered query goes to the IVF only if the mask allows more than EXACT_MAX_ROWS
    measure(
        "faiss IVF-SQ8 (this code)",
        fi_build,
        lambda h, q: [o for o, _ in h.search(q, None, 10)],
        lambda h, q: [o for o, _ in h.search(q, mask, 10)],
    )

    def us_build():
        from usearch.index import Index

        idx = Index(ndim=DIM, metric="ip", dtype="f16")
        idx.add(np.arange(n), vectors, threads=2)
        return idx

    allowed = set(np.flatnonzero(mask).tolist())
    measure(
        "usearch HNSW f16",
        us_build,
        lambda h, q: h.search(q, 10).keys,
        lambda h, q: [k for k in h.search(q, 80).keys if int(k) in allowed][:10],
    )  # post-filter

    def hn_build():
        import hnswlib

        idx = hnswlib.Index(space="ip", dim=DIM)
        idx.init_index(max_elements=n, ef_construction=100, M=16)
        idx.add_items(vectors, np.arange(n), num_threads=2)
        idx.set_ef(64)
        return idx

    measure(
        "hnswlib HNSW",
        hn_build,
        lambda h, q: h.knn_query(q, 10)[0][0],
        lambda h, q: h.knn_query(q, 10, filter=lambda i: i in allowed)[0][0],
    )

    def sv_build():
        import sqlite_vec

        conn = sqlite3.connect(":memory:")
        if not hasattr(conn, "enable_load_extension"):
            raise RuntimeError("this Python's sqlite3 cannot load extensions (sqlite-vec needs it)")
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{DIM}] distance_metric=cosine, f INTEGER)")
        conn.executemany(
            "INSERT INTO v(rowid, embedding, f) VALUES (?, ?, ?)",
            ((i, vectors[i].tobytes(), int(mask[i])) for i in range(n)),
        )
        return conn

    try:
        sv_build()
    except RuntimeError as exc:
        out["sqlite-vec"] = {"unavailable": str(exc)}
        return {"n_vectors": n, "dim": DIM, "queries": n_queries, "indexes": out}
    measure(
        "sqlite-vec (exact)",
        sv_build,
        lambda h, q: [
            r[0] for r in h.execute("SELECT rowid FROM v WHERE embedding MATCH ? AND k = 10", (q.tobytes(),))
        ],
        lambda h, q: [
            r[0] for r in h.execute("SELECT rowid FROM v WHERE embedding MATCH ? AND k = 10 AND f = 1", (q.tobytes(),))
        ],
    )
    return {"n_vectors": n, "dim": DIM, "queries": n_queries, "indexes": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--compare", type=int, default=0, help="also compare the four indexes at this many vectors")
    ap.add_argument("--precision", type=int, default=0, help="also precision@10 on this many generated parts")
    args = ap.parse_args()
    result = {
        "command": "python -m bench.search_scale " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "note": "shared 2-core CPU: other engineers' jobs ran meanwhile",
    }
    if args.compare:
        result["compare"] = compare(args.compare)
    result["storage"] = storage()
    print(result["storage"], flush=True)
    if args.n:
        result["scale"] = scale(args.n, args.queries)
    if args.precision:
        from bench.search_precision import precision_at_10

        result["precision"] = precision_at_10(args.precision)
    result["load_after"] = os.getloadavg()
    OUT.mkdir(exist_ok=True)
    (OUT / "search_scale.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
