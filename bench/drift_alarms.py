"""Drift alarms (issue 17): detection delay per camera shift and false alarms per 10,000 parts.

    python -m bench.drift_alarms [--model inspector-tiny] [--pool 300] [--runs 20] [--stable 100000]

Per-part statistics (score, margin, #1 label, review lane, brightness, sharpness) are computed by
real inference on generated parts (models.synth test split, 96 px): a reference pool and one pool
per shift (lighting x1.5, lighting x0.7, blur sigma 2, hole/burn parts only = a new defect type).
Streams are then resampled from the pools (the monitor is fed statistics directly: inference of
100,000 frames would take hours here). Delay: parts after the shift until the alarm, over --runs
runs with the station's default settings. Writes bench/results/drift_alarms.{json,svg}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from inspector.capture.samples import sample_parts
from inspector.capture.simulated import shift_image
from inspector.config import LibraryConfig
from inspector.drift.monitor import DriftMonitor, DriftSettings
from inspector.drift.stats import part_stats
from inspector.frame.records import Frame
from inspector.library.labels import load_library
from inspector.station import Station

OUT = Path(__file__).parent / "results"
KNOWN = ("ok", "scratch", "crack", "stain", "pitting", "dent")


def pools(model: str, n: int) -> dict[str, list]:
    from inspector.frame.scorer import load_scorer

    st = Station(load_scorer(model, "cpu"), load_library(LibraryConfig().path))
    now = datetime.now(UTC)

    def stats(images):
        return [part_stats(st.inspect(Frame(im, now, "cam", i))) for i, im in enumerate(images)]

    ref = [p.rgb for p in sample_parts(n, size=96, seed=1, defects=KNOWN)]
    base = [p.rgb for p in sample_parts(n, size=96, seed=3, defects=KNOWN)]
    return {
        "reference": stats(ref),
        "lighting x1.5": stats([shift_image(im, gain=1.5) for im in base]),
        "lighting x0.7": stats([shift_image(im, gain=0.7) for im in base]),
        "blur sigma 2": stats([shift_image(im, blur_sigma=2.0) for im in base]),
        "new defect type (hole, burn)": stats(
            [p.rgb for p in sample_parts(n, size=96, seed=2, defects=("hole", "burn"))]
        ),
    }


def delay(ref: list, shifted: list, settings: DriftSettings, rng: np.random.Generator, cap: int = 2000) -> int | None:
    m = DriftMonitor(settings)
    for i in rng.integers(0, len(ref), settings.reference_parts + settings.window_parts):
        if m.add(ref[i]) is not None:
            return -1  # a false alarm before the shift
    for n, i in enumerate(rng.integers(0, len(shifted), cap), start=1):
        if m.add(shifted[i]) is not None:
            return n
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="inspector-tiny")
    ap.add_argument("--pool", type=int, default=300)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--stable", type=int, default=100_000)
    args = ap.parse_args()
    settings = DriftSettings()
    t0 = time.perf_counter()
    p = pools(args.model, args.pool)
    t_pool = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    result = {
        "command": f"python -m bench.drift_alarms --model {args.model} --pool {args.pool} --runs {args.runs}"
        f" --stable {args.stable}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "settings": settings.__dict__,
        "pool_inference_s": t_pool,
        "cpus": os.cpu_count(),
        "note": "shared 2-core CPU; streams resampled from per-part statistics of real inference",
        "shifts": {},
    }
    for name, pool in p.items():
        if name == "reference":
            continue
        delays = [delay(p["reference"], pool, settings, rng) for _ in range(args.runs)]
        found = [d for d in delays if d is not None and d > 0]
        result["shifts"][name] = {
            "detected": len(found),
            "runs": args.runs,
            "median_delay": float(np.median(found)) if found else None,
            "max_delay": max(found) if found else None,
            "within_500": sum(d <= 500 for d in found),
        }
        print(name, result["shifts"][name], flush=True)
    m = DriftMonitor(settings)
    t0 = time.perf_counter()
    alarms = 0
    for i in rng.integers(0, len(p["reference"]), args.stable):
        if m.add(p["reference"][i]) is not None:
            alarms += 1
            m.acknowledge()
    result["stable"] = {
        "parts": args.stable,
        "alarms": alarms,
        "per_10000": 10_000 * alarms / args.stable,
        "monitor_us_per_part": 1e6 * (time.perf_counter() - t0) / args.stable,
    }
    print(result["stable"], flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "drift_alarms.json").write_text(json.dumps(result, indent=1))
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
        fig.savefig(OUT / "drift_alarms.svg")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
