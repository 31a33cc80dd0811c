"""The line: commit -> published verdict latency (MQTT, OPC UA) and the outbox's catch-up after an outage.

    python -m bench.line_latency [--parts 300] [--rate 20] [--backlog 600] [--outage-s 0] [--dir DIR]

Everything runs on this machine through the real code: a station database (DecisionLog, WAL,
synchronous=FULL, each frame's PNG stored and fsynced as `inspector watch` does), the line's
publishers (inspector.line), a real MQTT broker (amqtt, in a child process on 127.0.0.1, see
tests/linebroker.py) and the station's OPC UA server read by an asyncua client subscription.

1. Latency: --parts inspections committed at --rate parts/s while both outputs are connected. For
   each: frame capture time -> commit returned -> MQTT message received by a subscriber, and ->
   Line.Seq data change seen by an OPC UA client (security None for this client: the server's
   Sign&Encrypt default costs the handshake, not the per-value path; say so).
2. Catch-up: the broker is SIGKILLed; --backlog inspections are committed while it is down
   (at --backlog / --outage-s parts/s when --outage-s > 0, else as fast as the database takes
   them); the broker restarts; measured: from the publisher's reconnect to an empty backlog, and
   every committed inspection checked in the broker's record (written before each PUBACK).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.perf_common import (
    Target,
    command_line,
    machine,
    md_table,
    stats_ms,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the broker helper the tests use: one copy of it

from inspector.frame.records import Candidate, Frame, InspectionResult, Ranking, Verdict
from inspector.library.labels import library_from_dict
from inspector.line.opcua_out import NAMESPACE
from inspector.line.outputs import LineOutputs
from inspector.line.publisher import wait_until
from inspector.line.settings import LineConfig, MqttOutput, OpcuaOutput
from inspector.store.decision_log import DecisionLog
from linebroker import Subscriber, free_port, kill, read_record, start_broker

LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "bench",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["a clean surface"]},
            {"id": "scratch", "disposition": "rework", "descriptions": ["a thin scratch"]},
        ],
    }
)


def _station(folder: Path) -> tuple[DecisionLog, Any, int]:
    log = DecisionLog.open(folder / "station.db")
    log.users.create_first_admin("admin", "admin-secret-1")
    admin = log.login("admin", "admin-secret-1")
    log.users.add_user("op", "operator", "operator-secret", admin, temporary=False)
    log.users.add_user("qa", "qa", "qa-engineer-pw", admin, temporary=False)
    version = log.library.import_library(LIBRARY, log.login("qa", "qa-engineer-pw"), "bench")
    return log, log.login("op", "operator-secret"), version


def _commit(log: DecisionLog, op: Any, version: int, i: int, rng: np.random.Generator) -> tuple[int, float, float]:
    """Commit one inspection with its 224x224 PNG; (id, capture time, commit-returned time) as epoch s."""
    frame = Frame(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8), datetime.now(UTC), "bench", i)
    candidates = (
        Candidate("scratch", "Scratch", "rework", "a thin scratch", 0.3, 0.7, 1),
        Candidate("ok", "Ok", "accept", "a clean surface", 0.2, 0.3, 2),
    )
    result = InspectionResult(
        frame,
        Ranking(candidates, "bench-model", version),
        Verdict("rework", False, False, "top-1"),
        f"{i:064x}",
        {"encode": 10.0},
    )
    inspection_id = log.record_inspection(result, op)
    return inspection_id, frame.captured_at.timestamp(), time.time()


class _OpcuaWatcher:
    """An asyncua client on its own thread: the epoch time each Line.Seq value is first seen."""

    def __init__(self, url: str) -> None:
        self.url, self.seen, self.ready = url, {}, threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        self.seen.setdefault(int(value), time.time())

    async def _run(self) -> None:
        from asyncua import Client

        async with Client(self.url, timeout=20) as client:
            ns = await client.get_namespace_index(NAMESPACE)
            sub = await client.create_subscription(0, self)  # 0: the server's fastest publishing interval
            await sub.subscribe_data_change(client.get_node(f"ns={ns};s=Line.Seq"), queuesize=1000)
            self.ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _latency(
    log: DecisionLog,
    op: Any,
    version: int,
    parts: int,
    rate: float,
    port: int,
    opcua_url: str,
    line: LineOutputs,
    nudge: bool,
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    sub = Subscriber(port, ["bench/v"])
    watcher = _OpcuaWatcher(opcua_url)
    assert watcher.ready.wait(60), "the OPC UA client did not connect"
    time.sleep(0.5)
    received: dict[int, float] = {}
    sub.client.on_message = lambda c, u, m: received.setdefault(json.loads(m.payload)["inspection_id"], time.time())
    commits, seq_of = [], {}
    next_at = time.monotonic()
    for i in range(parts):
        next_at += 1.0 / rate
        commits.append(_commit(log, op, version, i, rng))
        if nudge:
            line.committed()  # as `inspector watch` does after each commit
        time.sleep(max(0.0, next_at - time.monotonic()))
    wait_until(lambda: len(received) >= parts, 60)
    for inspection_id, seq in log.sdb.conn.execute("SELECT row_id, seq FROM chain WHERE tbl = 'inspections'"):
        seq_of[int(inspection_id)] = int(seq)
    wait_until(lambda: all(seq_of[c[0]] in watcher.seen for c in commits), 30)
    sub.close()
    watcher.stop()
    mqtt_ms = [1000 * (received[c[0]] - c[2]) for c in commits if c[0] in received]
    frame_ms = [1000 * (received[c[0]] - c[1]) for c in commits if c[0] in received]
    opcua_ms = [1000 * (watcher.seen[seq_of[c[0]]] - c[2]) for c in commits if seq_of[c[0]] in watcher.seen]
    commit_ms = [1000 * (c[2] - c[1]) for c in commits]
    return {
        "parts": parts,
        "rate": rate,
        "mqtt_received": len(mqtt_ms),
        "opcua_seen": len(opcua_ms),
        "commit_to_mqtt_ms": stats_ms(mqtt_ms),
        "frame_to_mqtt_ms": stats_ms(frame_ms),
        "commit_to_opcua_ms": stats_ms(opcua_ms),
        "frame_to_commit_ms": stats_ms(commit_ms),
    }


def _catch_up(
    log: DecisionLog, op: Any, version: int, line: LineOutputs, broker: dict[str, Any], backlog: int, outage_s: float
) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    mqtt = line.publishers[0]
    kill(broker["proc"])
    assert wait_until(lambda: not mqtt.status().connected, 30)
    t0 = time.monotonic()
    ids = []
    for i in range(backlog):
        ids.append(_commit(log, op, version, 10_000 + i, rng)[0])
        if outage_s:
            time.sleep(max(0.0, t0 + (i + 1) * outage_s / backlog - time.monotonic()))
    built_s = time.monotonic() - t0
    waiting = mqtt.status().backlog
    head = _head(log)
    broker["proc"] = start_broker(broker["port"], broker["record"])
    restarted = time.monotonic()  # the broker accepts connections
    assert wait_until(lambda: mqtt.status().cursor >= head, 300), "the backlog was not delivered"
    # When the publisher saw the connection and when its cursor reached the head: from its own
    # status changes (on_change, stamped as they happen), not from this thread's polling.
    changes = [(t, s) for t, s in CHANGES if s.name == "mqtt" and t >= t0]
    reconnected = next(t for t, s in changes if s.connected)
    drained = next(t for t, s in changes if s.cursor >= head)
    drain_s = drained - reconnected
    got = [json.loads(p)["inspection_id"] for t, p in read_record(broker["record"]) if t == "bench/v"]
    missing = sorted(set(ids) - set(got))
    return {
        "backlog": backlog,
        "built_s": built_s,
        "status_backlog_before_restart": waiting,
        "restart_to_reconnect_s": reconnected - restarted,
        "drain_s": drain_s,
        "drain_rate_per_s": backlog / drain_s if drain_s else float("inf"),
        "missing": len(missing),
        "received": sum(1 for i in got if i in set(ids)),
        "duplicates": sum(1 for i in got if i in set(ids)) - len(set(ids) & set(got)),
    }


CHANGES: list[tuple[float, Any]] = []  # (monotonic time, OutputStatus) of every publisher status change


def _head(log: DecisionLog) -> int:
    return int(log.sdb.conn.execute("SELECT MAX(seq) FROM chain WHERE tbl = 'inspections'").fetchone()[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", type=int, default=300)
    p.add_argument("--rate", type=float, default=20.0, help="parts per second in the latency run")
    p.add_argument("--backlog", type=int, default=600, help="inspections committed while the broker is down")
    p.add_argument("--outage-s", type=float, default=0.0, help="spread them over this many seconds (0: at once)")
    p.add_argument(
        "--no-nudge",
        action="store_true",
        help="do not call line.committed() after each commit: the publishers find it by polling (50 ms)",
    )
    p.add_argument("--dir", type=Path, default=None)
    args = p.parse_args(argv)
    started, info = time.monotonic(), machine("cpu")
    folder = Path(tempfile.mkdtemp(prefix="line-bench-", dir=args.dir))
    log, op, version = _station(folder)
    broker = {"port": free_port(), "record": folder / "acked.txt"}
    broker["proc"] = start_broker(broker["port"], broker["record"])
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    config = LineConfig(
        mqtt=MqttOutput(host="127.0.0.1", port=broker["port"], topic="bench/v"),
        opcua=OpcuaOutput(endpoint=url, security="None"),
    )
    line = LineOutputs(config, log.sdb.path, on_change=lambda status: CHANGES.append((time.monotonic(), status)))
    try:
        with line:
            assert wait_until(lambda: all(s.connected for s in line.status()), 60), line.status()
            lat = _latency(log, op, version, args.parts, args.rate, broker["port"], url, line, not args.no_nudge)
            catch = _catch_up(log, op, version, line, broker, args.backlog, args.outage_s)
    finally:
        kill(broker["proc"])
        log.close()
    figures = {"latency": lat, "catch_up": catch}
    m, o, f = lat["commit_to_mqtt_ms"], lat["commit_to_opcua_ms"], lat["frame_to_mqtt_ms"]
    targets = [
        Target(
            "every committed inspection delivered after the outage",
            "0 missing",
            f"{catch['missing']} missing of {catch['backlog']} ({catch['duplicates']} duplicates)",
            catch["missing"] == 0,
        )
    ]
    rows = [
        ["commit -> MQTT subscriber", m["n"], f"{m['p50']:.1f}", f"{m['p95']:.1f}", f"{m['max']:.1f}"],
        [
            "frame -> MQTT subscriber (incl. PNG + commit)",
            f["n"],
            f"{f['p50']:.1f}",
            f"{f['p95']:.1f}",
            f"{f['max']:.1f}",
        ],
        ["commit -> OPC UA client (Line.Seq change)", o["n"], f"{o['p50']:.1f}", f"{o['p95']:.1f}", f"{o['max']:.1f}"],
    ]
    how = "polling only (50 ms)" if args.no_nudge else "nudged after each commit, as `inspector watch` does"
    body = (
        f"## Latency ({args.parts} parts at {args.rate:g}/s; publishers {how})\n\n"
        + md_table(["path", "n", "p50 ms", "p95 ms", "max ms"], rows)
        + "\n\n"
        f"## Catch-up after a broker outage\n\n{catch['backlog']} inspections committed while the broker was"
        f" down ({catch['built_s']:.1f} s). The publisher reconnected {catch['restart_to_reconnect_s']:.2f} s after"
        " the restarted broker accepted connections (its back-off between attempts is at most 2 s; negative: it"
        " got in while the broker was still starting) and then delivered the backlog in"
        f" {catch['drain_s']:.2f} s: **{catch['drain_rate_per_s']:.0f} messages/s**, {catch['missing']} missing,"
        f" {catch['duplicates']} duplicates.\n"
    )
    notes = [
        (
            "The ranking model is not in these paths: the frame is committed as `inspector watch` does after"
            " ranking (PNG stored with fsync, then the inspection row); add the model's per-frame latency"
            " (`make bench-latency`) for camera-to-PLC time."
        ),
        (
            "The OPC UA client here uses security None; the station's default endpoint is Basic256Sha256"
            " Sign&Encrypt (tested in tests/inspector/test_line_opcua.py)."
        ),
    ]
    if not args.outage_s:
        notes.append(
            f"The outage's backlog ({args.backlog} = {args.backlog / 60:.1f} min at 1 part/s) was committed as fast as the"
            " database took it, not over 10 minutes: the drain depends on the backlog, not on how long"
            " the broker was away."
        )
    write_results(
        "line_latency",
        command=command_line("bench.line_latency", argv),
        info=info,
        title="The line: verdict latency and outbox catch-up",
        targets=targets,
        figures=figures,
        body=body,
        notes=notes,
        started=started,
    )
    return 0 if catch["missing"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
