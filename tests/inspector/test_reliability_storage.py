"""Disk full, I/O errors and a read-only database: a plain StorageError naming the file and the
cause, nothing acknowledged that was not stored, the chain intact afterwards, and `inspector
watch` keeps running: once the disk has room again the next frames are stored.

Faults are real, not mocked: SQLite's own SQLITE_FULL through `PRAGMA max_page_count`; a full
tmpfs (ENOSPC for the database and the image files); RLIMIT_FSIZE set on a running watch process
(the kernel fails its writes with EFBIG: SQLite reports an I/O error); a read-only bind mount
(EROFS, which stops root too; file modes would not) or, when not root, file modes.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.reliability import (  # noqa: E402
    LIBRARY,
    PASSWORDS,
    make_station_db,
    parse_acks,
    shared_cli_server,
    user_env,
    watch_argv,
)
from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict  # noqa: E402
from inspector.library.labels import load_library  # noqa: E402
from inspector.store.database import StorageError  # noqa: E402
from inspector.store.decision_log import DecisionLog  # noqa: E402


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory):
    return shared_cli_server(tmp_path_factory.getbasetemp() / "inspector-cli")


def _station(db: Path) -> tuple[DecisionLog, object, int]:
    make_station_db(db)
    log = DecisionLog.open(db, create=False)
    version = log.library.seed_if_empty(load_library(LIBRARY), str(LIBRARY))
    return log, log.login("op", PASSWORDS["op"]), version


def _result(version: int, seed: int) -> InspectionResult:
    rgb = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    candidates = tuple(
        Candidate(f"label-{i}", f"Label {i}", "rework", "a long description " * 20, 0.5 - i / 10, 0.3 - i / 40, i + 1)
        for i in range(8)
    )
    frame = Frame(rgb, datetime.now(UTC), "cam-1", seed, origin=f"part-{seed}.png")
    return InspectionResult(
        frame,
        Ranking(candidates, "model-x", version),
        Verdict("rework", False, False, "top-1"),
        f"{seed:064x}",
        {"encode": 1.0},
    )


def _counts(log: DecisionLog) -> dict[str, int]:
    return {
        t: log.sdb.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
        for t in ("inspections", "decisions", "events", "chain")
    }


def _write_part(folder: Path, name: str, seed: int, compress_level: int = 6) -> None:
    """A PNG part; the same seed with another compress_level gives other file bytes (a new frame for
    the folder source) but the same pixels, whose stored image already exists: only the database
    write is left to fail."""
    rgb = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    tmp = folder / f".{name}"
    Image.fromarray(rgb).save(tmp, format="PNG", compress_level=compress_level)
    tmp.rename(folder / name)  # dot-files are ignored until renamed, like a camera's "save as"


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _verified(db: Path) -> tuple[list[dict], list[dict]]:
    with DecisionLog.open(db, create=False) as log:
        assert log.sdb.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        report = log.verify()
        assert report.ok, report.problem
        return log.inspections(limit=10**6), log.events(limit=10**6)


# --- SQLITE_FULL in the core ------------------------------------------------------------------------


def test_a_full_database_refuses_whole_records_with_a_plain_error(tmp_path: Path) -> None:
    db = tmp_path / "station.db"
    log, op, version = _station(db)
    try:
        first = log.record_inspection(_result(version, 1), op)
        pages = log.sdb.conn.execute("PRAGMA page_count").fetchone()[0]
        log.sdb.conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: SQLITE_FULL
        stored, error = [first], None
        for seed in range(2, 200):  # free pages inside the file take a few more rows first
            before = _counts(log)
            try:
                stored.append(log.record_inspection(_result(version, seed), op))
            except StorageError as exc:
                error = exc
                break
        assert error is not None, "the database never filled up"
        message = str(error)
        assert str(db) in message and "database or disk is full" in message and "free space" in message
        assert _counts(log) == before  # no half record: not the row, not its chain entry
        with pytest.raises(StorageError, match="full"):
            log.record_decision(Decision(first, "reject_image", "op", comment="blurred " * 1000), op)
        with pytest.raises(StorageError, match="full"):
            log.record_event("camera_fault", {"message": "x" * 5000})
        assert _counts(log) == before
        assert log.verify().ok
        log.sdb.conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
        later = log.record_inspection(_result(version, 500), op)
        assert later > stored[-1]
        assert [r["id"] for r in log.inspections(limit=10**6)] == [*stored, later]
    finally:
        log.close()
    _verified(db)


# --- a full disk under a running `inspector watch` -----------------------------------------------------


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs CAP_SYS_ADMIN): {made.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path) -> Path:
    ballast = disk / "ballast"
    with open(ballast, "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
    return ballast


@pytest.mark.timeout(180)
def test_watch_on_a_full_disk_says_so_acknowledges_nothing_and_resumes(tmp_path: Path, cli_server) -> None:
    line = tmp_path / "line"
    line.mkdir()
    with _tmpfs(tmp_path / "disk", "6m") as disk:
        db = disk / "station.db"
        make_station_db(db)
        child = cli_server.spawn(watch_argv(str(line), db, "--max-frames", "6", "--timeout", "0.5"), user_env())
        try:
            for i in range(2):
                _write_part(line, f"a{i}.png", i)
            assert len(child.wait_for_lines(2, 120)) == 2, child.stderr()
            ballast = _fill(disk)
            _write_part(line, "b0.png", 10)  # a new image file: its write fails (ENOSPC)
            _write_part(line, "b1.png", 0, compress_level=1)  # a0's pixels: the commit fails (SQLITE_FULL)
            _wait(lambda: all(f"b{i}.png" in child.stderr() for i in range(2)), 60, "both refusals on stderr")
            time.sleep(1.0)  # the refused files are retried meanwhile: still nothing may be acknowledged
            assert child.running() and len(child.stdout_lines()) == 2
            ballast.unlink()  # space is freed
            for i in range(2):
                _write_part(line, f"c{i}.png", 20 + i)
            assert child.wait(120) == 0, child.stderr()
        finally:
            child.kill()
            child.wait(30)
        err = child.stderr()
        acks = parse_acks(child.stdout_lines())
        assert "Traceback" not in err
        refusals = [ln for ln in err.splitlines() if "was NOT recorded" in ln]
        assert all(str(disk) in ln and "free space" in ln for ln in refusals)
        assert {"b0.png"} == {ln.split("(")[1].split(")")[0] for ln in refusals if "No space left on device" in ln}
        assert {"b1.png"} == {ln.split("(")[1].split(")")[0] for ln in refusals if "database or disk is full" in ln}
        # Every frame, including the two refused while the disk was full, was stored once space came back.
        assert sorted(a["origin"] for a in acks) == ["a0.png", "a1.png", "b0.png", "b1.png", "c0.png", "c1.png"]
        rows, events = _verified(db)
        assert sorted(r["id"] for r in rows) == sorted(a["inspection_id"] for a in acks)
        (recovered,) = [e for e in events if e["kind"] == "storage_recovered"]
        detail = json.loads(recovered["detail"])
        assert detail["frames_not_recorded"] == len(refusals) >= 2 and detail["first_error"]


# --- an I/O error (RLIMIT_FSIZE: the kernel fails the writes) under a running watch --------------------


@pytest.mark.timeout(240)
@pytest.mark.subprocess
def test_watch_through_write_errors_reports_them_and_stores_the_next_frame(tmp_path: Path) -> None:
    db, line = tmp_path / "station.db", tmp_path / "line"
    line.mkdir()
    make_station_db(db)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **user_env()}
    # A process of its own (not the fork server): its stdout is a pipe, which the file-size limit
    # does not touch, so only the database, WAL and image writes fail.
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector.cli", *watch_argv(str(line), db, "--max-frames", "4", "--timeout", "0.5")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda s=s, b=b: b.extend(iter(s.readline, "")), daemon=True)
        for s, b in ((proc.stdout, out), (proc.stderr, err))
    ]
    for t in readers:
        t.start()
    try:
        _write_part(line, "a.png", 1)
        _wait(lambda: len(out) == 1 or proc.poll() is not None, 180, "the first acknowledgement")
        assert len(out) == 1, "".join(err)
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
        _write_part(line, "b.png", 2)  # its image file write fails (EFBIG)
        _write_part(line, "b2.png", 1, compress_level=1)  # a.png's pixels: the WAL write fails (SQLITE_IOERR)
        _wait(
            lambda: all(f"{n}.png" in "".join(err) for n in ("b", "b2")) or proc.poll() is not None,
            60,
            "the refusals of b.png and b2.png",
        )
        time.sleep(0.5)
        assert proc.poll() is None and len(out) == 1
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        _write_part(line, "c.png", 3)
        assert proc.wait(120) == 0, "".join(err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for t in readers:
            t.join(10)
    text = "".join(err)
    assert "Traceback" not in text
    refusals = [ln for ln in text.splitlines() if "was NOT recorded" in ln]
    assert refusals and all(str(tmp_path) in ln and "I/O error" in ln for ln in refusals), text
    assert {"b.png"} == {ln.split("(")[1].split(")")[0] for ln in refusals if "File too large" in ln}
    assert {"b2.png"} == {ln.split("(")[1].split(")")[0] for ln in refusals if "disk I/O error" in ln}
    acks = parse_acks(out)
    assert sorted(a["origin"] for a in acks) == ["a.png", "b.png", "b2.png", "c.png"]
    rows, events = _verified(db)
    assert sorted(r["id"] for r in rows) == sorted(a["inspection_id"] for a in acks)
    assert [json.loads(e["detail"])["frames_not_recorded"] for e in events if e["kind"] == "storage_recovered"] == [
        len(refusals)
    ]


# --- the anchor file cannot be moved forward (the commit itself succeeded) -------------------------


@pytest.mark.timeout(180)
def test_watch_does_not_acknowledge_a_frame_whose_anchor_could_not_be_written(tmp_path: Path, cli_server) -> None:
    line, db = tmp_path / "line", tmp_path / "station.db"
    line.mkdir()
    make_station_db(db)
    lock = db.with_name("station.db.anchor.lock")
    child = cli_server.spawn(watch_argv(str(line), db, "--max-frames", "2", "--timeout", "0.3"), user_env())
    try:
        _write_part(line, "a.png", 1)
        assert len(child.wait_for_lines(1, 120)) == 1, child.stderr()
        lock.unlink()
        lock.mkdir()  # the anchor's lock file cannot be opened: the anchor write fails after COMMIT
        _write_part(line, "b.png", 2)
        _wait(lambda: "b.png" in child.stderr() or not child.running(), 60, "the report about b.png")
        assert child.running() and len(child.stdout_lines()) == 1
        lock.rmdir()
        _write_part(line, "c.png", 3)
        assert child.wait(120) == 0, child.stderr()
    finally:
        child.kill()
        child.wait(30)
    err = child.stderr()
    assert "Traceback" not in err and "b.png) is stored but NOT acknowledged" in err and "IS committed" in err
    acks = parse_acks(child.stdout_lines())
    assert [a["origin"] for a in acks] == ["a.png", "c.png"]
    rows, events = _verified(db)  # the anchor caught up with the next commit
    assert sorted(r["origin"] for r in rows) == ["a.png", "b.png", "c.png"]  # stored, just not acknowledged
    (recovered,) = [json.loads(e["detail"]) for e in events if e["kind"] == "storage_recovered"]
    assert recovered["frames_stored_not_acknowledged"] == 1 and recovered["frames_not_recorded"] == 0


# --- a read-only database --------------------------------------------------------------------------------


@contextlib.contextmanager
def _read_only_view(folder: Path, view: Path) -> Iterator[Path]:
    """`folder` as seen through a path where writes fail for real, also for root."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield folder
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    view.mkdir()
    bound = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"root, and no bind mount here for a real read-only view: {bound.stderr.strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True, text=True)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount the bind mount read-only: {ro.stderr.strip()}")
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


@pytest.mark.subprocess
def test_a_read_only_database_is_a_plain_error_and_stays_intact(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "station.db"
    log, op, version = _station(db)
    log.record_inspection(_result(version, 1), op)
    before = _counts(log)
    try:  # `log` stays open read-write (the GUI, say) while a second program gets a read-only view
        with _read_only_view(data, tmp_path / "ro") as view:
            with DecisionLog.open(view / "station.db", create=False) as ro:
                assert ro.inspections()[0]["id"] == 1  # reading works
                with pytest.raises(StorageError) as info:
                    ro.login("op", PASSWORDS["op"])  # a login is a logged event: a write
                message = str(info.value)
                assert str(view / "station.db") in message and "readonly database" in message
                assert "read-only" in message
                with pytest.raises(StorageError, match=r"(?s)image file .*read-only"):
                    ro.record_inspection(_result(version, 2), op)
    finally:
        assert _counts(log) == before
        log.close()
    rows, _ = _verified(db)
    assert len(rows) == 1


@pytest.mark.timeout(180)
def test_watch_on_a_read_only_database_exits_2_with_a_plain_message(tmp_path: Path, cli_server) -> None:
    data, line = tmp_path / "data", tmp_path / "line"
    data.mkdir()
    line.mkdir()
    _write_part(line, "a.png", 1)
    db = data / "station.db"
    make_station_db(db)
    with _read_only_view(data, tmp_path / "ro") as view:
        alone = cli_server.run(watch_argv(str(line), view / "station.db", "--exit-when-idle"), user_env(), 120)
        with DecisionLog.open(db, create=False):  # now another program holds it open read-write
            shared = cli_server.run(watch_argv(str(line), view / "station.db", "--exit-when-idle"), user_env(), 120)
    for child in (alone, shared):
        err = child.stderr()
        assert child.exit_code == 2 and child.stdout_lines() == [], err
        assert "Traceback" not in err and err.startswith("inspector: error: ")
        assert str(view / "station.db") in err and "read-only" in err
    rows, _ = _verified(db)
    assert rows == []
