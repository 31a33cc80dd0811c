"""Drift alarms (issue 17): detection delay per camera shift and false alarms per 10,000 parts.

    python -m bench.drift_alarms [--model inspector-tiny] [--pool 300] [--runs 20] [--stable 100000]

Per-part statistics (score, margin, #1 label, review lane, brightness, sharpness) are computed by
real inference on generated parts (models.synth test split, 96 px): a reference pool and one pool
per shift (lighting x1.5, lighting x0.7, blur sigma 2, hole/burn parts only = a new defect type).
Streams are then resampled from the pools (the monitor is fed statistics directly: inference of
100,000 frames would take hours here; pools are cached by bench.drift_pools). Delay: parts after the
shift until the alarm, over --runs runs with the station's default settings, with the metrics that
fired. Stable: --stable parts resampled from the reference pool itself, and as many from another pool
of the same line (seed 3: its own sampling difference from the reference is held for the whole
stream, so it is the harsher test with small pools). Writes bench/results/drift_alarms.{json,svg}
(drift_alarms_MODEL_poolN.{json,svg} for another model).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.drift_pools import NEW, PoolCache
from inspector.drift.monitor import DriftMonitor, DriftSettings

OUT = Path(__file__).parent / "results"


def pools(model: str, n: int) -> tuple[dict[str, list], PoolCache]:
    """Per-part statistics from real inference, cached in bench/results/drift_pools.json.gz."""
    cache = PoolCache(model)
    out = {
        "reference": cache.pool(1, n),
        "stable (another pool)": cache.pool(3, n),
        "lighting x1.5": cache.pool(3, n, gain=1.5),
        "lighting x0.7": cache.pool(3, n, gain=0.7),
        "blur sigma 2": cache.pool(3, n, blur=2.0),
        "new defect type (hole, burn)": cache.pool(2, n, NEW),
    }
    return out, cache


def delay(ref: list, shifted: list, settings: DriftSettings, rng: np.random.Generator, cap: int = 2000):
    """(parts after the shift until the alarm, -1 for an alarm before it, None for none; what fired)."""
    m = DriftMonitor(settings)
    for i in rng.integers(0, len(ref), settings.reference_parts + settings.window_parts):
        if (a := m.add(ref[i])) is not None:
            return -1, a.metrics  # a false alarm before the shift
    for n, i in enumerate(rng.integers(0, len(shifted), cap), start=1):
        if (a := m.add(shifted[i])) is not None:
            return n, a.metrics
    return None, {}


def stable_stream(ref: list, after: list, settings: DriftSettings, rng, parts: int) -> dict:
    """One long stream after one reference: alarms (acknowledged, so the next can rise) and what fired."""
    m = DriftMonitor(settings)
    for i in rng.integers(0, len(ref), settings.reference_parts):
        m.add(ref[i])
    t0 = time.perf_counter()
    alarms, fired = 0, Counter()
    for i in rng.integers(0, len(after), parts):
        if (a := m.add(after[i])) is not None:
            alarms += 1
            fired.update(a.metrics.keys())
            m.acknowledge()
    return {
        "parts": parts,
        "alarms": alarms,
        "per_10000": 10_000 * alarms / parts,
        "metrics_fired": dict(fired),
        "monitor_us_per_part": 1e6 * (time.perf_counter() - t0) / parts,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="inspector-tiny")
    ap.add_argument("--pool", type=int, default=300)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--stable", type=int, default=100_000)
    args = ap.parse_args()
    settings = DriftSettings()
    p, cache = pools(args.model, args.pool)
    rng = np.random.default_rng(0)
    result = {
        "command": f"python -m bench.drift_alarms --model {args.model} --pool {args.pool} --runs {args.runs}"
        f" --stable {args.stable}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "model_id": cache.model_id,
        "settings": settings.__dict__,
        "pool_inference_s_this_run": cache.inference_s,
        "cpus": os.cpu_count(),
        "note": "shared 2-core CPU; streams resampled from per-part statistics of real inference",
        "shifts": {},
    }
    for name, pool in p.items():
        if name in ("reference", "stable (another pool)"):
            continue
        runs = [delay(p["reference"], pool, settings, rng) for _ in range(args.runs)]
        found = [d for d, _ in runs if d is not None and d > 0]
        result["shifts"][name] = {
            "detected": len(found),
            "runs": args.runs,
            "false_before_shift": sum(d == -1 for d, _ in runs),
            "median_delay": float(np.median(found)) if found else None,
            "max_delay": max(found) if found else None,
            "within_500": sum(d <= 500 for d in found),
            "metrics_fired": dict(Counter(k for d, m in runs if d and d > 0 for k in m)),
        }
        print(name, result["shifts"][name], flush=True)
    # The same pool as the reference (stationary by construction), and another pool of the same line.
    result["stable"] = stable_stream(p["reference"], p["reference"], settings, rng, args.stable)
    result["stable_another_pool"] = stable_stream(
        p["reference"], p["stable (another pool)"], settings, rng, args.stable
    )
    print(result["stable"], result["stable_another_pool"], flush=True)
    OUT.mkdir(exist_ok=True)
    name = "drift_alarms" if args.model == "inspector-tiny" else f"drift_alarms_{args.model}_pool{args.pool}"
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(result["shifts"])
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.bar(range(len(names)), [result["shifts"][n]["median_delay"] or 0 for n in names])
        ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
        ax.axhline(500, color="red", ls="--", label="target: 500 parts")
        ax.set_ylabel("median parts to alarm")
        ax.legend()
        fig.tight_layout()
        fig.savefig(OUT / f"{name}.svg")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
