"""A new defect type (issue 17): which drift statistic catches it, chosen on validation seeds and
measured on other seeds.

    python -m bench.drift_novelty [--model inspector-default-v1] [--pool 300] [--runs 20] [--stable 50000]

Pools of per-part statistics from real inference (96-px generated parts; the reference line shows
ok/scratch/crack/stain/pitting/dent, the new type is hole and burn parts only). Validation seeds:
reference 1, stable 3, new 2; test seeds: reference 5, stable 6, new 8. Unlike bench.drift_alarms,
the stable stream after the reference comes from ANOTHER pool of the same line (different parts),
which is the harder, more honest false-alarm test. Each candidate is a set of monitored metrics
(inspector.drift.monitor) with the station's default settings; the chosen one has the most runs
alarmed within 500 parts on validation with no false alarm; its test figures are what counts.
Writes bench/results/drift_novelty.json.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from inspector.capture.samples import sample_parts
from inspector.config import LibraryConfig
from inspector.drift.monitor import ALL_METRICS, DriftMonitor, DriftSettings
from inspector.drift.stats import part_stats
from inspector.frame.records import Frame
from inspector.library.labels import load_library
from inspector.station import Station

OUT = Path(__file__).parent / "results"
KNOWN = ("ok", "scratch", "crack", "stain", "pitting", "dent")
SEEDS = {"validation": (1, 3, 2), "test": (5, 6, 8)}  # reference, stable, new
CANDIDATES = {
    "all (station default)": ALL_METRICS,
    "label mix": ("label",),
    "open-set rate": ("open_set",),
    "label mix + open-set rate": ("label", "open_set"),
    "score + margin": ("score", "margin"),
}


def pools(model: str, n: int) -> dict[int, list]:
    from inspector.frame.scorer import load_scorer

    st = Station(load_scorer(model, "cpu"), load_library(LibraryConfig().path))
    now = datetime.now(UTC)
    out = {}
    for ref, stable, new in SEEDS.values():
        for seed, defects in ((ref, KNOWN), (stable, KNOWN), (new, ("hole", "burn"))):
            images = [p.rgb for p in sample_parts(n, size=96, seed=seed, defects=defects)]
            out[seed] = [part_stats(st.inspect(Frame(im, now, "cam", i))) for i, im in enumerate(images)]
    return out


def run(ref: list, after: list, metrics: tuple, settings: DriftSettings, rng, length: int) -> int | None:
    """Parts after the reference (and one full window of it) until an alarm; None: none in `length`."""
    m = DriftMonitor(settings, metrics=metrics)
    for i in rng.integers(0, len(ref), settings.reference_parts + settings.window_parts):
        if m.add(ref[i]) is not None:
            return 0
    for n, i in enumerate(rng.integers(0, len(after), length), start=1):
        if m.add(after[i]) is not None:
            return n
    return None


def evaluate(p: dict, seeds: tuple, metrics: tuple, runs: int, stable: int, settings: DriftSettings) -> dict:
    ref, steady, new = (p[s] for s in seeds)
    rng = np.random.default_rng(0)
    delays = [run(ref, new, metrics, settings, rng, 2000) for _ in range(runs)]
    found = [d for d in delays if d is not None]
    false = 0
    for _ in range(max(1, stable // 10_000)):  # 10,000-part stable streams, each after its own reference
        false += run(ref, steady, metrics, settings, rng, 10_000) is not None
    return {
        "within_500": sum(d <= 500 for d in found),
        "detected_within_2000": len(found),
        "median_delay": float(np.median(found)) if found else None,
        "runs": runs,
        "stable_streams_of_10000_with_an_alarm": false,
        "stable_streams": max(1, stable // 10_000),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="inspector-default-v1")
    ap.add_argument("--pool", type=int, default=300)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--stable", type=int, default=50_000)
    args = ap.parse_args()
    settings = DriftSettings()
    t0 = time.perf_counter()
    p = pools(args.model, args.pool)
    result = {
        "command": f"python -m bench.drift_novelty --model {args.model} --pool {args.pool} --runs {args.runs}"
        f" --stable {args.stable}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "pool_inference_s": time.perf_counter() - t0,
        "open_set_rate": {str(s): float(np.mean([x.open_set for x in v])) for s, v in p.items()},
        "validation": {},
    }
    for name, metrics in CANDIDATES.items():
        result["validation"][name] = evaluate(p, SEEDS["validation"], metrics, args.runs, args.stable, settings)
        print("validation", name, result["validation"][name], flush=True)
    ok = {k: v for k, v in result["validation"].items() if v["stable_streams_of_10000_with_an_alarm"] == 0}
    chosen = max(ok, key=lambda k: (ok[k]["within_500"], -(ok[k]["median_delay"] or 1e9))) if ok else None
    result["chosen"] = chosen
    if chosen is not None:
        result["test"] = evaluate(p, SEEDS["test"], CANDIDATES[chosen], args.runs, args.stable, settings)
        print("test", chosen, result["test"], flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "drift_novelty.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
