"""Decision log: commits per second, bytes per inspection, export of 10 000, verify of 1 000 000.

    python -m bench.decision_log [--quick] [--inspections 10000] [--chain-rows 1000000]
                                 [--image-size 224] [--dir DIR] [--keep]

Everything goes through the real API (inspector.store.decision_log.DecisionLog) on a fresh database in
--dir (default: a temporary folder on the same disk as /tmp; its filesystem is reported):
WAL + synchronous=FULL, each call its own BEGIN IMMEDIATE ... COMMIT, the chain anchored after every
commit (the station's default, anchor_every=1).

1. record_inspection with its image: --inspections frames (each distinct, RGB --image-size
   square, written as a content-addressed PNG with fsync before the commit), as `inspector watch`
   does; then without the image file; then the operator's record_decision; then record_inspection
   (no image) on a connection that anchors every 1 000 commits instead of every commit; then, for
   --small more frames, the image path alone (PNG encode; store_image into a fresh folder).
   Each inspection carries the full ranking of the seed library's 8 labels.
2. Bytes per inspection: the database's page growth over step 1's inspections (page_count x
   page_size after a WAL checkpoint) and the image bytes, per inspection.
3. Export: DecisionLog.export (an auditor) of the whole log, images included: the
   --inspections inspections of step 1; then the offline verify_export of the bundle.
4. Verify: a second database with --chain-rows chained inspection rows, checked by
   DecisionLog.verify() (inspector.store.chain.verify_chain: every row re-read and re-hashed, links,
   counts, the HMAC'ed anchor). The rows are made with StationDB.append, the same insert + chain
   code the API uses, but 10 000 rows per transaction (one commit each through the API would take
   hours at FULL); each row is a copy of a real inspection row recorded through the API first,
   with its own frame hash and sequence number.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.perf_common import (
    Target,
    command_line,
    machine,
    md_table,
    stats_ms,
    synthetic_frames,
    write_results,
)

PASSWORD = "bench-secret-pw-1"
MODEL_ID = hashlib.sha256(b"bench model").hexdigest()
TARGET_RATE, TARGET_VERIFY_S, TARGET_EXPORT_S = 1000.0, 30.0, 30.0


def _fs_of(path: Path) -> str:
    """Filesystem type and device of the mount holding `path` (fsync cost depends on it)."""
    best = ("?", "?", "")
    target = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        dev, mnt, fstype = line.split()[:3]
        if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[2]):
            best = (fstype, dev, mnt)
    return f"{best[0]} on {best[1]} (mounted at {best[2]})"


def _open_station(path: Path, anchor_every: int = 1) -> tuple[Any, dict[str, Any], int, Any]:
    from inspector.library.labels import load_library, seed_library_dir
    from inspector.store.decision_log import DecisionLog

    library = load_library(seed_library_dir() / "generic_surfaces.yaml")
    log = DecisionLog.open(path, anchor_every=anchor_every)
    log.users.create_first_admin("admin", PASSWORD)
    users = {"admin": log.login("admin", PASSWORD)}
    for name, role in (("op", "operator"), ("aud", "auditor")):
        log.users.add_user(name, role, PASSWORD, users["admin"], temporary=False)
        users[name] = log.login(name, PASSWORD)
    version = log.library.seed_if_empty(library, "inspector/library/seeds/generic_surfaces.yaml")
    return log, users, version, library


def _result(rgb: np.ndarray, seq: int, version: int, library: Any, rng: np.random.Generator) -> Any:
    """An InspectionResult as Station.inspect makes it: every label ranked, a verdict, timings."""
    from inspector.frame.records import Candidate, Frame, InspectionResult, Ranking, Verdict, utc_now
    from inspector.station import frame_sha256

    labels = list(library.labels)
    order = rng.permutation(len(labels))
    scores = np.sort(rng.uniform(-0.1, 0.4, len(labels)))[::-1]
    probs = np.exp(scores * 50) / np.exp(scores * 50).sum()
    candidates = tuple(
        Candidate(
            labels[li].id,
            labels[li].name,
            labels[li].disposition,
            labels[li].descriptions[int(rng.integers(len(labels[li].descriptions)))],
            float(scores[r]),
            float(probs[r]),
            r + 1,
        )
        for r, li in enumerate(order)
    )
    top = candidates[0]
    frame = Frame(rgb, utc_now(), "line-1", seq, origin=f"part-{seq:07d}.png")
    return InspectionResult(
        frame,
        Ranking(candidates, MODEL_ID, version),
        Verdict(top.disposition, top.probability < 0.5, False, f"{top.label_name} ({top.probability:.2f})"),
        frame_sha256(frame),
        {"encode": 31.2, "rank": 0.4},
    )


def _distinct(base: list[np.ndarray], seq: int) -> np.ndarray:
    """A frame no other inspection has: the sequence number stamped into the first pixels."""
    rgb = base[seq % len(base)].copy()
    rgb[0, :8, 0] = np.frombuffer(seq.to_bytes(8, "little"), dtype=np.uint8)
    return rgb


def _db_bytes(log: Any) -> int:
    conn = log.sdb.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    pages, size, free = (
        conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size", "freelist_count")
    )
    return (pages - free) * size


def _rate(times: list[float]) -> dict[str, Any]:
    return {"n": len(times), "per_s": len(times) / sum(times), "ms": stats_ms(1000 * t for t in times)}


def image_split(root: Path, base: list[np.ndarray], seqs: range) -> dict[str, Any]:
    """Where an image commit's extra time goes: the PNG encode alone, then store_image (the encode
    plus the durable file: temp file, fsync, rename, folder fsyncs) into a fresh image folder."""
    from inspector.store.decision_log import encode_png, store_image

    encode, store = [], []
    for seq in seqs:
        rgb = _distinct(base, seq)
        t0 = time.perf_counter()
        encode_png(rgb)
        t1 = time.perf_counter()
        store_image(root, rgb)
        encode.append(t1 - t0)
        store.append(time.perf_counter() - t1)
    return {"png_encode": _rate(encode), "store_image": _rate(store)}


def api_phase(work: Path, n: int, n_small: int, image_size: int) -> dict[str, Any]:
    from inspector.frame.records import Decision
    from inspector.store.decision_log import DecisionLog
    from inspector.store.export import verify_export

    out: dict[str, Any] = {}
    log, users, version, library = _open_station(work / "station.db")
    rng = np.random.default_rng(0)
    base = synthetic_frames(16, (image_size, image_size))
    op = users["op"]

    bytes0 = _db_bytes(log)
    times, ids = [], []
    for seq in range(n):
        result = _result(_distinct(base, seq), seq, version, library, rng)
        t0 = time.perf_counter()
        ids.append(log.record_inspection(result, op))
        times.append(time.perf_counter() - t0)
        if (seq + 1) % 2000 == 0:
            print(f"  recorded {seq + 1} inspections with images ({(seq + 1) / sum(times):.0f}/s)", flush=True)
    out["with_image"] = _rate(times)
    db_growth = _db_bytes(log) - bytes0
    image_bytes = sum(p.stat().st_size for p in log.sdb.image_root.rglob("*.png"))
    out["bytes_per_inspection"] = {
        "database": db_growth / n,
        "image_png": image_bytes / n,
        "image_size": f"{image_size}x{image_size} RGB",
    }

    times = []
    for seq in range(n, n + n_small):
        result = _result(_distinct(base, seq), seq, version, library, rng)
        t0 = time.perf_counter()
        log.record_inspection(result, op, store_image_file=False)
        times.append(time.perf_counter() - t0)
    out["no_image"] = _rate(times)

    times = []
    for inspection_id in ids[:n_small]:
        row = log.inspection(inspection_id)
        top = json.loads(row["candidates"])[0]
        decision = Decision(inspection_id, "confirm", "op", top["label_id"], 1)
        t0 = time.perf_counter()
        log.record_decision(decision, op)
        times.append(time.perf_counter() - t0)
    out["decision"] = _rate(times)

    with DecisionLog.open(work / "station.db", anchor_every=1000) as batched:
        times = []
        for seq in range(n + n_small, n + 2 * n_small):
            result = _result(_distinct(base, seq), seq, version, library, rng)
            t0 = time.perf_counter()
            batched.record_inspection(result, op, store_image_file=False)
            times.append(time.perf_counter() - t0)
    out["no_image_anchor_every_1000"] = _rate(times)
    out.update(image_split(work / "split" / "images" / "sha256", base, range(n + 2 * n_small, n + 3 * n_small)))

    bundle = work / "export"
    t0 = time.perf_counter()
    summary = log.export("2000-01-01", "2100-01-01", bundle, users["aud"])
    out["export"] = {
        "seconds": time.perf_counter() - t0,
        "rows": summary.rows,
        "images": summary.images,
        "inspections": n + 2 * n_small,
        "inspections_with_images": n,
        "bundle_bytes": sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()),
        "warnings": list(summary.warnings),
    }
    t0 = time.perf_counter()
    report = verify_export(bundle, log.sdb.key)
    out["verify_export"] = {"seconds": time.perf_counter() - t0, "ok": report.ok, "rows": report.rows}
    t0 = time.perf_counter()
    chain = log.verify()
    out["verify_small"] = {"seconds": time.perf_counter() - t0, "ok": chain.ok, "rows": chain.rows}
    log.close()
    return out


def chain_phase(work: Path, rows: int, per_tx: int = 10_000) -> dict[str, Any]:
    from inspector.store.database import utc_stamp

    log, users, version, library = _open_station(work / "chain.db")
    rng = np.random.default_rng(1)
    first = log.record_inspection(
        _result(synthetic_frames(1, (64, 64))[0], 0, version, library, rng), users["op"], store_image_file=False
    )
    template = {k: v for k, v in log.inspection(first).items() if k not in ("id", "recorded_at")}
    sdb = log.sdb
    have = log.verify().rows
    made, t0 = 0, time.perf_counter()
    while have + made < rows:
        with sdb.transaction():
            for _ in range(min(per_tx, rows - have - made)):
                made += 1
                row = dict(
                    template,
                    frame_seq=made,
                    captured_at=utc_stamp(),
                    frame_sha256=hashlib.sha256(made.to_bytes(8, "little")).hexdigest(),
                )
                sdb.append("inspections", row)
        if made % 100_000 < per_tx:
            print(f"  chained {have + made} rows ({made / (time.perf_counter() - t0):.0f}/s)", flush=True)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = log.verify()
    verify_s = time.perf_counter() - t0
    db_bytes = _db_bytes(log)
    log.close()
    return {
        "rows": report.rows,
        "ok": report.ok,
        "problem": report.problem,
        "verify_s": verify_s,
        "verify_rows_per_s": report.rows / verify_s,
        "build_s": build_s,
        "build_rows_per_s": made / build_s,
        "rows_per_transaction": per_tx,
        "db_bytes": db_bytes,
        "db_bytes_per_row": db_bytes / report.rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decision_log", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 200 inspections, 20 000 chain rows")
    p.add_argument("--inspections", type=int, default=10_000, help="inspections with images (also exported)")
    p.add_argument("--small", type=int, default=2000, help="calls in the no-image, decision and anchor-every-1000 runs")
    p.add_argument("--chain-rows", type=int, default=1_000_000)
    p.add_argument("--image-size", type=int, default=224, help="side of the stored square frames")
    p.add_argument("--dir", type=Path, default=None, help="work folder (default: a new temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the databases and the bundle")
    args = p.parse_args(argv)
    if args.quick:
        args.inspections, args.small, args.chain_rows = 200, 100, 20_000
    if min(args.inspections, args.small, args.chain_rows) < 1:
        p.error("--inspections, --small and --chain-rows must be positive")
    started = time.monotonic()
    info = machine("cpu")
    work = Path(tempfile.mkdtemp(prefix="bench-dblog-", dir=args.dir))
    info["filesystem"] = _fs_of(work)
    print(f"work folder {work} ({info['filesystem']})", flush=True)
    try:
        api = api_phase(work / "api", args.inspections, min(args.small, args.inspections), args.image_size)
        print("API phase done", flush=True)
        chain = chain_phase(work / "chain", args.chain_rows)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    wi, ex = api["with_image"], api["export"]
    full_chain, full_export = args.chain_rows >= 1_000_000, args.inspections >= 10_000
    targets = [
        Target(
            "committed inspections/s, synchronous=FULL, one transaction each, with the image file",
            f">= {TARGET_RATE:.0f}/s",
        ).check(
            wi["per_s"],
            TARGET_RATE,
            "{:.0f}/s",
            below=False,
            note=f"p50 {wi['ms']['p50']:.2f} ms, p95 {wi['ms']['p95']:.2f} ms per commit",
        ),
        Target("committed inspections/s, same, database only (no image file)", f">= {TARGET_RATE:.0f}/s").check(
            api["no_image"]["per_s"], TARGET_RATE, "{:.0f}/s", below=False
        ),
        Target(f"verify a {1_000_000:,}-row chain", f"<= {TARGET_VERIFY_S:.0f} s"),
        Target("export 10 000 inspections with their images", f"<= {TARGET_EXPORT_S:.0f} s"),
    ]
    if full_chain:
        targets[2].check(
            chain["verify_s"] * 1_000_000 / chain["rows"],
            TARGET_VERIFY_S,
            "{:.1f} s",
            note=f"{chain['rows']:,} rows in {chain['verify_s']:.1f} s, ok={chain['ok']}",
        )
    else:
        est = 1_000_000 / chain["verify_rows_per_s"]
        targets[2].skip(
            f"only {chain['rows']:,} rows in this run ({chain['verify_s']:.2f} s, "
            f"{chain['verify_rows_per_s']:,.0f} rows/s; a linear extrapolation gives {est:.0f} s)"
        )
    if full_export:
        targets[3].check(
            ex["seconds"] * 10_000 / args.inspections,
            TARGET_EXPORT_S,
            "{:.1f} s",
            note=f"{args.inspections:,} inspections, {ex['images']:,} images, {ex['rows']:,} chain rows",
        )
    else:
        targets[3].skip(
            f"only {args.inspections:,} inspections with images in this run ({ex['seconds']:.2f} s; "
            f"linear extrapolation {ex['seconds'] * 10_000 / args.inspections:.0f} s)"
        )

    rate_rows = [
        [
            f"record_inspection + {args.image_size}x{args.image_size} PNG image (station default)",
            wi["n"],
            f"{wi['per_s']:.0f}",
            f"{wi['ms']['p50']:.2f}",
            f"{wi['ms']['p95']:.2f}",
            f"{wi['ms']['p99']:.2f}",
        ]
    ]
    for key, what in (
        ("no_image", "record_inspection, no image file"),
        ("decision", "record_decision (confirm)"),
        ("no_image_anchor_every_1000", "record_inspection, no image, anchor every 1 000 commits"),
        ("png_encode", "the image alone: PNG encode (encode_png)"),
        ("store_image", "the image alone: encode, temp file, fsync, rename, folder fsyncs"),
    ):
        r = api[key]
        rate_rows.append(
            [
                what,
                r["n"],
                f"{r['per_s']:.0f}",
                f"{r['ms']['p50']:.2f}",
                f"{r['ms']['p95']:.2f}",
                f"{r['ms']['p99']:.2f}",
            ]
        )
    b = api["bytes_per_inspection"]
    body = [
        f"Work folder on {info['filesystem']}.",
        "",
        "## Commits (WAL, synchronous=FULL, one BEGIN IMMEDIATE ... COMMIT per call, anchor file after each "
        "commit unless stated: one slot rewritten in place, fdatasync)",
        "",
        md_table(["call", "n", "per second", "p50 ms", "p95 ms", "p99 ms"], rate_rows),
        "",
        f"Bytes per inspection: database {b['database']:,.0f} B (8-label ranking, chain entry, indexes), "
        f"image file {b['image_png']:,.0f} B ({b['image_size']} PNG); a camera frame costs its own PNG size.",
        "",
        "## Export and verification",
        "",
        md_table(
            ["operation", "size", "seconds", "result"],
            [
                [
                    "DecisionLog.export (auditor), images included",
                    f"{ex['inspections']:,} inspections ({ex['inspections_with_images']:,} with images), "
                    f"{ex['rows']:,} chain rows, {ex['bundle_bytes'] / 2**20:,.1f} MiB",
                    f"{ex['seconds']:.2f}",
                    f"{ex['images']:,} images" + (f", warnings: {ex['warnings']}" if ex["warnings"] else ""),
                ],
                [
                    "verify_export (offline, with the station key)",
                    f"{api['verify_export']['rows']:,} rows",
                    f"{api['verify_export']['seconds']:.2f}",
                    "intact" if api["verify_export"]["ok"] else "NOT intact",
                ],
                [
                    "DecisionLog.verify, the same database",
                    f"{api['verify_small']['rows']:,} rows",
                    f"{api['verify_small']['seconds']:.2f}",
                    "intact" if api["verify_small"]["ok"] else "broken",
                ],
                [
                    "DecisionLog.verify, chain database",
                    f"{chain['rows']:,} rows",
                    f"{chain['verify_s']:.2f}",
                    ("intact" if chain["ok"] else f"broken: {chain['problem']}")
                    + f" ({chain['verify_rows_per_s']:,.0f} rows/s)",
                ],
            ],
            align="lrrl",
        ),
        "",
        f"The chain database's rows were made with StationDB.append in transactions of "
        f"{chain['rows_per_transaction']:,} rows ({chain['build_rows_per_s']:,.0f} rows/s, "
        f"{chain['build_s']:.0f} s): a copy of a real inspection row per entry, each with its own frame hash. "
        f"Database size {chain['db_bytes'] / 2**20:,.0f} MiB ({chain['db_bytes_per_row']:,.0f} B per row).",
        "",
    ]
    notes = ["QUICK RUN: small counts; extrapolations are marked as such and are not the record."] if args.quick else []
    write_results(
        "decision_log",
        command=command_line("bench.decision_log", argv),
        info=info,
        title="Decision log: commits, size, export, verification",
        targets=targets,
        figures={"api": api, "chain": chain, "filesystem": info["filesystem"]},
        body="\n".join(body),
        notes=notes,
        started=started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
