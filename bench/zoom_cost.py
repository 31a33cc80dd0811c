"""What the coarse-to-fine zoom adds to a heatmap request, side by side in one run (station path).

    python -m bench.zoom_cost [--model inspector-default-v1] [--frames 6] [--windows 1,2] [--window 128]
                              [--threads N]

Each frame (640x480, 1024x1024, 2448x2048 generated defects) is inspected once, then its #1
candidate is explained (inspector.frame.explain.explain_candidate, what the operator view's worker
calls) with zoom off and with each zoom_windows value, in rotating order, so load from other
processes hits all variants alike. Reported: p50 ms per variant and the median per-frame ratio to
zoom off. Library: the generator's 8 labels with their held-out descriptions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.perf_common import command_line, machine, set_threads, synthetic_frames


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, time, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.zoom_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="inspector-default-v1")
    parser.add_argument("--frames", type=int, default=6, help="frames per size")
    parser.add_argument("--windows", default="1,2", help="zoom_windows values besides 0")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    from inspector.frame.explain import explain_candidate
    from inspector.frame.records import Frame, utc_now
    from inspector.frame.scorer import load_scorer
    from inspector.frame.scoring import ScoringSettings
    from inspector.library.labels import Label, Library
    from inspector.station import Station
    from models.synth import DEFECT_TYPES, heldout_descriptions

    labels = tuple(
        Label(d, d.title(), "accept" if d == "ok" else "rework", 0 if d == "ok" else 1, tuple(heldout_descriptions(d)))
        for d in DEFECT_TYPES
    )
    station = Station(load_scorer(args.model, "cpu"), Library("zoom-cost", labels))
    variants = {0: ScoringSettings()} | {
        k: ScoringSettings(zoom_windows=k, zoom_window=args.window) for k in map(int, args.windows.split(","))
    }
    print(f"`{command_line('bench.zoom_cost', argv)}`  \n{machine('cpu', args.threads)}\n")
    print("| frame | zoom_windows | p50 ms | x zoom off (median per-frame ratio) |\n|---|---:|---:|---:|")
    for size in ((640, 480), (1024, 1024), (2448, 2048)):
        frames = synthetic_frames(args.frames, size, seed=3)
        times: dict[int, list[float]] = {k: [] for k in variants}
        names = list(variants)
        for i, rgb in enumerate([frames[0], *frames]):  # the first frame warms up
            station.scoring = variants[0]
            result = station.inspect(Frame(rgb, utc_now(), "cam", i))
            for k in names[i % len(names) :] + names[: i % len(names)]:
                station.scoring = variants[k]
                t = time.perf_counter()
                explain_candidate(station, result, 1)
                if i:
                    times[k].append(1e3 * (time.perf_counter() - t))
        for k, values in times.items():
            ratio = statistics.median(v / r for v, r in zip(values, times[0]))
            print(f"| {size[0]}x{size[1]} | {k} | {statistics.median(values):.0f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
