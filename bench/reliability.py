"""Reliability campaigns: SIGKILL during `inspector watch`, decoder fuzzing through the watched-folder
path, and the GUI's core API writing beside a headless `inspector watch`.

    python -m bench.reliability [--kills 200] [--fuzz 5000] [--concurrency-s 60] [--out bench/results]

`make test` runs short versions of the same campaigns (tests/inspector/test_reliability_*.py);
this module runs the long ones and writes bench/results/reliability.{json,md}.

How `inspector watch` is started: a fork server (`CliServer`) imports the station's modules once
(torch and open_clip take seconds) and forks one child per run; each child executes
`inspector.cli.main([...])`, the console script's entry point, in a process of its own, with its
own database connection, and is killed there. Only the import time is shared. A SIGKILL leaves
the OS page cache intact, so the kill campaign tests atomicity and acknowledge-after-commit,
not power loss (the station requirements, 2.4).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import io
import json
import os
import platform
import queue
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "inspector" / "library" / "seeds" / "generic_surfaces.yaml"
PASSWORDS = {"admin": "Admin-pass-1234", "op": "Oper-pass-12345", "gui": "Gui-oper-pass-1"}
WATCH_MODEL = "inspector-tiny"


# --- a fork server for `inspector ...` processes -------------------------------------------------

_ZYGOTE = r"""
import ctypes, json, os, signal, sys, traceback
sys.path.insert(0, sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the process that started us
import inspector.cli, inspector.commands.inspect, inspector.station, inspector.capture, inspector.store.decision_log
import models.factory, models.scorer  # the slow imports (torch, open_clip), done once
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        libc.prctl(1, signal.SIGKILL)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0); os.dup2(out, 1); os.dup2(err, 2)
        os.chdir(req["cwd"])
        os.environ.update(req["env"])
        try:  # what the console script does: main(argv); an uncaught exception prints its traceback
            rc = inspector.cli.main(req["argv"])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc(); rc = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(rc)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}), flush=True)
"""


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One `inspector ...` run in a forked process; its stdout and stderr go to files."""

    server: CliServer
    pid: int
    stdout_path: Path
    stderr_path: Path
    started: float
    exit_code: int | None = None

    def stdout_lines(self) -> list[str]:
        """Complete lines only: a line cut by a kill was never fully printed, so it acknowledges nothing."""
        text = self.stdout_path.read_text(encoding="utf-8", errors="replace")
        return text.split("\n")[:-1]

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = 60.0) -> int:
        """The exit code (negative: killed by that signal); raises TimeoutError."""
        if self.exit_code is None:
            self.exit_code = self.server._wait_exit(self.pid, timeout)
        return self.exit_code

    def running(self) -> bool:
        return self.exit_code is None and self.server._poll_exit(self.pid) is None

    def wait_for_lines(self, n: int, timeout: float) -> list[str]:
        """Block until `n` complete stdout lines exist (or the child ended, or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.stdout_lines()
            if len(lines) >= n or not self.running() or time.monotonic() > deadline:
                return lines
            time.sleep(0.01)


class CliServer:
    """Starts `inspector` CLI runs quickly: one warm parent process forks a child per run."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE, str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
            preexec_fn=_die_with_parent,
        )
        self._exits: dict[int, int] = {}
        self._runs = 0
        if self._readline(120) != "ready":
            self.close()
            raise RuntimeError("the inspector fork server did not start")

    def _readline(self, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no answer from the fork server within {timeout} s")
        return self.proc.stdout.readline().strip()

    def spawn(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Child:
        """Start `inspector ARGV...` (one at a time: the previous child must have ended)."""
        self._runs += 1
        out, err = self.workdir / f"run-{self._runs}.out", self.workdir / f"run-{self._runs}.err"
        out.touch()
        err.touch()
        request = {"argv": argv, "env": env or {}, "cwd": str(cwd or ROOT), "stdout": str(out), "stderr": str(err)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        pid = json.loads(self._readline(60))["pid"]
        return Child(self, pid, out, err, time.monotonic())

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 120.0) -> Child:
        """Start and wait for a run to end by itself."""
        child = self.spawn(argv, env)
        child.wait(timeout)
        return child

    def _poll_exit(self, pid: int) -> int | None:
        if pid in self._exits:
            return self._exits[pid]
        ready, _, _ = select.select([self.proc.stdout], [], [], 0)
        if ready:
            msg = json.loads(self.proc.stdout.readline())
            self._exits[msg["pid"]] = msg["exit"]
        return self._exits.get(pid)

    def _wait_exit(self, pid: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while pid not in self._exits:
            line = self._readline(max(0.0, deadline - time.monotonic()))
            msg = json.loads(line)
            self._exits[msg["pid"]] = msg["exit"]
        return self._exits[pid]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


_SHARED: dict[str, CliServer] = {}


def shared_cli_server(workdir: Path) -> CliServer:
    """One fork server per process (the test session): started on first use, closed at exit."""
    server = _SHARED.get("server")
    if server is None or server.proc.poll() is not None:
        import atexit

        server = _SHARED["server"] = CliServer(workdir)
        atexit.register(server.close)
    return server


# --- a station database with accounts, made through the core API ---------------------------------


def make_station_db(db: Path, operators: tuple[str, ...] = ("op",)) -> None:
    """A new station database with an admin and operator accounts (passwords in PASSWORDS)."""
    from inspector.store.decision_log import DecisionLog

    with DecisionLog.open(db) as log:
        log.users.create_first_admin("admin", PASSWORDS["admin"])
        admin = log.login("admin", PASSWORDS["admin"])
        for name in operators:
            log.users.add_user(name, "operator", PASSWORDS[name], admin, reason="reliability test", temporary=False)


def watch_argv(source: str, db: Path, *extra: str, user: str = "op") -> list[str]:
    return ["watch", source, "--db", str(db), "--user", user, "--model", WATCH_MODEL, "--library", str(LIBRARY), *extra]


def user_env(user: str = "op") -> dict[str, str]:
    return {"INSPECTOR_PASSWORD": PASSWORDS[user]}


def parse_acks(lines: list[str]) -> list[dict[str, Any]]:
    """The inspections `inspector watch` acknowledged: one JSON object per complete stdout line."""
    return [json.loads(line) for line in lines if line.strip()]


# --- campaign 1: SIGKILL during `inspector watch` -------------------------------------------------


@dataclass
class CrashReport:
    kills: int = 0
    kills_before_first_ack: int = 0
    kills_between_commit_and_ack: int = 0  # a stored inspection of that run was never printed
    acknowledged: int = 0
    found: int = 0
    lost: int = 0
    integrity_failures: int = 0
    chain_failures: int = 0
    unexpected_exits: int = 0
    inspections_stored: int = 0
    chain_rows: int = 0
    leftover_anchor_temp_files: int = 0  # at most the last kill's: the next anchor write removes them
    leftover_image_temp_files: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.integrity_failures == 0
            and self.chain_failures == 0
            and self.unexpected_exits == 0
            and self.kills > 0
        )


def check_database(db: Path, acks: list[dict[str, Any]]) -> tuple[bool, bool, list[dict[str, Any]], int, int]:
    """integrity_check, chain verify, and which acknowledged inspections are missing (or differ)."""
    from inspector.store.decision_log import DecisionLog

    with DecisionLog.open(db, create=False) as log:
        integrity = log.sdb.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        report = log.verify()
        missing = []
        for ack in acks:
            row = log.inspection(ack["inspection_id"])
            if (
                row is None
                or row["frame_sha256"] != ack["image_sha256"]
                or row["source_id"] != ack["source"]
                or row["model_id"] != ack["model_id"]
            ):
                missing.append(ack)
        stored = log.sdb.conn.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]
    return integrity, report.ok, missing, stored, report.rows


def crash_campaign(
    workdir: Path,
    kills: int,
    server: CliServer,
    seed: int = 0,
    startup_share: float = 0.15,
    after_ack_s: float = 0.8,
    progress: Callable[[str], None] | None = None,
) -> CrashReport:
    """Kill `inspector watch` (simulated camera at full rate, tiny model) `kills` times with SIGKILL.

    Most kills land at a uniform random moment within `after_ack_s` after the run's first
    acknowledgement (the write loop); a share lands during start-up (model build, sign-in, whose
    login event is a write). After every kill: integrity_check, the whole chain and the anchor
    verified, and every inspection the run printed looked up by id and frame hash.
    """
    workdir = Path(workdir)
    db = workdir / "crash" / "station.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    make_station_db(db)
    rng, report, t0 = random.Random(seed), CrashReport(), time.monotonic()
    first_ack_s: list[float] = []
    stored_before = 0
    for k in range(kills):
        source = f"sim:?fps=max&count=12&size=64x48&seed={k}"  # new images each run: the image store writes too
        child = server.spawn(watch_argv(source, db), user_env())
        if first_ack_s and rng.random() < startup_share:
            time.sleep(rng.uniform(0.2, 1.0) * sorted(first_ack_s)[len(first_ack_s) // 2])
        else:
            lines = child.wait_for_lines(1, timeout=120)
            if lines:
                first_ack_s.append(time.monotonic() - child.started)
                time.sleep(rng.uniform(0.0, after_ack_s))
        child.kill()
        code = child.wait(60)
        acks = parse_acks(child.stdout_lines())
        if code != -signal.SIGKILL:
            report.unexpected_exits += 1
            report.problems.append(f"kill {k}: exit {code} before the kill: {child.stderr()[-500:]}")
        report.kills += 1
        report.kills_before_first_ack += not acks
        integrity, chain_ok, missing, stored, rows = check_database(db, acks)
        report.acknowledged += len(acks)
        report.found += len(acks) - len(missing)
        report.lost += len(missing)
        report.integrity_failures += not integrity
        report.chain_failures += not chain_ok
        report.kills_between_commit_and_ack += (stored - stored_before) > len(acks)
        stored_before, report.inspections_stored, report.chain_rows = stored, stored, rows
        if missing or not integrity or not chain_ok:
            report.problems.append(f"kill {k}: integrity {integrity}, chain {chain_ok}, missing {len(missing)}")
        if progress and (k + 1) % 10 == 0:
            progress(f"kill {k + 1}/{kills}: acknowledged {report.acknowledged}, lost {report.lost}")
    report.leftover_anchor_temp_files = len(list(db.parent.glob(f".{db.name}.anchor.*.tmp")))
    report.leftover_image_temp_files = len(list(db.parent.glob("images/**/*.tmp")))
    report.seconds = round(time.monotonic() - t0, 1)
    return report


# --- campaign 2: decoder fuzzing through the watched-folder path ----------------------------------


def _encode(image: Any, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def fuzz_seeds() -> list[bytes]:
    """Small valid files of every accepted format and the pixel kinds a camera or an import brings."""
    from PIL import Image

    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    gray16 = Image.fromarray((rng.integers(0, 65536, (9, 7))).astype(np.uint16))
    rgba = Image.fromarray(rng.integers(0, 256, (8, 6, 4), dtype=np.uint8), "RGBA")
    return [
        _encode(rgb, "PNG"),
        _encode(rgb, "JPEG", quality=80),
        _encode(rgb, "TIFF"),
        _encode(rgb, "BMP"),
        _encode(rgb.convert("L"), "PNG"),
        _encode(gray16, "PNG"),
        _encode(gray16, "TIFF"),
        _encode(rgba, "PNG"),
        _encode(rgb.convert("CMYK"), "JPEG"),
        _encode(rgb.convert("CMYK"), "TIFF"),
        _encode(rgb, "TIFF", compression="tiff_lzw"),
        _encode(rgb.convert("P"), "PNG", transparency=0),
    ]


@dataclass
class FuzzReport:
    examples: int = 0
    decoded: int = 0
    refused: int = 0
    refusal_events: int = 0
    missing_events: int = 0
    unclear_messages: int = 0
    escaped_exceptions: int = 0
    slowest_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.examples > 0
            and self.missing_events == 0
            and self.unclear_messages == 0
            and self.escaped_exceptions == 0
            and self.refusal_events == self.refused
        )


def folder_fuzz_once(folder: Path, data: bytes, name: str, report: FuzzReport) -> None:
    """Write `data` as `name` into an empty folder and read it through FolderSource: the file must
    either become a valid RGB frame or be refused with exactly one `file_rejected` event that names
    it and says why. Anything else (another exception, no event, a hang) is counted as a failure."""
    from inspector.capture.base import rgb_problem
    from inspector.capture.folder import FolderSource
    from inspector.capture.simulated import ManualClock

    (folder / name).write_bytes(data)
    events: list[tuple[str, dict[str, Any]]] = []
    clock = ManualClock()
    src = FolderSource(
        folder,
        settle_s=0.5,
        decode_retries=1,
        on_event=lambda k, d: events.append((k, d)),
        clock=clock,
        sleep=clock.sleep,
    )
    t0 = time.perf_counter()
    try:
        with src:
            frame = src.read(5.0)  # camera time: the fake clock makes the settle waits instant
    except Exception as exc:  # noqa: BLE001  counting what escapes is the point of the campaign
        report.escaped_exceptions += 1
        report.problems.append(f"{name} ({len(data)} bytes): {type(exc).__name__}: {exc}"[:300])
        return
    finally:
        report.slowest_s = max(report.slowest_s, time.perf_counter() - t0)
        report.examples += 1
        (folder / name).unlink()
    rejected = [d for k, d in events if k == "file_rejected"]
    if frame is not None:
        report.decoded += 1
        if rgb_problem(frame.rgb) or rejected:
            report.escaped_exceptions += 1
            report.problems.append(f"{name}: decoded to {frame.rgb.dtype} {frame.rgb.shape} with events {rejected}")
        return
    report.refused += 1
    report.refusal_events += len(rejected)
    if len(rejected) != 1:
        report.missing_events += 1
        report.problems.append(f"{name}: refused with {len(rejected)} file_rejected events")
    elif rejected[0].get("file") != name or name not in rejected[0].get("error", "") or len(rejected[0]["error"]) < 30:
        report.unclear_messages += 1
        report.problems.append(f"{name}: unclear refusal {rejected[0]}")


def fuzz_campaign(examples: int) -> FuzzReport:
    """Hypothesis-generated files (mutated, truncated, spliced valid files and raw bytes) through
    the watched-folder decoder path; see folder_fuzz_once for what each must do."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seeds = fuzz_seeds()
    report = FuzzReport()
    folder = Path(tempfile.mkdtemp(prefix="rankclip-fuzz-"))
    suffixes = [".png", ".jpg", ".tif", ".bmp"]

    data_strategy = st.one_of(
        st.binary(max_size=1024),
        st.builds(
            _mutate,
            st.sampled_from(seeds),
            st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=16),
            st.one_of(st.none(), st.integers(0, 10**6)),
            st.one_of(st.none(), st.binary(min_size=1, max_size=64)),
        ),
    )

    @settings(
        max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(data=data_strategy, suffix=st.sampled_from(suffixes))
    def one(data: bytes, suffix: str) -> None:
        folder_fuzz_once(folder, data, f"f{report.examples}{suffix}", report)

    try:
        with warnings.catch_warnings():  # Pillow warns about the corrupt EXIF it skips: expected here
            warnings.simplefilter("ignore", UserWarning)
            one()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def _mutate(seed: bytes, edits: list[tuple[int, int]], cut: int | None, splice: bytes | None) -> bytes:
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    if splice is not None:
        at = (cut or 0) % (len(data) + 1)
        data[at:at] = splice
    elif cut is not None:
        data = data[: cut % (len(data) + 1)]
    return bytes(data)


# --- campaign 3: the GUI's writes beside a headless `inspector watch` ------------------------------


class FakeScorer:
    """A deterministic scorer for the GUI side: what is under test is the database, not the model."""

    model_id, logit_scale, image_size, device = "fake-gui-scorer", 30.0, 8, "cpu"
    dim = 32

    def _vec(self, key: bytes) -> np.ndarray:
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
        v = rng.normal(size=self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def embed_texts(self, texts: Any) -> np.ndarray:
        return np.stack([self._vec(t.encode()) for t in texts]) if len(texts) else np.zeros((0, self.dim), np.float32)

    def embed_images(self, images: Any) -> np.ndarray:
        return np.stack([self._vec(np.ascontiguousarray(i).tobytes()[:4096]) for i in images])


@dataclass
class ConcurrencyReport:
    seconds: float = 0.0
    watch_acknowledged: int = 0
    watch_rows: int = 0
    gui_inspections: int = 0
    gui_rows: int = 0
    gui_decisions: int = 0
    decision_rows: int = 0
    lost: int = 0
    duplicated: int = 0
    foreign_rows: int = 0
    interleavings: int = 0  # in id order, how often the writer changes: proof the two really overlapped
    chain_ok: bool = False
    seq_gapless: bool = False
    integrity_ok: bool = False
    watch_exit: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.foreign_rows == 0
            and self.chain_ok
            and self.seq_gapless
            and self.integrity_ok
            and self.watch_exit == 0
            and self.watch_acknowledged > 0
            and self.gui_decisions > 0
        )


def concurrency_campaign(
    workdir: Path, server: CliServer, watch_frames: int, gui_parts: int, min_seconds: float = 0.0
) -> ConcurrencyReport:
    """`inspector watch` (a child process, simulated camera) and the GUI's core API in this process
    (LiveCapture on a capture thread recording every shown part, the main thread committing an
    answer to each, as the operator view does) write the same database at the same time."""
    from inspector.capture.simulated import SimulatedCamera, synthetic_images
    from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
    from inspector.frame.answers import record_answer
    from inspector.frame.live import LiveCapture
    from inspector.station import Station
    from inspector.store.decision_log import DecisionLog

    db = Path(workdir) / "concurrency" / "station.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    make_station_db(db, ("op", "gui"))
    report, t0 = ConcurrencyReport(), time.monotonic()
    child = server.spawn(
        watch_argv("sim:?fps=max&count=8&size=64x48&seed=1", db, "--max-frames", str(watch_frames)), user_env()
    )
    if not child.wait_for_lines(1, timeout=120):  # the watch is writing: now the GUI joins in
        report.watch_exit = child.wait(5) if not child.running() else None
        report.problems.append(f"watch never acknowledged: {child.stderr()[-800:]}")
        child.kill()
        return report
    config = StationConfig(library=LibraryConfig(str(LIBRARY)), database=DatabaseConfig(str(db)))
    images = synthetic_images(5, (40, 48), seed=9)
    results: queue.Queue = queue.Queue()
    stop = threading.Event()
    shown_ids: list[int] = []
    decision_ids: list[int] = []
    with Station.open(config, scorer=FakeScorer()) as station:
        gui = station.log.login("gui", PASSWORDS["gui"])
        capture = LiveCapture(station, lambda on_event: SimulatedCamera(images, fps=None, source_id="gui-cam"), gui)

        def capture_thread() -> None:  # the GUI's CaptureWorker: open, step ..., close on one thread
            capture.open()
            try:
                while not stop.is_set():
                    result = capture.step(0.5)
                    if result is not None:
                        results.put(result)
                        time.sleep(0.002)  # an operator needs a moment; the watch keeps writing meanwhile
            except Exception as exc:  # noqa: BLE001  reported, then the test fails on it
                results.put(exc)
            finally:
                capture.close()
                results.put(None)

        worker = threading.Thread(target=capture_thread, name="gui-capture")
        worker.start()
        try:
            while True:
                item = results.get(timeout=60)
                if item is None:
                    break
                if isinstance(item, Exception):
                    report.problems.append(f"GUI capture failed: {type(item).__name__}: {item}")
                    break
                shown_ids.append(item.inspection_id)
                decision_ids.append(record_answer(station.log, item, gui, "confirm"))
                enough = len(decision_ids) >= gui_parts and time.monotonic() - t0 >= min_seconds
                if enough and not child.running():
                    stop.set()
        finally:
            stop.set()
            worker.join(30)
    report.watch_exit = child.wait(300)
    acks = parse_acks(child.stdout_lines())
    if report.watch_exit != 0:
        report.problems.append(f"watch exited {report.watch_exit}: {child.stderr()[-800:]}")
    report.seconds = round(time.monotonic() - t0, 1)
    report.watch_acknowledged, report.gui_inspections, report.gui_decisions = (
        len(acks),
        len(shown_ids),
        len(decision_ids),
    )
    with DecisionLog.open(db, create=False) as log:
        rows = log.inspections(limit=10**7)
        decisions = log.decisions(limit=10**7)
        report.integrity_ok = log.sdb.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        chain = log.verify()
        report.chain_ok = chain.ok
        if not chain.ok:
            report.problems.append(str(chain))
        seqs = [r[0] for r in log.sdb.conn.execute("SELECT seq FROM chain ORDER BY seq")]
        report.seq_gapless = seqs == list(range(1, len(seqs) + 1))
    watch_rows = {r["id"]: r for r in rows if r["user"] == "op"}
    gui_rows = {r["id"]: r for r in rows if r["user"] == "gui"}
    report.watch_rows, report.gui_rows, report.decision_rows = len(watch_rows), len(gui_rows), len(decisions)
    report.foreign_rows = len(rows) - len(watch_rows) - len(gui_rows)
    writers = [r["user"] for r in rows]
    report.interleavings = sum(a != b for a, b in zip(writers, writers[1:]))
    acked_ids = [a["inspection_id"] for a in acks]
    report.lost = (
        len(set(acked_ids) - set(watch_rows))
        + len(set(shown_ids) - set(gui_rows))
        + len(set(decision_ids) - {d["id"] for d in decisions})
    )
    # Duplicated: one acknowledgement or answer stored twice, or an id handed out twice.
    report.duplicated = (
        (len(watch_rows) - len(set(acked_ids)))
        + (len(gui_rows) - len(set(shown_ids)))
        + (len(decisions) - len(set(decision_ids)))
        + (len(acked_ids) - len(set(acked_ids)))
        + (len(shown_ids) - len(set(shown_ids)))
    )
    for source_rows in (watch_rows, gui_rows):
        keys = [(r["source_id"], r["frame_seq"]) for r in source_rows.values()]
        report.duplicated += len(keys) - len(set(keys))
    return report


# --- the long run -----------------------------------------------------------------------------------


def _machine() -> str:
    return (
        f"{platform.node() or 'host'}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def _markdown(results: dict[str, Any]) -> str:
    c, f, k = results["crash"], results["fuzz"], results["concurrency"]
    lines = [
        "# Reliability campaigns (issue 7)",
        "",
        f"Command: `{results['command']}`  ",
        f"Machine: {results['machine']}  ",
        f"Date (UTC): {results['date']}  ",
        f"Total time: {results['seconds']:.0f} s",
        "",
        "## SIGKILL during `inspector watch`",
        "",
        "`inspector watch sim:?fps=max` (tiny model) killed with SIGKILL at a random moment, each run a new",
        "process forked from a warm parent that holds only the imports (see bench/reliability.py). After each",
        "kill: `PRAGMA integrity_check`, the whole chain and its anchor verified, and every inspection the run",
        "printed (= acknowledged after COMMIT) looked up by id and frame hash.",
        "",
        "| kills | during start-up | between COMMIT and print | acknowledged | found | lost | integrity failures | chain failures | unexpected exits |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {c['kills']} | {c['kills_before_first_ack']} | {c['kills_between_commit_and_ack']} | {c['acknowledged']} "
        f"| {c['found']} | **{c['lost']}** | {c['integrity_failures']} | {c['chain_failures']} | {c['unexpected_exits']} |",
        "",
        f"{c['inspections_stored']} inspections and {c['chain_rows']} chained rows at the end. "
        f"Temporary files left by killed writers (never referenced, harmless): {c['leftover_anchor_temp_files']} of the"
        f" anchor (the next anchor write removes them), {c['leftover_image_temp_files']} in the image store. {c['seconds']:.0f} s.",
        "A SIGKILL keeps the OS page cache, so this shows atomicity and acknowledge-after-commit, not power-loss safety.",
        "",
        "## Decoder fuzzing through the watched-folder path",
        "",
        "Hypothesis-generated files (mutated, truncated and spliced PNG/JPEG/TIFF/BMP of 8/16-bit, gray, RGBA, CMYK,",
        "palette; raw bytes) dropped into a watched folder one at a time (FolderSource, the `inspector watch` path).",
        "Each must become a valid RGB frame or be refused with exactly one `file_rejected` event naming the file.",
        "",
        "| examples | decoded | refused | refusal events | missing events | unclear messages | escaped exceptions | slowest (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {f['examples']} | {f['decoded']} | {f['refused']} | {f['refusal_events']} | {f['missing_events']} "
        f"| {f['unclear_messages']} | {f['escaped_exceptions']} | {f['slowest_s']:.3f} |",
        "",
        "## The GUI's core API beside a headless `inspector watch`",
        "",
        "A watch child process (simulated camera, tiny model) and, in the bench process, LiveCapture on a",
        "capture thread (records every shown part) with an answer committed for each part on the main thread.",
        "",
        "| seconds | watch acknowledged | watch rows | GUI inspections | GUI rows | GUI decisions | decision rows | writer switches | lost | duplicated | chain | gapless seq |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:--:|:--:|",
        f"| {k['seconds']:.0f} | {k['watch_acknowledged']} | {k['watch_rows']} | {k['gui_inspections']} | {k['gui_rows']} "
        f"| {k['gui_decisions']} | {k['decision_rows']} | {k['interleavings']} | **{k['lost']}** | **{k['duplicated']}** "
        f"| {'ok' if k['chain_ok'] else 'BROKEN'} | {'yes' if k['seq_gapless'] else 'NO'} |",
        "",
    ]
    problems = c["problems"] + f["problems"] + k["problems"]
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems[:50]] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--fuzz", type=int, default=5000, help="fuzzed files through the folder path")
    parser.add_argument("--concurrency-frames", type=int, default=6000, help="frames the watch child records")
    parser.add_argument("--concurrency-s", type=float, default=60.0, help="at least this long, both writing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="rankclip-reliability-"))
    server = CliServer(work / "runs")
    try:
        say(f"crash campaign: {args.kills} kills")
        crash = crash_campaign(work, args.kills, server, seed=args.seed, progress=say)
        say(f"crash: {crash.kills} kills, {crash.acknowledged} acknowledged, {crash.lost} lost")
        say(f"concurrency campaign: {args.concurrency_frames} watch frames, >= {args.concurrency_s} s")
        conc = concurrency_campaign(
            work, server, args.concurrency_frames, gui_parts=100, min_seconds=args.concurrency_s
        )
        say(f"concurrency: lost {conc.lost}, duplicated {conc.duplicated}, chain ok {conc.chain_ok}")
    finally:
        server.close()
    say(f"fuzz campaign: {args.fuzz} files")
    fuzz = fuzz_campaign(args.fuzz)
    say(
        f"fuzz: {fuzz.examples} files, {fuzz.refused} refused, {fuzz.refusal_events} events, "
        f"{fuzz.escaped_exceptions} escaped"
    )
    shutil.rmtree(work, ignore_errors=True)
    results = {
        "command": " ".join(["python -m bench.reliability", *(sys.argv[1:] if argv is None else argv)])
        + ("  (make bench-reliability)" if not (sys.argv[1:] if argv is None else argv) else ""),
        "machine": _machine(),
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "seconds": round(time.monotonic() - t0, 1),
        "crash": {**asdict(crash), "ok": crash.ok},
        "fuzz": {**asdict(fuzz), "ok": fuzz.ok},
        "concurrency": {**asdict(conc), "ok": conc.ok},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reliability.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "reliability.md").write_text(_markdown(results))
    say(f"wrote {out / 'reliability.json'} and {out / 'reliability.md'}")
    return 0 if crash.ok and fuzz.ok and conc.ok else 1


if __name__ == "__main__":
    sys.exit(main())
