"""Cost of a Grad-CAM heatmap relative to one forward pass, measured side by side in one run.

    python -m bench.gradcam_cost [--quick] [--models inspector-default-v1,inspector-tiny,ViT-B-32]
                                 [--frames 60] [--frame-size 640x480] [--device cpu|cuda] [--threads N]

Per frame, in this order: forward (TorchScorer.embed_images of the frame: preprocess + image
encode), the candidate map (inspector.frame.explain.explain_candidate for #1: what the operator view's
heatmap worker calls), the contrast map ("#1 and not #2", versus_rank=2), forward again. Ratio =
map time / mean of the two forwards around it, per frame (paired, so a load change on a shared
machine moves both sides); the table shows the median and p95 of the per-frame ratios. A map
includes its preprocess, the hooked forward, the backward down to the target layer, the upsample
to the frame size, the overlay and the hottest-region search (everything the UI receives).

Interference (default model): frame latency of Station.inspect on the capture thread, alone and
while another thread computes heatmaps back to back (how the app runs them: ui/widgets/heatmap_worker.py
on its own QThread). Heatmaps do not block capture, but on a 2-core CPU they share the cores.

Capture path check: the sources of the per-frame path (Station.inspect, inspector.frame.live, the
capture worker) are searched for any Grad-CAM call; the result is printed with the callers of
explain_candidate.
"""

from __future__ import annotations

import argparse
import inspect
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.perf_common import (
    NO_GPU,
    Target,
    command_line,
    machine,
    md_table,
    parse_size,
    set_threads,
    stats_ms,
    synthetic_frames,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 3.0
CPU_P95_MS = 1500.0  # station-requirements P2 (CPU)
GPU_P95_MS = 300.0  # station-requirements P2 (GPU)


def capture_path_check() -> dict[str, Any]:
    """Does any part of the per-frame path call Grad-CAM? (a static search of the sources)"""
    from inspector.station import Station

    pattern = re.compile(r"explain|Explainer|GradCAM|grad_cam")
    path_sources = {
        "inspector.station.Station.inspect": inspect.getsource(Station.inspect),
        "inspector/frame/live.py": (ROOT / "inspector" / "live.py").read_text(encoding="utf-8"),
        "ui/operator/capture_worker.py": (ROOT / "ui" / "capture_worker.py").read_text(encoding="utf-8"),
    }
    hits = {name: sorted({m.group(0) for m in pattern.finditer(src)}) for name, src in path_sources.items()}
    callers = []
    for folder in ("inspector", "ui"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if re.search(r"\bexplain_(candidate|record)\(", text) and path.name != "explain.py":
                callers.append(str(path.relative_to(ROOT)))
    clean = not any(hits.values())
    why = {
        "ui/widgets/heatmap_worker.py": "the operator view's worker, a Task on its own QThread, one map at a time, newest "
        "request per slot",
        "ui/audit/view.py": "the auditor's record detail, a Task on request (ui/audit/inspection_detail.py)",
        "inspector/commands/inspect.py": "`inspector rank --heatmap`, after the ranking is printed",
    }
    statement = (
        (
            "No Grad-CAM call on the capture path: Station.inspect, inspector/frame/live.py (LiveCapture.step) and "
            "ui/operator/capture_worker.py contain none. Heatmaps are computed on request only, by "
            + "; ".join(f"{c} ({why.get(c, 'on request')})" for c in callers)
        )
        if clean
        else f"Grad-CAM references found on the capture path: {hits}"
    )
    return {
        "path_sources": list(path_sources),
        "hits": hits,
        "explain_callers": callers,
        "clean": clean,
        "statement": statement,
    }


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, 1000 * (time.perf_counter() - t0)


def measure_model(ref: str, frames: list[np.ndarray], n: int, device: str) -> dict[str, Any]:
    from inspector.frame.explain import explain_candidate
    from inspector.frame.records import Frame, utc_now
    from inspector.frame.scorer import load_scorer
    from inspector.library.labels import load_library, seed_library_dir
    from inspector.station import Station

    (scorer, load_ms) = _timed(load_scorer, ref, device)
    station = Station(scorer, load_library(seed_library_dir() / "generic_surfaces.yaml"))
    _, build_ms = _timed(lambda: station.explainer)
    times: dict[str, list[float]] = {"forward": [], "map": [], "contrast": [], "forward_after": []}
    ratios: dict[str, list[float]] = {"map": [], "contrast": []}
    layer = ""
    for i in range(n + 2):  # 2 warm-up frames: first calls allocate and pick kernels
        rgb = frames[i % len(frames)]
        result = station.inspect(Frame(rgb, utc_now(), "bench", i))
        _, f1 = _timed(scorer.embed_images, [rgb])
        heat, t_map = _timed(explain_candidate, station, result, 1)
        _, t_con = _timed(explain_candidate, station, result, 1, 2)
        _, f2 = _timed(scorer.embed_images, [rgb])
        layer = heat.layer
        if i < 2:
            continue
        fwd = (f1 + f2) / 2
        for key, value in (("forward", f1), ("map", t_map), ("contrast", t_con), ("forward_after", f2)):
            times[key].append(value)
        ratios["map"].append(t_map / fwd)
        ratios["contrast"].append(t_con / fwd)
    return {
        "model": ref,
        "model_id": scorer.model_id,
        "device": scorer.device,
        "layer": layer,
        "load_ms": load_ms,
        "explainer_build_ms": build_ms,
        "frames": n,
        "times_ms": {k: stats_ms(v) for k, v in times.items()},
        "ratio": {
            k: {
                "median": statistics.median(v),
                "p95": float(np.percentile(v, 95)),
                "of_medians": statistics.median(times[k])
                / statistics.median(times["forward"] + times["forward_after"]),
            }
            for k, v in ratios.items()
        },
    }


def interference(ref: str, frames: list[np.ndarray], n: int, device: str) -> dict[str, Any]:
    """Station.inspect latency alone and with a heatmap thread running back to back."""
    from inspector.frame.explain import explain_candidate
    from inspector.frame.records import Frame, utc_now
    from inspector.frame.scorer import load_scorer
    from inspector.library.labels import load_library, seed_library_dir
    from inspector.station import Station

    station = Station(load_scorer(ref, device), load_library(seed_library_dir() / "generic_surfaces.yaml"))
    first = station.inspect(Frame(frames[0], utc_now(), "bench", 0))
    explain_candidate(station, first, 1)  # warm-up

    def run() -> list[float]:
        out = []
        for i in range(n):
            _, ms = _timed(station.inspect, Frame(frames[i % len(frames)], utc_now(), "bench", i))
            out.append(ms)
        return out

    alone = run()
    stop, maps = threading.Event(), []

    def heatmaps() -> None:
        while not stop.is_set():
            _, ms = _timed(explain_candidate, station, first, 1)
            maps.append(ms)

    worker = threading.Thread(target=heatmaps, name="heatmap", daemon=True)
    worker.start()
    try:
        busy = run()
    finally:
        stop.set()
        worker.join()
    return {
        "frames": n,
        "inspect_alone_ms": stats_ms(alone),
        "inspect_with_heatmaps_ms": stats_ms(busy),
        "heatmaps_done": len(maps),
        "heatmap_ms_concurrent": stats_ms(maps),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gradcam_cost", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--models", default="inspector-default-v1,inspector-tiny,ViT-B-32")
    p.add_argument("--frames", type=int, default=60, help="timed frames per model")
    p.add_argument("--interference-frames", type=int, default=100, help="0 to skip")
    p.add_argument("--frame-size", default="640x480")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    started = time.monotonic()
    try:
        size = parse_size(args.frame_size)
    except ValueError as exc:
        p.error(str(exc))
    if args.quick:
        args.frames, args.interference_frames = 5, 8
    set_threads(args.threads)
    info = machine(args.device, args.threads)
    frames = synthetic_frames(16, size)
    check = capture_path_check()
    results = []
    for ref in [m for m in args.models.split(",") if m]:
        r = measure_model(ref, frames, args.frames, args.device)
        results.append(r)
        print(
            f"{ref}: forward p50 {r['times_ms']['forward']['p50']:.1f} ms, map x{r['ratio']['map']['median']:.2f}, "
            f"contrast x{r['ratio']['contrast']['median']:.2f}",
            flush=True,
        )
    inter = (
        interference(results[0]["model"], frames, args.interference_frames, args.device)
        if args.interference_frames
        else None
    )

    on_gpu = args.device.startswith("cuda")
    targets = []
    for r in results:
        for key, what in (("map", "one candidate's map"), ("contrast", "contrast map (#1 not #2)")):
            targets.append(
                Target(f"{what} / one forward, {r['model']}", f"<= {TARGET_RATIO:.0f}x").check(
                    r["ratio"][key]["median"],
                    TARGET_RATIO,
                    "{:.2f}x",
                    note=f"median of per-frame ratios (p95 {r['ratio'][key]['p95']:.2f}x)",
                )
            )
    d = results[0]
    p95 = max(d["times_ms"]["map"]["p95"], d["times_ms"]["contrast"]["p95"])
    cpu_t = Target(f"heatmap p95 on CPU, {d['model']} (station-requirements P2)", f"<= {CPU_P95_MS:.0f} ms")
    gpu_t = Target("heatmap p95 on the station GPU (P2)", f"<= {GPU_P95_MS:.0f} ms")
    if on_gpu:
        cpu_t.skip("GPU run")
        gpu_t.check(p95, GPU_P95_MS, "{:.0f} ms")
    else:
        cpu_t.check(p95, CPU_P95_MS, "{:.0f} ms")
        gpu_t.skip(NO_GPU)
    targets += [
        cpu_t,
        gpu_t,
        Target(
            "no Grad-CAM on the capture path",
            "none",
            "none" if check["clean"] else "found",
            check["clean"],
            "static search of the per-frame sources",
        ),
    ]

    rows = []
    for r in results:
        t = r["times_ms"]
        rows.append(
            [
                r["model"],
                r["layer"],
                f"{t['forward']['p50']:.1f}",
                f"{t['map']['p50']:.1f}",
                f"{t['map']['p95']:.1f}",
                f"{t['contrast']['p50']:.1f}",
                f"{t['contrast']['p95']:.1f}",
                f"{r['ratio']['map']['median']:.2f}x",
                f"{r['ratio']['contrast']['median']:.2f}x",
                f"{r['explainer_build_ms']:.0f}",
            ]
        )
    w, h = size
    body = [
        f"## Grad-CAM vs one forward pass ({w}x{h} frames, {args.frames} frames per model, batch 1)",
        "",
        md_table(
            [
                "model",
                "target layer",
                "forward p50 ms",
                "map p50 ms",
                "map p95 ms",
                "contrast p50 ms",
                "contrast p95 ms",
                "map / forward",
                "contrast / forward",
                "explainer build ms",
            ],
            rows,
            align="llrrrrrrrr",
        ),
        "",
        "Ratios are medians of per-frame ratios (map / mean of the forwards just before and after it). "
        "inspector-tiny and ViT-B-32 have random weights (cost only).",
        "",
    ]
    if inter:
        a, b = inter["inspect_alone_ms"], inter["inspect_with_heatmaps_ms"]
        body += [
            f"## Capture-path frame latency while heatmaps run on another thread ({d['model']})",
            "",
            md_table(
                ["Station.inspect", "p50 ms", "p95 ms", "max ms"],
                [
                    ["alone", f"{a['p50']:.1f}", f"{a['p95']:.1f}", f"{a['max']:.1f}"],
                    [
                        f"with a heatmap thread ({inter['heatmaps_done']} maps meanwhile)",
                        f"{b['p50']:.1f}",
                        f"{b['p95']:.1f}",
                        f"{b['max']:.1f}",
                    ],
                ],
            ),
            "",
            "Frames keep flowing while maps are computed (no lock is shared with Station.inspect); the slow-down "
            f"is the two threads sharing {info['cpu_count']} cores.",
            "",
        ]
    body += ["## Capture path", "", check["statement"] + ".", ""]
    if not on_gpu:
        body += [f"GPU (`--device cuda`): {NO_GPU}.", ""]
    notes = ["QUICK RUN: a handful of frames; a smoke test, not the record."] if args.quick else []
    write_results(
        "gradcam_cost",
        command=command_line("bench.gradcam_cost", argv),
        info=info,
        title="Grad-CAM cost relative to a forward pass",
        targets=targets,
        figures={"models": results, "interference": inter, "capture_path": check},
        body="\n".join(body),
        notes=notes,
        started=started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
