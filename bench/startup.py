"""Start-up: from launching a process to its first ranked frame, cold and warm.

    python -m bench.startup [--quick] [--library-size 1000] [--model inspector-default-v1]
                            [--repeats 2] [--device cpu|cuda]

Each start is a new Python process (the clock starts just before it is launched) that opens the
station as the app and `inspector watch` do (inspector.station.Station.open on a TOML
configuration: database, registry choice, model load, the library seeded on a new database, the
description embeddings computed or read from the database cache), then decodes one PNG frame and
ranks it (Station.inspect); it prints a timestamp at each step.

- cold: a new database (nothing cached: every description is embedded by the text tower);
- warm: the same database again (embeddings come from its cache);
- demo: `inspector run --config ... --frames 1`, the headless demo (no database; it embeds the
  library on every start), to the line of its first frame.

"Cold" is process-cold only: the OS page cache still holds the model files read by earlier runs
(dropping it needs root and would disturb other jobs on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.perf_common import (
    NO_GPU,
    Target,
    bench_library,
    command_line,
    encode_frames,
    machine,
    md_table,
    synthetic_frames,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 20.0


def child(config_path: str, frame_path: str) -> int:
    """The measured process: open the station, rank one frame, print timestamps as JSON lines."""

    def say(event: str, **kw: Any) -> None:
        print(json.dumps({"event": event, "t": time.time(), **kw}), flush=True)

    say("started")
    import inspector.station as session
    from inspector.config import load_config
    from inspector.frame.imageio import decode_image
    from inspector.frame.records import Frame, utc_now

    say("imported")
    load = session._load_for_open
    loaded: dict[str, float] = {}

    def timed_load(*a: Any, **kw: Any) -> Any:  # instrumentation only: the same call, timed
        t0 = time.time()
        try:
            return load(*a, **kw)
        finally:
            loaded["model_load_s"] = time.time() - t0

    session._load_for_open = timed_load
    station = session.Station.open(load_config(config_path))
    say("opened", descriptions=len(station.index.texts), **loaded)
    rgb = decode_image(Path(frame_path).read_bytes(), frame_path)
    result = station.inspect(Frame(rgb, utc_now(), "bench", 0))
    say("ranked", top=result.ranking.top.label_id, verdict=result.verdict.disposition)
    station.close()
    return 0


def _launch(argv: list[str], marker: str | None = None) -> dict[str, Any]:
    """Run a process; return its JSON events (or the time of the first line containing `marker`)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    events: dict[str, Any] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker is not None:
            if marker in line and "first" not in events:
                events["first"] = {"t": time.time()}
            elif line.startswith("station ready in"):
                events["ready_line"] = line.strip()
            continue
        try:
            e = json.loads(line)
            events[e["event"]] = e
        except (ValueError, KeyError):
            pass
    err = proc.stderr.read() if proc.stderr else ""
    rc = proc.wait()
    end = time.time()
    if rc != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {rc}:\n{err[-3000:]}")
    return {
        "launched": t0,
        "exited_s": end - t0,
        **{k: {**v, "at_s": v["t"] - t0} for k, v in events.items() if isinstance(v, dict)},
        **({"ready_line": events["ready_line"]} if "ready_line" in events else {}),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 100 descriptions, one start each")
    p.add_argument("--library-size", type=int, default=1000)
    p.add_argument("--model", default="inspector-default-v1")
    p.add_argument("--repeats", type=int, default=2, help="starts of each kind")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-demo", action="store_true", help="skip the `inspector run` demo start")
    p.add_argument("--child", nargs=2, metavar=("CONFIG", "FRAME"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(*args.child)
    if args.quick:
        args.library_size, args.repeats = 100, 1
    started = time.monotonic()
    info = machine(args.device)
    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": [], "demo": []}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        work = Path(tmp)
        from inspector.library.labels import dump_library

        dump_library(bench_library(args.library_size, name="bench-startup"), work / "library.yaml")
        frame = work / "frame.png"
        frame.write_bytes(encode_frames(synthetic_frames(1, (640, 480)), "png")[0])
        me = [sys.executable, "-m", "bench.startup", "--child"]
        for r in range(args.repeats):
            db = work / f"db{r}" / "station.db"
            config = work / f"station{r}.toml"
            config.write_text(
                f'[model]\nref = "{args.model}"\ndevice = "{args.device}"\n'
                f'[library]\npath = "{work / "library.yaml"}"\n[database]\npath = "{db}"\n'
            )
            for kind in ("cold", "warm"):
                run = _launch([*me, str(config), str(frame)])
                runs[kind].append(run)
                print(
                    f"{kind} start {r + 1}: first ranked frame at {run['ranked']['at_s']:.1f} s "
                    f"(opened at {run['opened']['at_s']:.1f} s)",
                    flush=True,
                )
            if not args.no_demo:
                run = _launch(
                    [sys.executable, "-m", "inspector.cli", "run", "--config", str(config), "--frames", "1"],
                    marker="frame 1:",
                )
                runs["demo"].append(run)
                print(f"demo start {r + 1}: first frame at {run['first']['at_s']:.1f} s", flush=True)

    def worst(kind: str, key: str) -> float:
        return max(r[key]["at_s"] for r in runs[kind])

    targets = []
    on_gpu = args.device.startswith("cuda")
    for kind in ("cold", "warm"):
        t = Target(
            f"launch to first ranked frame, {kind}, {args.library_size:,} descriptions, {args.model}"
            + ("" if not on_gpu else " (GPU)"),
            f"<= {TARGET_S:.0f} s",
        )
        targets.append(
            t.check(
                worst(kind, "ranked"),
                TARGET_S,
                "{:.1f} s",
                note=f"worst of {len(runs[kind])}"
                + ("" if args.library_size == 1000 else " (NOT the 1 000-description library)"),
            )
        )
    gpu = Target("start-up on the station GPU (station-requirements P4)", "<= 30 s")
    if on_gpu:
        gpu.check(worst("cold", "ranked"), 30.0, "{:.1f} s")
    else:
        gpu.skip(NO_GPU)
    targets.append(gpu)

    rows = []
    for kind in ("cold", "warm"):
        for i, r in enumerate(runs[kind], 1):
            o = r["opened"]
            rows.append(
                [
                    f"{kind} {i}",
                    f"{r['imported']['at_s']:.1f}",
                    f"{o.get('model_load_s', float('nan')):.1f}",
                    f"{o['at_s']:.1f}",
                    f"{r['ranked']['at_s']:.1f}",
                    f"{r['exited_s']:.1f}",
                ]
            )
    for i, r in enumerate(runs["demo"], 1):
        rows.append([f"`inspector run` demo {i}", "", "", "", f"{r['first']['at_s']:.1f}", f"{r['exited_s']:.1f}"])
    body = [
        f"## Launch to first ranked frame ({args.library_size:,} descriptions, {args.model}, device {args.device})",
        "",
        md_table(
            ["start", "imports done s", "model load s", "station open s", "first ranked frame s", "process exit s"],
            rows,
        ),
        "",
        "Seconds since launch. Station open = database, model, library seeded (cold), description embeddings "
        "(computed cold, read from the database cache warm). The demo's own report: "
        + "; ".join(r.get("ready_line", "") for r in runs["demo"])
        + ".",
        "",
    ]
    notes = ["Cold = new database, process-cold; the OS page cache is warm (not dropped)."]
    if args.quick:
        notes.append("QUICK RUN: 100 descriptions, one start of each kind; a smoke test, not the record.")
    write_results(
        "startup",
        command=command_line("bench.startup", argv),
        info=info,
        title="Start-up to the first ranked frame",
        targets=targets,
        figures=runs,
        body="\n".join(body),
        notes=notes,
        started=started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
