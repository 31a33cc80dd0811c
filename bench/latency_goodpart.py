"""Per-frame latency with and without a good-part model in force, side by side in one process.

    python -m bench.latency_goodpart [--model inspector-default-v1] [--frames 200] [--chunk 25]
                                     [--descriptions 1000] [--frame-size 640x480] [--quick]

The same frames, the same Station and the same loaded model through bench.latency's per-frame
loop (decode -> Frame -> Station.inspect -> verdict, no database commit), in four arms:
"none" (no good-part model), "global" (the default: whole-part embedding from its own 448-px
forward), "local" (--cells local: the 448-px forward's feature-grid cells against a bank of
MAX_BANK rows, the most a build keeps), "global, ranking's forward" (--input-size 0: the
ranking's own embedding, no second forward) and "mid, ranking's forward" (--cells mid: the trunk's
mid-level statistics captured during the ranking's forward). The arms alternate in chunks of --chunk frames so
load from other processes falls on all of them alike.

The good-part models are fitted with the station's own code (inspector.frame.good_parts.fit) on
generated parts (models.synth, a seed the timed frames do not use): cost depends on the forward
and the bank's size, not on which parts filled it. They are put in force as refresh_good_model
would (Station._good), without a database.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench.latency import TARGET_P95_MS, Run, TimedPreprocess, _load, _station, per_frame
from bench.perf_common import (
    Target,
    command_line,
    encode_frames,
    machine,
    md_table,
    parse_size,
    set_threads,
    synthetic_frames,
    write_results,
)

# arm -> (cells, input size of the good-part model's forward); "none": no model in force
ARMS = {
    "none": None,
    "global": ("global", 448),
    "local": ("local", 448),
    "global, ranking's forward": ("global", 0),
    "mid, ranking's forward": ("mid", 0),
}
BANK_PARTS, CALIBRATION_PARTS = 40, 12


def good_model(station: Any, cells: str, input_size: int, parts: list) -> Any:
    """A good-part model fitted on `parts` with the station's scorer and settings (as a build does)."""
    from inspector.frame.good_parts import basis_of, fit, frame_rows, own_settings, row_spec
    from inspector.frame.scorer import score_frame

    own = own_settings(station.scoring, input_size)
    scored = [score_frame(station.scorer, rgb, own, "bench", mid=cells == "mid") for rgb in parts]
    rows = [frame_rows(s, cells) for s in scored]
    basis = basis_of(scored[0].config.as_dict(), cells, input_size, row_spec(scored[0], cells))
    info = {"built_by": "bench.latency_goodpart"}
    return fit(rows[:BANK_PARTS], rows[BANK_PARTS:], basis, info)


def _merge(into: Run, run: Run) -> None:
    for name in ("total", "decode", "preprocess", "encoder", "rank", "other"):
        getattr(into, name).extend(getattr(run, name))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.latency_goodpart", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="inspector-default-v1")
    p.add_argument("--frames", type=int, default=200, help="timed frames per arm")
    p.add_argument("--chunk", type=int, default=25, help="frames per arm before switching to the next")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames per arm and chunk")
    p.add_argument("--descriptions", type=int, default=1000)
    p.add_argument("--frame-size", default="640x480")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="smoke run: 20 frames per arm")
    args = p.parse_args(argv)
    started = time.monotonic()
    if args.quick:
        args.frames, args.chunk, args.warmup = 20, 10, 2
    set_threads(args.threads)
    info = machine("cpu", args.threads)
    size = parse_size(args.frame_size)
    blobs = encode_frames(synthetic_frames(16, size), "png")
    scorer, load_s = _load(args.model, "cpu")
    station, how, _ = _station(scorer, args.descriptions, 1000)
    parts = synthetic_frames(BANK_PARTS + CALIBRATION_PARTS, size, seed=7)
    t0 = time.perf_counter()
    models = {arm: None if how is None else good_model(station, *how, parts) for arm, how in ARMS.items()}
    fit_s = time.perf_counter() - t0
    timer = TimedPreprocess(scorer.bundle.preprocess)
    scorer.bundle.preprocess = timer
    runs = {arm: Run() for arm in ARMS}
    for _ in range(max(1, args.frames // args.chunk)):
        for arm in ARMS:
            station._good = models[arm]  # what refresh_good_model sets from the log
            probe = station.inspect(_frame(blobs[0]))
            assert (probe.good_part is None) == (arm == "none"), f"arm {arm}: the good-part model was not consulted"
            _merge(runs[arm], per_frame(station, blobs, args.chunk, args.warmup, timer))
    summary = {arm: runs[arm].summary() for arm in ARMS}
    for arm in ARMS:
        t = summary[arm]["total_ms"]
        print(f"{arm:>26}: p50 {t['p50']:.1f} p95 {t['p95']:.1f} p99 {t['p99']:.1f} ms", flush=True)
    base = summary["none"]["total_ms"]
    rows, targets = [], []
    for arm in ARMS:
        t, enc = summary[arm]["total_ms"], summary[arm]["encoder_ms"]["mean"]
        model = models[arm]
        bank = "—" if model is None else f"{len(model.bank)} rows"
        ratio = f"{t['p50'] / base['p50']:.2f} / {t['p95'] / base['p95']:.2f}"
        rows.append([arm, bank, f"{t['p50']:.1f}", f"{t['p95']:.1f}", f"{t['p99']:.1f}", f"{enc:.1f}", ratio])
        targets.append(
            Target(f"p95 per frame, good-part model: {arm}", f"<= {TARGET_P95_MS:.0f} ms").check(
                t["p95"], TARGET_P95_MS, "{:.1f} ms"
            )
        )
    w, h = size
    body = "\n".join(
        [
            f"## {args.model} ({scorer.model_id[:12]}), {w}x{h} PNG frames, {args.descriptions:,} descriptions"
            f" ({how}), batch 1, {len(runs['none'].total)} frames per arm, arms alternating every {args.chunk}",
            "",
            md_table(
                ["good-part model", "bank", "p50 ms", "p95 ms", "p99 ms", "encode mean ms", "x none (p50 / p95)"],
                rows,
                align="llrrrrr",
            ),
            "",
            f"Model loaded in {load_s:.1f} s; the good-part models fitted in {fit_s:.1f} s on"
            f" {BANK_PARTS} + {CALIBRATION_PARTS} generated parts. 'encode' includes the good-part model's"
            " forward and its nearest-row search.",
        ]
    )
    write_results(
        "latency_goodpart",
        command=command_line("bench.latency_goodpart", argv),
        info=info,
        title="Per-frame latency with a good-part model in force",
        targets=targets,
        figures={"arms": summary, "bank_rows": {a: (len(m.bank) if m else 0) for a, m in models.items()}},
        body=body,
        notes=["QUICK RUN: a smoke test, not the record."] if args.quick else [],
        started=started,
    )
    return 0


def _frame(data: bytes) -> Any:
    from inspector.frame.imageio import decode_image
    from inspector.frame.records import Frame, utc_now

    return Frame(decode_image(data, "frame"), utc_now(), "bench", 0)


if __name__ == "__main__":
    sys.exit(main())
