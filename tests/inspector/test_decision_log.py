"""DecisionLog: durable pragmas, inspections with images, decisions and corrections, queries,
append-only triggers, SQL-injection strings stored verbatim, crash and concurrency safety."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.errors import LibraryError
from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.library.labels import library_from_dict
from inspector.store.decision_log import STALE_TEMP_S, DecisionError, DecisionLog, staging_dir
from inspector.store.users import AuthenticationFailed, Session

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"admin": "admin-secret-1", "op": "operator-secret", "qa": "qa-engineer-pw", "aud": "auditor-pass-9"}
ROLES = {"op": "operator", "qa": "qa", "aud": "auditor"}
LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "t",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["a clean surface"]},
            {"id": "scratch", "disposition": "rework", "severity": 2, "descriptions": ["a thin scratch"]},
            {"id": "dent", "disposition": "scrap", "severity": 4, "descriptions": ["a dent in the sheet"]},
        ],
    }
)


def make_station(path: Path) -> tuple[DecisionLog, dict[str, Session], int]:
    log = DecisionLog.open(path)
    log.users.create_first_admin("admin", PASSWORDS["admin"])
    users = {"admin": log.login("admin", PASSWORDS["admin"])}
    for name, role in ROLES.items():
        log.users.add_user(name, role, PASSWORDS[name], users["admin"], temporary=False)
        users[name] = log.login(name, PASSWORDS[name])
    version = log.library.import_library(LIBRARY, users["qa"], "initial library")
    return log, users, version


def make_result(
    version: int,
    rgb: np.ndarray | None = None,
    source: str = "cam-1",
    top: str = "scratch",
    when: datetime | None = None,
) -> InspectionResult:
    labels = [top] + [x for x in ("ok", "scratch", "dent") if x != top]
    scores, probs = [0.31, 0.22, -0.05], [0.7, 0.2, 0.1]
    candidates = tuple(
        Candidate(lab, lab.title(), "rework", f"desc of {lab}", s, p, i + 1)
        for i, (lab, s, p) in enumerate(zip(labels, scores, probs))
    )
    rgb = np.full((6, 5, 3), 40, np.uint8) if rgb is None else rgb
    frame = Frame(rgb, when or datetime.now(UTC), source, 7, origin="f.png")
    return InspectionResult(
        frame,
        Ranking(candidates, "model-abc", version),
        Verdict("rework", False, False, "top-1"),
        "f" * 64,
        {"encode": 12.5},
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Session], int]:
    """One station built per module (scrypt is deliberately slow); each test gets a copy of its files."""
    path = tmp_path_factory.mktemp("template") / "station.db"
    log, users, version = make_station(path)
    log.close()
    return path, users, version


@pytest.fixture()
def station(template, tmp_path: Path) -> tuple[DecisionLog, dict[str, Session], int]:
    source, users, version = template
    for suffix in ("", ".key", ".anchor"):
        shutil.copy2(f"{source}{suffix}", tmp_path / f"station.db{suffix}")
    log = DecisionLog.open(tmp_path / "station.db", create=False)
    yield log, users, version
    log.close()


def test_pragmas_are_durable(station) -> None:
    conn = station[0].sdb.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_inspection_keeps_ranking_image_model_and_library_version(station) -> None:
    log, users, version = station
    rgb = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    result = make_result(version, rgb)
    inspection_id = log.record_inspection(result, users["op"])
    row = log.inspections()[0]
    assert row["id"] == inspection_id and row["library_version"] == version and row["model_id"] == "model-abc"
    stored = json.loads(row["candidates"])
    assert [(c["label_id"], c["score"], c["probability"], c["rank"]) for c in stored] == [
        (c.label_id, c.score, c.probability, c.rank) for c in result.ranking.candidates
    ]
    path = log.image_path(row["image_sha256"])
    assert path.relative_to(log.sdb.path.parent).parts[:4] == (
        "images",
        "sha256",
        row["image_sha256"][:2],
        row["image_sha256"][2:4],
    )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == row["image_sha256"]
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), rgb)
    assert row["captured_at"].endswith("Z") and row["user"] == "op" and row["frame_sha256"] == "f" * 64


def test_numpy_scalars_in_a_ranking_are_stored_as_numbers(station) -> None:
    log, users, version = station
    candidates = (
        Candidate("scratch", "S", "rework", "d", np.float32(0.25), np.float64(0.75), 1),
        Candidate("ok", "O", "accept", "e", np.float32(-0.5), np.float64(0.25), 2),
    )
    result = make_result(version)
    result = InspectionResult(
        result.frame, Ranking(candidates, "m", version), result.verdict, "0" * 64, {"encode": np.float32(3.5)}
    )
    log.record_inspection(result, users["op"])
    row = log.inspections()[0]
    assert [c["score"] for c in json.loads(row["candidates"])] == [0.25, -0.5]
    assert json.loads(row["timings"]) == {"encode": 3.5}


def test_same_image_is_stored_once(station) -> None:
    log, users, version = station
    log.record_inspection(make_result(version), users["op"])
    log.record_inspection(make_result(version), users["op"])
    assert len({r["image_sha256"] for r in log.inspections()}) == 1
    assert len(list(log.sdb.image_root.rglob("*.png"))) == 1
    assert not list(log.sdb.image_root.parent.rglob("*.tmp"))


def test_unknown_library_version_is_refused(station) -> None:
    log, users, version = station
    with pytest.raises(LibraryError, match="not in the database"):
        log.record_inspection(make_result(version + 5), users["op"])
    assert log.inspections() == []


def test_decision_kinds_and_consistency_checks(station) -> None:
    log, users, version = station
    ids = [log.record_inspection(make_result(version), users["op"]) for _ in range(5)]
    log.record_decision(Decision(ids[0], "confirm", "op", "scratch", 1, comment="looks right"), users["op"])
    log.record_decision(Decision(ids[1], "pick", "op", "dent", 3), users["op"])
    log.record_decision(Decision(ids[2], "none_of_these", "op", typed_description="oil film"), users["op"])
    log.record_decision(Decision(ids[3], "reject_image", "op", comment="blurred"), users["op"])
    with pytest.raises(DecisionError, match="rank 2 is not label 'dent'"):
        log.record_decision(Decision(ids[4], "pick", "op", "dent", 2), users["op"])
    with pytest.raises(DecisionError, match="already has decision"):
        log.record_decision(Decision(ids[0], "pick", "op", "ok", 2), users["op"])
    with pytest.raises(DecisionError, match="signed in"):
        log.record_decision(Decision(ids[4], "confirm", "qa", "scratch", 1), users["op"])
    with pytest.raises(DecisionError, match="does not exist"):
        log.record_decision(Decision(999, "reject_image", "op"), users["op"])
    rows = log.decisions()
    assert [r["kind"] for r in rows] == ["confirm", "pick", "none_of_these", "reject_image"]
    assert [r["override"] for r in rows] == [0, 1, 1, 0]
    assert all(r["operator"] == "op" and r["role"] == "operator" and r["decided_at"].endswith("Z") for r in rows)


def test_correction_is_a_new_row_referencing_the_original(station) -> None:
    log, users, version = station
    inspection = log.record_inspection(make_result(version), users["op"])
    original = log.record_decision(Decision(inspection, "confirm", "op", "scratch", 1), users["op"])
    before = log.decisions()[0]
    with pytest.raises(DecisionError, match="reason"):
        log.correct_decision(original, Decision(inspection, "pick", "qa", "ok", 2), "  ", users["qa"])
    fixed = log.correct_decision(
        original, Decision(inspection, "pick", "qa", "ok", 2), "surface was clean", users["qa"]
    )
    rows = {r["id"]: r for r in log.decisions()}
    assert {k: v for k, v in rows[original].items() if k != "corrected_by"} == {
        k: v for k, v in before.items() if k != "corrected_by"
    }
    assert rows[original]["corrected_by"] == fixed and rows[fixed]["corrects_id"] == original
    chain_hash = log.sdb.conn.execute(
        "SELECT hash FROM chain WHERE tbl='decisions' AND row_id=?", (original,)
    ).fetchone()[0]
    assert rows[fixed]["corrects_hash"] == chain_hash and rows[fixed]["reason"] == "surface was clean"
    with pytest.raises(DecisionError, match="already corrected"):
        log.correct_decision(original, Decision(inspection, "reject_image", "qa"), "again", users["qa"])


def test_query_filters(station) -> None:
    log, users, version = station
    a = log.record_inspection(make_result(version, top="scratch"), users["op"])
    b = log.record_inspection(make_result(version, top="dent"), users["qa"])
    log.record_decision(Decision(a, "confirm", "op", "scratch", 1), users["op"])
    log.record_decision(Decision(b, "confirm", "qa", "dent", 1), users["qa"])
    assert [r["id"] for r in log.inspections(label="dent")] == [b]
    assert [r["id"] for r in log.inspections(operator="op")] == [a]
    assert [r["inspection_id"] for r in log.decisions(operator="qa")] == [b]
    assert [r["inspection_id"] for r in log.decisions(label="scratch")] == [a]
    assert log.inspections(verdict="accept") == [] and len(log.inspections(verdict="rework")) == 2
    future = datetime.now(UTC) + timedelta(hours=1)
    assert log.inspections(from_ts=future) == [] and len(log.inspections(to_ts=future)) == 2
    log.record_event("camera_fault", {"camera": "line-2", "error": "timeout"})
    fault = log.events(kind="camera_fault")
    assert len(fault) == 1 and fault[0]["user"] is None and json.loads(fault[0]["detail"])["camera"] == "line-2"


@pytest.mark.parametrize(
    "table",
    [
        "inspections",
        "decisions",
        "events",
        "users",
        "library_versions",
        "library_labels",
        "library_descriptions",
        "chain",
        "credentials",
    ],
)
def test_triggers_refuse_update_and_delete(station, table: str) -> None:
    log, users, version = station
    inspection = log.record_inspection(make_result(version), users["op"])
    log.record_decision(Decision(inspection, "reject_image", "op"), users["op"])
    raw = sqlite3.connect(log.sdb.path)  # a second connection, outside the application
    try:
        for conn in (log.sdb.conn, raw):
            column = "recorded_at" if table != "chain" else "ts"
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(f"UPDATE {table} SET {column} = 'x'")
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(f"DELETE FROM {table}")
        assert raw.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0
    finally:
        raw.close()


INJECTION = [
    "'; DROP TABLE decisions;--",
    '" OR 1=1 --',
    "x'); DELETE FROM events; --",
    "Robert'); DROP TABLE users;--",
    "%s %d {0} ?",
    "\\x00\x00nul",
    "' UNION SELECT encoded FROM credentials --",
    "é漢字🙂\u202e",
]


def test_injection_strings_are_stored_verbatim(station) -> None:
    log, users, version = station
    counts_before = {
        t: log.sdb.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("decisions", "inspections")
    }
    for text in INJECTION:
        inspection = log.record_inspection(make_result(version, source=text), users["op"])
        log.record_decision(
            Decision(inspection, "none_of_these", "op", typed_description=text, comment=text), users["op"]
        )
        log.record_event("note", {"text": text}, users["op"], subject=text)
        with pytest.raises(AuthenticationFailed):  # no such user: refused, nothing run
            log.login(text, text)
        assert log.decisions(operator=text) == [] and log.inspections(label=text) == []
    assert [r["source_id"] for r in log.inspections()] == INJECTION
    assert [(r["typed_description"], r["comment"]) for r in log.decisions()] == [(t, t) for t in INJECTION]
    assert [json.loads(r["detail"])["text"] for r in log.events(kind="note")] == INJECTION
    # Unknown names are stored as a keyed marker (a password typed as a name must not be kept).
    subjects = [r["subject"] for r in log.events(kind="login_failed")][-len(INJECTION) :]
    assert all(s.startswith("<unknown user ") for s in subjects) and len(set(subjects)) == len(INJECTION)
    assert log.sdb.conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == counts_before["decisions"] + len(
        INJECTION
    )
    assert log.sdb.conn.execute("SELECT COUNT(*) FROM inspections").fetchone()[0] == counts_before["inspections"] + len(
        INJECTION
    )
    assert {"users", "events", "decisions"} <= set(log.sdb.db.table_names())
    assert log.verify().ok


def test_reopening_applies_migrations_once(tmp_path: Path) -> None:
    log, users, version = make_station(tmp_path / "s.db")
    first = len(log.events(kind="schema_migration"))
    log.close()
    assert first >= 1
    with DecisionLog.open(tmp_path / "s.db", create=False) as again:
        assert len(again.events(kind="schema_migration")) == first
        assert again.verify().ok


# A writer that prints each inspection and decision id only after the call returned (= committed).
WRITER = r"""
import sys
from datetime import datetime, timezone
import numpy as np
sys.path.insert(0, sys.argv[4])
from inspector.store.decision_log import DecisionLog
from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
log = DecisionLog.open(sys.argv[1], create=False)
user = log.login("op", sys.argv[2])
version = log.library.current_version()
rng = np.random.default_rng(int(sys.argv[3]))
ranking = Ranking((Candidate("scratch", "S", "rework", "d", 0.3, 0.7, 1), Candidate("ok", "O", "accept", "e", 0.1, 0.3, 2)),
                  "model", version)
count = int(sys.argv[5])
while count != 0:
    frame = Frame(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), datetime.now(timezone.utc), "cam", 0)
    i = log.record_inspection(InspectionResult(frame, ranking, Verdict("rework", False, False, "r"), "0" * 64), user)
    print("i", i, flush=True)
    print("d", log.record_decision(Decision(i, "confirm", "op", "scratch", 1), user), flush=True)
    count -= 1
"""


def _writer(db: Path, seed: int, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), PASSWORDS["op"], str(seed), str(ROOT), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(120)
@pytest.mark.subprocess
def test_committed_inspections_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    make_station(db)[0].close()
    acked: dict[str, set[int]] = {"i": set(), "d": set()}
    rng = random.Random(1)
    for kill in range(5):
        proc = _writer(db, kill, -1)
        first = proc.stdout.readline() + proc.stdout.readline()  # one inspection and its decision are in
        assert first.startswith("i ") and "\nd " in first, proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.2))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        # An id counts once its whole line is out; the kill may cut the last print short (print
        # writes its pieces one by one), and a line without its newline acknowledges nothing.
        *lines, _unfinished = (first + rest).split("\n")
        for line in lines:
            kind, number = line.split()
            acked[kind].add(int(number))
    with DecisionLog.open(db, create=False) as log:
        assert log.sdb.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        report = log.verify()
        assert report.ok, report.problem
        inspections = {r["id"] for r in log.inspections(limit=10**6)}
        decisions = {r["id"] for r in log.decisions(limit=10**6)}
    assert len(acked["d"]) >= 5 and acked["i"] <= inspections and acked["d"] <= decisions


@pytest.mark.timeout(120)
@pytest.mark.subprocess
def test_two_processes_writing_do_not_fork_the_chain(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    make_station(db)[0].close()
    procs = [_writer(db, seed, 40) for seed in (1, 2)]
    outputs = [p.communicate(timeout=100) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    ids = [[int(line.split()[1]) for line in out.splitlines() if line.startswith("i ")] for out, _ in outputs]
    assert len(ids[0]) == len(ids[1]) == 40 and not set(ids[0]) & set(ids[1])
    with DecisionLog.open(db, create=False) as log:
        assert sorted(r["id"] for r in log.inspections(limit=10**6)) == sorted(ids[0] + ids[1])
        assert len(log.decisions(limit=10**6)) == 80
        report = log.verify()
        assert report.ok, report.problem
        seqs = [r[0] for r in log.sdb.conn.execute("SELECT seq FROM chain ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))


# A writer stuck inside store_image after writing its temp file (fsync never returns), so that it
# can be killed with the file in place, as a power cut or SIGKILL mid-write leaves it.
STUCK_IMAGE_WRITER = r"""
import os, sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
from inspector.store import decision_log
os.fsync = lambda fd: (print("writing", flush=True), time.sleep(120))
decision_log.store_image(decision_log.Path(sys.argv[1]), np.full((4, 4, 3), 7, np.uint8))
"""


@pytest.mark.timeout(120)
@pytest.mark.subprocess
def test_temp_images_of_killed_writers_are_removed_and_live_ones_kept(station) -> None:
    log, _, _ = station
    root, db = log.sdb.image_root, log.sdb.path
    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK_IMAGE_WRITER, str(root), str(ROOT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "writing\n", proc.stderr.read()
        (temp,) = staging_dir(root).glob("*.tmp")
        DecisionLog.open(db, create=False).close()  # opening sweeps, but this writer is alive: kept
        assert temp.exists()
    finally:
        proc.kill()
        proc.wait(30)
    DecisionLog.open(db, create=False).close()
    assert temp.exists()  # a dead writer's file, but young: the sweep cannot tell it from a slow live one
    old = time.time() - STALE_TEMP_S - 60
    os.utime(temp, (old, old))
    DecisionLog.open(db, create=False).close()
    assert not temp.exists() and not list(root.parent.rglob("*.tmp"))
    # The killed writer's image was never renamed into place, so nothing names it.
    assert not list(root.rglob("*.png")) and log.verify().ok
