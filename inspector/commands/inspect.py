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
from inspector.frame.records import InspectionResult


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
        if args.heatmap:
            out["heatmap"] = _write_heatmap(station, result, Path(args.heatmap), seq, len(args.images))
        print(json.dumps(out) if args.json else _text(out))
    return 2 if failures else 0


def _write_heatmap(station, result: InspectionResult, target: Path, seq: int, count: int) -> str:
    from inspector.frame.explain import explain_candidate, write_png

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


def _warn(message: str, level: str = "error") -> None:
    print(f"inspector: {level}: {message}", file=sys.stderr, flush=True)


# Source events that mean something went wrong: besides the log, they go to stderr as they happen.
_FAULTS = frozenset({"file_rejected", "file_unreadable", "frame_invalid", "frames_dropped", "stalled",
                     "disconnected", "reconnect_failed", "failed"})


class _Outage:
    """Writes the database refused (disk full, read-only, I/O error): each one is reported on stderr at
    once, and a summary goes to the log as a `storage_recovered` event once writes succeed again."""

    def __init__(self) -> None:
        self.frames = self.unacknowledged = 0
        self.events: dict[str, int] = {}
        self.first_error = self.since = ""

    def note(self, exc: Exception) -> None:
        from inspector.store.database import utc_stamp

        if not self.first_error:
            self.first_error, self.since = str(exc), utc_stamp()

    def __bool__(self) -> bool:
        return bool(self.frames or self.unacknowledged or self.events)

    def detail(self) -> dict[str, Any]:
        return {"frames_not_recorded": self.frames, "frames_stored_not_acknowledged": self.unacknowledged,
                "events_not_logged": dict(self.events),
                "first_error": self.first_error, "since": self.since}


def _line_warnings() -> Any:
    """A line output's connection changes on stderr (once per change; the backlog waits in the outbox)."""
    connected: dict[str, bool] = {}

    def on_change(status: Any) -> None:
        if status.running and connected.get(status.name) != status.connected and \
                (status.connected or status.last_error):
            connected[status.name] = status.connected
            if status.connected:
                _warn(f"{status.name} {status.address}: connected, {status.backlog} waiting", "info")
            else:
                _warn(f"{status.name} {status.address}: DOWN ({status.last_error}); verdicts wait in the outbox",
                      "warning")
    return on_change


def _cmd_watch(args: argparse.Namespace) -> int:
    from inspector.capture import build_source
    from inspector.store.chain import AnchorError
    from inspector.store.database import AnchorWriteError, StorageError
    from inspector.errors import CameraError
    from inspector.line.outputs import LineOutputs
    from inspector.line.settings import apply_publish
    from inspector.station import Station

    config = _config(args)
    config = replace(config, line=apply_publish(config.line, args.publish))  # refused before anything opens
    with Station.open(config) as station:
        log = station.log
        user = sign_in(log, args.user)
        outage = _Outage()
        line = LineOutputs(config.line, log.sdb.path, on_change=_line_warnings())  # issue 18: verdicts out, triggers in

        def on_event(kind: str, detail: dict[str, Any]) -> None:
            # Camera faults, reconnects and skipped files are audit events, attributed to the source.
            source_id = str(detail.get("source_id", args.source))
            what = detail.get("message") or detail.get("error") or detail.get("file") or ""
            if kind in _FAULTS:
                _warn(f"{source_id}: {kind}: {what}", "warning")
            try:
                log.record_event(f"camera_{kind}"[:40], detail, user=None, subject=source_id)
            except (StorageError, AnchorError) as exc:  # never silently: stderr now, a count in the log later
                outage.note(exc)
                outage.events[kind] = outage.events.get(kind, 0) + 1
                _warn(f"camera event {kind!r} ({what}) was NOT logged: {exc}")

        def on_line_event(kind: str, detail: dict[str, Any]) -> None:  # trigger_missed / trigger_refused
            _warn(f"{kind}: part {detail.get('part_id', '?')} {detail.get('problem', '')}".rstrip(), "warning")
            try:
                log.record_event(kind, detail, user=None, subject=str(detail.get("part_id", "")))
            except (StorageError, AnchorError) as exc:
                outage.note(exc)
                outage.events[kind] = outage.events.get(kind, 0) + 1

        source = line.wrap(build_source(args.source, seen=log.has_frame, on_event=on_event), on_line_event)
        digest = getattr(source, "digest", None)
        requeue = getattr(source, "requeue", None)  # a watched folder can offer an unrecorded file again
        done = 0
        with source, line:
            while args.max_frames is None or done < args.max_frames:
                try:
                    frame = source.read(timeout=args.timeout)
                except CameraError as exc:  # the source is gone for good: say so in the log, then stop
                    on_event("error", {"source_id": source.source_id, "message": str(exc)})
                    raise
                if frame is None:
                    if args.exit_when_idle:
                        break
                    continue
                station.refresh_library()
                result = station.inspect(frame, image_sha256=digest(frame) if digest else None)
                try:
                    result = station.record(result, user)
                except AnchorWriteError as exc:  # stored, but its id is unknown here: not acknowledged
                    outage.note(exc)
                    outage.unacknowledged += 1
                    _warn(f"frame {frame.seq} ({frame.origin or frame.source_id}) is stored but NOT acknowledged:"
                          f" {exc}")
                    continue
                except (StorageError, AnchorError) as exc:
                    # Not acknowledged (nothing is printed on stdout) and the station keeps running: the
                    # next frame is stored as soon as the disk has room again.
                    outage.note(exc)
                    outage.frames += 1
                    again = isinstance(exc, StorageError) and requeue is not None and requeue(frame)
                    _warn(f"frame {frame.seq} ({frame.origin or frame.source_id}) was NOT recorded: {exc}"
                          + ("; the file will be tried again" if again else ""))
                    continue
                print(json.dumps(result_json(result)), flush=True)
                line.committed()
                done += 1
                if outage:
                    try:
                        log.record_event("storage_recovered", outage.detail(), user=None, subject=str(log.sdb.path))
                        outage = _Outage()
                    except (StorageError, AnchorError) as exc:
                        _warn(f"the storage outage could not be logged yet: {exc}")
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
    p.add_argument("--publish", action="append", default=[], metavar="URL",
                   help="publish each committed verdict: mqtt://HOST:PORT/TOPIC (a broker) or opc.tcp://HOST:PORT"
                        " (the station's OPC UA server binds there); credentials only in the station TOML")
    p.set_defaults(func=_cmd_watch)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name or checkpoint (default: the station's model)")
    p.add_argument("--library", help="library YAML (default: the station's seed library)")
    p.add_argument("--config", help="station TOML file")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when there is one)")
