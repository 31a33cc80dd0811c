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
from typing import TYPE_CHECKING, Any

from inspector.commands.user import add_db_argument, add_user_argument, sign_in
from inspector.config import StationConfig, check_product_id, load_config
from inspector.errors import InspectorError
from inspector.frame.records import InspectionResult

if TYPE_CHECKING:
    from inspector.store.users import Session


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
    if getattr(args, "product", None) is not None:
        product = check_product_id(args.product, "--product")
        config = replace(config, camera=replace(config.camera, product_id=product))
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
        "verdict": {
            "disposition": result.verdict.disposition,
            "needs_review": result.verdict.needs_review,
            "open_set": result.verdict.open_set,
            "reason": result.verdict.reason,
        },
        "candidates": [
            {
                "rank": c.rank,
                "label": c.label_id,
                "name": c.label_name,
                "description": c.description,
                "score": round(c.score, 6),
                "probability": round(c.probability, 6),
                "carried_by": c.carried_by,
            }
            for c in result.ranking.candidates
        ],
        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
    }


def _cmd_rank(args: argparse.Namespace) -> int:
    from inspector.frame.imageio import read_image_file
    from inspector.frame.records import Frame, utc_now
    from inspector.station import Station

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
        out["scoring_config_id"] = result.ranking.scoring_config_id
        out["scoring_config"] = json.loads(result.ranking.scoring_config_json or "null")
        if args.localize:
            _add_locations(station, result, out)
        if args.heatmap:
            out["heatmap"] = _write_heatmap(station, result, Path(args.heatmap), seq, len(args.images))
        print(json.dumps(out) if args.json else _text(out))
    return 2 if failures else 0


def _add_locations(station, result: InspectionResult, out: dict[str, Any]) -> None:
    """Each candidate's map peak [x, y] and the half-open box [x0, y0, x1, y1] of the connected area
    around it at >= half the peak, in frame pixels (origin top-left)."""
    from inspector.frame.explain import localize_candidates

    for entry, heat in zip(out["candidates"], localize_candidates(station, result)):
        entry["peak"] = [int(heat.peak[0]), int(heat.peak[1])]
        entry["region"] = [int(v) for v in heat.bbox]


def _write_heatmap(station, result: InspectionResult, target: Path, seq: int, count: int) -> str:
    from inspector.frame.explain import explain_candidate, write_png

    path = target if count == 1 else target.with_name(f"{target.stem}-{seq}{target.suffix}")
    if path.exists() or path.is_symlink():
        raise InspectorError(f"{path} exists; heatmaps never overwrite a file: choose a new name")
    explanation = explain_candidate(station, result, rank=1)
    write_png(path, explanation.overlay)
    return str(path)


def _text(out: dict[str, Any]) -> str:
    lines = [
        f"{out['origin']}: {out['verdict']['disposition']}"
        f"{' (needs review)' if out['verdict']['needs_review'] else ''}: {out['verdict']['reason']}"
    ]
    for c in out["candidates"]:
        lines.append(
            f"  #{c['rank']} {c['name']:<24} p={c['probability']:.3f} score={c['score']:.3f}"
            f" [{c['carried_by']}]  {c['description']!r}"
        )
    return "\n".join(lines)


def _warn(message: str, level: str = "error") -> None:
    print(f"inspector: {level}: {message}", file=sys.stderr, flush=True)


# Source events that mean something went wrong: besides the log, they go to stderr as they happen.
_FAULTS = frozenset(
    {
        "file_rejected",
        "file_unreadable",
        "frame_invalid",
        "frames_dropped",
        "stalled",
        "disconnected",
        "reconnect_failed",
        "failed",
    }
)


def _sign_in_first(config: StationConfig, name: str, given_db: bool) -> Session:
    """Authenticate against the configured database without touching anything else in it."""
    from inspector.commands.user import say_default_database
    from inspector.store.decision_log import DecisionLog

    db = config.database
    if not given_db:
        say_default_database(db.path)
    with DecisionLog.open(db.path, max_failures=db.max_failed_logins, lockout_s=db.lockout_minutes * 60) as log:
        return sign_in(log, name)


def _line_warnings() -> Any:
    """A line output's connection changes on stderr (once per change; the backlog waits in the outbox)."""
    connected: dict[str, bool] = {}

    def on_change(status: Any) -> None:
        if (
            status.running
            and connected.get(status.name) != status.connected
            and (status.connected or status.last_error)
        ):
            connected[status.name] = status.connected
            if status.connected:
                _warn(f"{status.name} {status.address}: connected, {status.backlog} waiting", "info")
            else:
                _warn(
                    f"{status.name} {status.address}: DOWN ({status.last_error}); verdicts wait in the outbox",
                    "warning",
                )

    return on_change


def _cmd_watch(args: argparse.Namespace) -> int:
    from inspector.capture import build_source
    from inspector.capture.opencv import redact_url
    from inspector.errors import CameraError
    from inspector.frame.live import LiveCapture
    from inspector.line.outputs import LineOutputs
    from inspector.line.settings import apply_publish
    from inspector.station import Station

    config = _config(args)
    config = replace(config, line=apply_publish(config.line, args.publish))  # refused before anything opens
    user = _sign_in_first(config, args.user, bool(args.db))  # before Station.open stores anything
    with Station.open(config) as station:
        log = station.log
        line = LineOutputs(config.line, log.sdb.path, on_change=_line_warnings())  # verdicts out, triggers in

        def on_event(kind: str, detail: dict[str, Any]) -> None:
            if kind in _FAULTS:
                what = detail.get("message") or detail.get("error") or detail.get("file") or ""
                _warn(f"{detail.get('source_id', redact_url(args.source))}: {kind}: {what}", "warning")

        # The core loop on this thread's connection: it records (a role that may not is refused
        # with exit 2), picks up library versions QA publishes, and rides out storage outages.
        # The line's triggers wrap the source: a part id comes with each frame, a missed trigger is an event.
        def make_source(sink):
            def on_line_event(kind: str, detail: dict[str, Any]) -> None:  # trigger_missed / trigger_refused
                _warn(f"{kind}: part {detail.get('part_id', '?')} {detail.get('problem', '')}".rstrip(), "warning")
                capture.log_event(kind, detail)

            return line.wrap(build_source(args.source, seen=log.has_frame, on_event=sink), on_line_event)

        capture = LiveCapture(station, make_source, user, record=True, log=log, refresh_library=True, warn=_warn)
        capture.on_event = on_event
        done = 0
        line.start()
        try:
            capture.open()
            while args.max_frames is None or done < args.max_frames:
                try:
                    result = capture.step(timeout=args.timeout)
                except CameraError as exc:  # the source is gone for good: say so in the log, then stop
                    capture.source_event("error", {"source_id": capture.source.source_id, "message": str(exc)})
                    raise
                if result is None:
                    if args.exit_when_idle and capture.idle:  # no frame came (not: one was refused)
                        break
                    continue
                print(json.dumps(result_json(result)), flush=True)  # after COMMIT: a printed id is durable
                line.committed()
                done += 1
        finally:
            capture.close()
            line.stop()  # sends what is committed first (a few seconds at most); the rest waits in the outbox
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `rank` and `watch`."""
    p = sub.add_parser("rank", help="rank image files against the library (readable text, or --json; stores nothing)")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, TIFF, BMP)")
    _common(p)
    p.add_argument("--top-k", type=int, default=None, help="show only the best K labels")
    p.add_argument("--heatmap", help="write the Grad-CAM overlay of the #1 candidate to this PNG")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument(
        "--localize",
        action="store_true",
        help="give each candidate its map's peak [x, y] and region [x0, y0, x1, y1] (frame pixels)",
    )
    p.set_defaults(func=_cmd_rank)

    p = sub.add_parser("watch", help="headless line mode: rank and record every frame of a source")
    p.add_argument("source", help="a folder, video file, device index, URL, genicam:[CTI]#N or sim:")
    _common(p)
    add_db_argument(p)
    add_user_argument(p)
    p.add_argument("--max-frames", type=int, default=None, help="stop after N inspections")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each frame")
    p.add_argument("--exit-when-idle", action="store_true", help="stop when no frame arrives within --timeout")
    p.add_argument(
        "--publish",
        action="append",
        default=[],
        metavar="URL",
        help="publish each committed verdict: mqtt://HOST:PORT/TOPIC (a broker) or opc.tcp://HOST:PORT"
        " (the station's OPC UA server binds there); credentials only in the station TOML",
    )
    p.add_argument("--product", help="the product id recorded with each inspection (default: [camera] product_id)")
    p.set_defaults(func=_cmd_watch)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name or checkpoint (default: the station's model)")
    p.add_argument("--library", help="library YAML (default: the station's seed library)")
    p.add_argument("--config", help="station TOML file")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when there is one)")
