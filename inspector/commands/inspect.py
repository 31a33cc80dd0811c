"""`inspector rank IMAGE...` and `inspector watch SOURCE`: the station without its GUI.

`rank` prints one JSON object per image and stores nothing. `watch` is headless line mode: it
ranks every frame a source delivers, commits an inspection, and prints one JSON line per
inspection only after its commit returned, so a printed id is a durable id.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from inspector.commands.user import add_db_argument, add_user_argument, sign_in
from inspector.config import StationConfig, load_config
from inspector.errors import InspectorError
from inspector.records import InspectionResult


def _config(args: argparse.Namespace) -> StationConfig:
    config = load_config(args.config)
    if args.model:
        config = replace(config, model=replace(config.model, ref=args.model))
    if getattr(args, "device", None):
        config = replace(config, model=replace(config.model, device=args.device))
    if args.library:
        config = replace(config, library=replace(config.library, path=args.library))
    if getattr(args, "db", None):
        config = replace(config, database=replace(config.database, path=args.db))
    return config


def result_json(result: InspectionResult) -> dict[str, Any]:
    """The JSON form of an inspection (what `rank` and `watch` print)."""
    return {
        "inspection_id": result.inspection_id,
        "source": result.frame.source_id,
        "origin": result.frame.origin,
        "captured_at": result.frame.captured_at.isoformat().replace("+00:00", "Z"),
        "image_sha256": result.image_sha256,
        "model_id": result.ranking.model_id,
        "library_version": result.ranking.library_version,
        "verdict": {"disposition": result.verdict.disposition, "needs_review": result.verdict.needs_review,
                    "open_set": result.verdict.open_set, "reason": result.verdict.reason},
        "candidates": [{"rank": c.rank, "label": c.label_id, "name": c.label_name, "description": c.description,
                        "score": round(c.score, 6), "probability": round(c.probability, 6)}
                       for c in result.ranking.candidates],
        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
    }


def _cmd_rank(args: argparse.Namespace) -> int:
    from inspector.imageio import read_image_file
    from inspector.records import Frame, utc_now
    from inspector.session import Station

    station = Station.open(_config(args), with_log=False)
    failures = 0
    for seq, path in enumerate(args.images):
        try:
            rgb = read_image_file(path)
        except InspectorError as exc:  # one bad file must not stop the others
            print(f"inspector: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        frame = Frame(rgb=rgb, captured_at=utc_now(), source_id="file", seq=seq, origin=str(path))
        result = station.inspect(frame, top_k=args.top_k)
        out = result_json(result)
        if args.heatmap:
            out["heatmap"] = _write_heatmap(station, result, Path(args.heatmap), seq, len(args.images))
        print(json.dumps(out) if args.json else _text(out))
    return 2 if failures else 0


def _write_heatmap(station, result: InspectionResult, target: Path, seq: int, count: int) -> str:
    from inspector.explain import explain_candidate, write_png

    path = target if count == 1 else target.with_name(f"{target.stem}-{seq}{target.suffix}")
    explanation = explain_candidate(station, result, rank=1)
    write_png(path, explanation.overlay)
    return str(path)


def _text(out: dict[str, Any]) -> str:
    lines = [f"{out['origin']}: {out['verdict']['disposition']}"
             f"{' (needs review)' if out['verdict']['needs_review'] else ''}: {out['verdict']['reason']}"]
    for c in out["candidates"]:
        lines.append(f"  #{c['rank']} {c['name']:<24} p={c['probability']:.3f} score={c['score']:.3f}  {c['description']!r}")
    return "\n".join(lines)


def _cmd_watch(args: argparse.Namespace) -> int:
    from inspector.capture import build_source
    from inspector.session import Station

    config = _config(args)
    with Station.open(config) as station:
        log = station.log
        user = sign_in(log, args.user)

        def on_event(kind: str, detail: dict[str, Any]) -> None:
            # Camera faults, reconnects and skipped files are audit events, attributed to the source.
            log.record_event(f"camera_{kind}"[:40], detail, user=None, subject=str(detail.get("source_id", args.source)))

        source = build_source(args.source, seen=log.has_frame, on_event=on_event)
        digest = getattr(source, "digest", None)
        done = 0
        with source:
            while args.max_frames is None or done < args.max_frames:
                frame = source.read(timeout=args.timeout)
                if frame is None:
                    if args.exit_when_idle:
                        break
                    continue
                station.refresh_library()
                result = station.inspect(frame, image_sha256=digest(frame) if digest else None)
                result = station.record(result, user)
                print(json.dumps(result_json(result)), flush=True)
                done += 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `rank` and `watch`."""
    p = sub.add_parser("rank", help="rank image files against the library (prints JSON; stores nothing)")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, TIFF, BMP)")
    _common(p)
    p.add_argument("--top-k", type=int, default=None, help="show only the best K labels")
    p.add_argument("--heatmap", help="write the Grad-CAM overlay of the #1 candidate to this PNG")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(func=_cmd_rank)

    p = sub.add_parser("watch", help="headless line mode: rank and record every frame of a source")
    p.add_argument("source", help="a folder, video file, device index, URL, genicam:[CTI]#N or sim:")
    _common(p)
    add_db_argument(p)
    add_user_argument(p)
    p.add_argument("--max-frames", type=int, default=None, help="stop after N inspections")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each frame")
    p.add_argument("--exit-when-idle", action="store_true", help="stop when no frame arrives within --timeout")
    p.set_defaults(func=_cmd_watch)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name or checkpoint (default: the station's model)")
    p.add_argument("--library", help="library YAML (default: the station's seed library)")
    p.add_argument("--config", help="station TOML file")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when there is one)")
