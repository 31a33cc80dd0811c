"""Side by side on one machine: commits per second with the frame's PNG, and `log verify` of a
1 000 000-row chain, this tree against another checkout (the round's starting commit), alternating.

    python -m bench.commit_compare --base /tmp/base14 [--rounds 3] [--commits 1000]
                                   [--sizes 224x224,640x480] [--chain-rows 1000000] [--verify-rounds 2]
                                   [--wal-check 300] [--out bench/results]

On a machine shared with other jobs the absolute figures move with their load; alternating the two
trees (base, now, now, base, ...) within one run puts the same load on both, so the ratio is the
figure to read. Each measurement is a child process whose PYTHONPATH is one tree, so each side runs
its own inspector/ and its own bench/decision_log.py helpers (the same station set-up, the same
frames: bench.perf_common.synthetic_frames, seed 0, each stamped with its sequence number).

- commits: a fresh station per measurement, --commits record_inspection calls with the frame's PNG
  (one BEGIN IMMEDIATE ... COMMIT each, synchronous=FULL, anchor after each commit), as
  bench.decision_log measures; then `log verify --images` (DecisionLog.verify_images) over those
  images where the tree has it. Wall-clock rate and the process's CPU time per commit.
- --wal-check N: WAL pages written per commit over N more commits (untimed), once per tree.
- verify: each tree builds its own --chain-rows chain once (StationDB.append, 10 000 rows per
  transaction, untimed), then DecisionLog.verify() is timed, alternating.

Writes commit_compare.{json,md} in --out (default bench/results).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# --- the child: runs inside one tree ------------------------------------------------------------


def _commits(work: Path, n: int, size: tuple[int, int]) -> dict[str, Any]:
    import numpy as np

    from bench.decision_log import _distinct, _open_station, _result
    from bench.perf_common import stats_ms, synthetic_frames

    log, users, version, library = _open_station(work / "station.db")
    rng = np.random.default_rng(0)
    frames = synthetic_frames(16, size)
    times, cpu = [], 0.0
    for seq in range(n):
        result = _result(_distinct(frames, seq), seq, version, library, rng)
        c0, t0 = time.process_time(), time.perf_counter()
        log.record_inspection(result, users["op"])
        times.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
    out: dict[str, Any] = {"n": n, "per_s": n / sum(times), "ms": stats_ms(1000 * t for t in times)}
    # CPU time of this process per commit: the code's own work, far less sensitive than the wall
    # clock to other jobs on the machine (fsync waits and time spent descheduled are not in it).
    out["cpu_ms"] = 1000 * cpu / n
    if hasattr(log, "verify_images"):
        t0 = time.perf_counter()
        report = log.verify_images()
        out["verify_images_s"] = time.perf_counter() - t0
        out["verify_images"] = str(report)[:200]
    log.close()
    return out


def _wal_pages(work: Path, n: int) -> dict[str, Any]:
    """WAL pages (frames) written per commit with the 224x224 PNG: the bytes each commit fsyncs.
    Auto-checkpoint off, so every frame stays in the WAL to be counted; not a timed run."""
    import numpy as np

    from bench.decision_log import _distinct, _open_station, _result
    from bench.perf_common import synthetic_frames

    log, users, version, library = _open_station(work / "station.db")
    conn = log.sdb.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.execute("PRAGMA wal_autocheckpoint=0").fetchall()
    rng, frames = np.random.default_rng(0), synthetic_frames(16, (224, 224))
    for seq in range(n):
        log.record_inspection(_result(_distinct(frames, seq), seq, version, library, rng), users["op"])
    _, written, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    log.close()
    return {"n": n, "wal_pages_per_commit": written / n}


def _build(path: Path, rows: int, per_tx: int = 10_000) -> dict[str, Any]:
    import numpy as np

    from bench.decision_log import _open_station, _result
    from bench.perf_common import synthetic_frames
    from inspector.store.database import utc_stamp

    log, users, version, library = _open_station(path)
    first = log.record_inspection(
        _result(synthetic_frames(1, (64, 64))[0], 0, version, library, np.random.default_rng(1)),
        users["op"],
        store_image_file=False,
    )
    template = {k: v for k, v in log.inspection(first).items() if k not in ("id", "recorded_at")}
    have = log.sdb.conn.execute("SELECT COUNT(*) FROM chain").fetchone()[0]
    made, t0 = 0, time.perf_counter()
    while have + made < rows:
        with log.sdb.transaction():
            for _ in range(min(per_tx, rows - have - made)):
                made += 1
                row = dict(
                    template,
                    frame_seq=made,
                    captured_at=utc_stamp(),
                    frame_sha256=hashlib.sha256(made.to_bytes(8, "little")).hexdigest(),
                )
                log.sdb.append("inspections", row)
    log.close()
    return {"rows": have + made, "build_s": time.perf_counter() - t0}


def _verify(path: Path) -> dict[str, Any]:
    from inspector.store.decision_log import DecisionLog

    with DecisionLog.open(path) as log:
        t0 = time.perf_counter()
        report = log.verify()
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": report.rows, "ok": report.ok, "problem": report.problem}


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    work = Path(spec["work"])
    if spec["phase"] == "commits":
        return _commits(work, spec["n"], tuple(spec["size"]))
    if spec["phase"] == "wal":
        return _wal_pages(work, spec["n"])
    if spec["phase"] == "build":
        return _build(work / "chain.db", spec["rows"])
    return _verify(work / "chain.db")


# --- the parent ---------------------------------------------------------------------------------


def _run(tree: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a child process running `tree`'s code; its last stdout line is the result."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # runpy from a neutral folder: a script path would put bench/ itself first on sys.path
    code = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        env=env,
        cwd=spec["work"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(f"{tree} {spec['phase']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _order(rounds: int) -> list[str]:
    """base, now, now, base, base, now, ...: each side goes first as often as the other."""
    return [side for r in range(rounds) for side in (("base", "now") if r % 2 == 0 else ("now", "base"))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.commit_compare", description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, help="the other checkout (e.g. a git worktree)")
    p.add_argument("--rounds", type=int, default=3, help="commit measurements per side and frame size")
    p.add_argument("--commits", type=int, default=1000)
    p.add_argument("--sizes", default="224x224,640x480", help="frame sizes, WxH, comma-separated")
    p.add_argument("--chain-rows", type=int, default=1_000_000)
    p.add_argument("--verify-rounds", type=int, default=2, help="0: skip the chain build and verify")
    p.add_argument("--wal-check", type=int, default=0, help="also count WAL pages per commit over N commits")
    p.add_argument("--dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0
    if args.base is None:
        p.error("--base is required")
    trees = {"base": args.base.resolve(), "now": ROOT}
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-compare-", dir=args.dir))
    started, log_lines = time.time(), []
    runs: list[dict[str, Any]] = []

    def note(text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S', time.gmtime())}] {text} (load {_load()})"
        log_lines.append(line)
        print(line, flush=True)

    try:
        for size in sizes:
            for i, side in enumerate(_order(args.rounds)):
                out = work / f"c-{side}-{size[0]}-{i}"
                out.mkdir()
                r = _run(trees[side], {"phase": "commits", "work": str(out), "n": args.commits, "size": size})
                shutil.rmtree(out, ignore_errors=True)
                runs.append({"phase": "commits", "side": side, "size": f"{size[0]}x{size[1]}", **r})
                note(f"commits {side} {size[0]}x{size[1]}: {r['per_s']:.0f}/s p50 {r['ms']['p50']:.2f} ms")
        for side in ("base", "now") if args.wal_check else ():
            out = work / f"wal-{side}"
            out.mkdir()
            r = _run(trees[side], {"phase": "wal", "work": str(out), "n": args.wal_check})
            runs.append({"phase": "wal", "side": side, **r})
            note(f"WAL pages per commit {side}: {r['wal_pages_per_commit']:.2f} over {r['n']} commits")
        if args.verify_rounds:
            for side in ("base", "now"):
                (work / side).mkdir()
                r = _run(trees[side], {"phase": "build", "work": str(work / side), "rows": args.chain_rows})
                note(f"built {side}: {r['rows']} rows in {r['build_s']:.0f} s")
            for side in _order(args.verify_rounds):
                r = _run(trees[side], {"phase": "verify", "work": str(work / side)})
                runs.append({"phase": "verify", "side": side, **r})
                note(f"verify {side}: {r['rows']} rows in {r['seconds']:.1f} s ok={r['ok']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _write(args, trees, runs, log_lines, time.time() - started)
    return 0


def _write(
    args: argparse.Namespace, trees: dict[str, Path], runs: list[dict[str, Any]], lines: list[str], wall: float
) -> None:
    def head(tree: Path) -> str:
        return subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()

    heads = {side: head(tree) for side, tree in trees.items()}
    table = [
        "| measurement | base (" + heads["base"] + ") | now (" + heads["now"] + ") | now / base |",
        "|---|---|---|---:|",
    ]
    summary: dict[str, Any] = {}
    for size in sorted({r["size"] for r in runs if r["phase"] == "commits"}):
        per = {
            s: [r["per_s"] for r in runs if r["phase"] == "commits" and r["size"] == size and r["side"] == s]
            for s in trees
        }
        med = {s: statistics.median(v) for s, v in per.items()}
        summary[f"commits_{size}"] = {"runs": per, "median": med, "ratio": med["now"] / med["base"]}
        table.append(
            f"| commits/s with the {size} PNG, {args.commits} per run (median of {len(per['now'])}; runs) |"
            + " | ".join(f" {med[s]:.0f}/s ({', '.join(f'{v:.0f}' for v in per[s])})" for s in ("base", "now"))
            + f" | {med['now'] / med['base']:.2f} |"
        )
        cpu = {
            s: [r["cpu_ms"] for r in runs if r["phase"] == "commits" and r["size"] == size and r["side"] == s]
            for s in trees
        }
        if all(cpu.values()):
            cmed = {s: statistics.median(v) for s, v in cpu.items()}
            summary[f"commits_{size}"]["cpu_ms"] = {"runs": cpu, "median": cmed, "ratio": cmed["now"] / cmed["base"]}
            table.append(
                f"| CPU ms per commit (this process), {size} (median; runs) |"
                + " | ".join(f" {cmed[s]:.2f} ({', '.join(f'{v:.2f}' for v in cpu[s])})" for s in ("base", "now"))
                + f" | {cmed['now'] / cmed['base']:.2f} (time: lower is better) |"
            )
    verifies = [r for r in runs if r["phase"] == "verify"]
    if verifies:
        per = {s: [r["seconds"] for r in verifies if r["side"] == s] for s in trees}
        best = {s: min(v) for s, v in per.items()}
        rows = verifies[0]["rows"]
        summary["verify"] = {
            "runs": per,
            "best": best,
            "ratio": best["now"] / best["base"],
            "rows": rows,
            "ok": {r["side"]: r["ok"] for r in verifies},
        }
        table.append(
            f"| `log verify` of {rows:,} chain rows, s (best of {len(per['now'])}; runs) |"
            + " | ".join(f" {best[s]:.1f} s ({', '.join(f'{v:.1f}' for v in per[s])})" for s in ("base", "now"))
            + f" | {best['now'] / best['base']:.2f} |"
        )
    wal = {r["side"]: r for r in runs if r["phase"] == "wal"}
    if len(wal) == 2:
        table.append(
            f"| WAL pages written per commit, 224x224, {wal['now']['n']} commits (auto-checkpoint off) |"
            + " | ".join(f" {wal[s]['wal_pages_per_commit']:.2f}" for s in ("base", "now"))
            + f" | {wal['now']['wal_pages_per_commit'] / wal['base']['wal_pages_per_commit']:.2f} |"
        )
    images = [r for r in runs if r["phase"] == "commits" and "verify_images_s" in r and r["side"] == "now"]
    extra = []
    if images:
        r = min(images, key=lambda r: r["verify_images_s"])
        extra.append(
            f"`log verify --images` (now) over one run's {r['n']} stored {r['size']} images: "
            f"{r['verify_images_s']:.2f} s at best ({r['n'] / r['verify_images_s']:.0f} images/s)."
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "commit_compare.json").write_text(
        json.dumps({"heads": heads, "summary": summary, "runs": runs, "log": lines}, indent=1)
    )
    md = [
        "# Side by side: commits with the frame's image, and log verify (issue 14)",
        "",
        f"`python -m bench.commit_compare {' '.join(sys.argv[1:])}`  ",
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(time.time() - wall))}-{time.strftime('%H:%M', time.gmtime())} UTC, "
        f"wall {wall:.0f} s, {os.cpu_count()} CPUs shared with other jobs (load averages in the log below).",
        "",
        *table,
        "",
        *extra,
        "",
        "Order and load (1/5/15-min load averages after each measurement):",
        "",
        "```",
        *lines,
        "```",
        "",
    ]
    (args.out / "commit_compare.md").write_text("\n".join(md))
    print("\n".join(table + extra))


if __name__ == "__main__":
    sys.exit(main())
