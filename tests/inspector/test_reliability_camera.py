"""Camera faults end up in the decision log, one event per fault, through the paths the station
really uses: LiveCapture (the GUI's capture worker) and `inspector watch`. The watchdog's own
reactions (stall detection, backoff, bounded queue) are tested in test_capture_faults.py."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.reliability import (  # noqa: E402
    LIBRARY,
    PASSWORDS,
    FakeScorer,
    make_station_db,
    parse_acks,
    shared_cli_server,
    user_env,
    watch_argv,
)
from inspector.capture.base import FrameSource  # noqa: E402
from inspector.capture.simulated import ManualClock, SimulatedCamera, synthetic_images  # noqa: E402
from inspector.capture.watchdog import Backoff, ResilientSource  # noqa: E402
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig  # noqa: E402
from inspector.errors import CameraError  # noqa: E402
from inspector.frame.live import LiveCapture  # noqa: E402
from inspector.station import Station  # noqa: E402
from inspector.store.decision_log import DecisionLog  # noqa: E402

IMAGES = synthetic_images(4, (24, 32))


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory):
    return shared_cli_server(tmp_path_factory.getbasetemp() / "inspector-cli")


@pytest.fixture()
def station(tmp_path: Path):
    db = tmp_path / "station.db"
    make_station_db(db)
    config = StationConfig(library=LibraryConfig(str(LIBRARY)), database=DatabaseConfig(str(db)))
    with Station.open(config, scorer=FakeScorer()) as st:
        yield st, st.log.login("op", PASSWORDS["op"])


def _logged_camera_events(db: Path) -> list[tuple[str, dict[str, Any]]]:
    with DecisionLog.open(db, create=False) as log:
        assert log.verify().ok
        events = log.events(limit=10**6)
    return [(e["kind"], json.loads(e["detail"])) for e in events if e["kind"].startswith("camera_")]


def test_every_fault_of_a_live_camera_is_one_event_in_the_log(station) -> None:
    """Garbage frames, a stall, a failed reconnect and the recovery, through LiveCapture."""
    st, op = station
    clock = ManualClock()
    tries = {"n": 0}

    def factory() -> FrameSource:
        tries["n"] += 1
        if tries["n"] == 2:
            raise CameraError("camera unplugged (test)")
        stall = 6 if tries["n"] == 1 else None  # the first session goes silent after 6 frames
        return SimulatedCamera(IMAGES, fps=None, garbage_every=3, stall_after=stall, clock=clock, sleep=clock.sleep)

    emitted: list[tuple[str, dict[str, Any]]] = []
    source: list[ResilientSource] = []

    def make_source(on_event):
        source.append(
            ResilientSource(
                factory,
                stall_after_s=2.0,
                backoff=Backoff(0.5, 4.0, jitter=0.0),
                on_event=on_event,
                threaded=False,
                clock=clock,
                sleep=clock.sleep,
                source_id="line-2",
            )
        )
        return source[0]

    capture = LiveCapture(st, make_source, op)
    capture.on_event = lambda kind, detail: emitted.append((f"camera_{kind}", detail))
    capture.open()
    try:
        shown = [r for r in (capture.step(1.0) for _ in range(40)) if r is not None]
        invalid = capture.health().frames_invalid
    finally:
        capture.close()
    kinds = [k for k, _ in emitted]
    for expected in (
        "camera_connected",
        "camera_frame_invalid",
        "camera_stalled",
        "camera_reconnect_scheduled",
        "camera_reconnect_attempt",
        "camera_reconnect_failed",
        "camera_recovered",
        "camera_closed",
    ):
        assert expected in kinds, kinds
    logged = _logged_camera_events(st.log.sdb.path)
    # One log row per event, in order, with its message: nothing dropped, nothing doubled.
    assert [(k, d["message"]) for k, d in logged] == [(k, d["message"]) for k, d in emitted]
    assert all(d["source_id"] == "line-2" for _, d in logged)
    # Each garbage frame is accounted for: the frame_invalid events add up to the counter.
    assert invalid >= 4 and sum(d["count"] for k, d in logged if k == "camera_frame_invalid") == invalid
    assert len(shown) >= 12 and all(r.inspection_id is not None for r in shown)


def test_garbage_from_a_threaded_camera_is_logged_on_the_capture_thread(station) -> None:
    """With the watchdog's reader thread (the default), events still reach the log from the thread
    that owns the database connection, as the GUI's capture worker needs."""
    st, op = station

    def make_source(on_event):
        return ResilientSource(
            lambda: SimulatedCamera(IMAGES, fps=200, garbage_every=2),
            stall_after_s=2.0,
            on_event=on_event,
            source_id="line-3",
        )

    capture = LiveCapture(st, make_source, op)
    errors: list[BaseException] = []
    shown: list[Any] = []

    def work() -> None:  # open, step and close on one thread, as the capture worker does
        try:
            capture.open()
            try:
                while len(shown) < 10:
                    result = capture.step(1.0)
                    if result is not None:
                        shown.append(result)
                invalid.append(capture.health().frames_invalid)
            finally:
                capture.close()
        except BaseException as exc:  # noqa: BLE001  re-raised in the test thread below
            errors.append(exc)

    invalid: list[int] = []
    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)
    assert not worker.is_alive() and not errors, errors
    logged = _logged_camera_events(st.log.sdb.path)
    counted = sum(d["count"] for k, d in logged if k == "camera_frame_invalid")
    assert counted == invalid[0] >= 9  # every other frame was garbage


def test_frames_a_full_queue_drops_are_logged_with_their_count(station) -> None:
    """A camera faster than the station: the bounded queue drops the oldest frames; each dropped
    frame (a part nobody inspected) is counted in a frames_dropped event."""
    st, op = station

    def make_source(on_event):
        return ResilientSource(
            lambda: SimulatedCamera(IMAGES, fps=400),
            stall_after_s=2.0,
            queue_size=2,
            on_event=on_event,
            source_id="line-4",
        )

    capture = LiveCapture(st, make_source, op)
    shown: list[Any] = []

    def work() -> None:
        capture.open()
        try:
            while len(shown) < 6:
                result = capture.step(1.0)
                if result is not None:
                    shown.append(result)
                    time.sleep(0.05)  # a slow station: ~20 frames arrive meanwhile
        finally:
            capture.close()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    dropped = capture.health().frames_dropped
    logged = _logged_camera_events(st.log.sdb.path)
    assert dropped >= 20 and sum(d["count"] for k, d in logged if k == "camera_frames_dropped") == dropped
    assert all("not inspected" in d["message"] for k, d in logged if k == "camera_frames_dropped")


@pytest.mark.timeout(200)
def test_watch_logs_a_vanished_folder_and_exits_2(tmp_path: Path, cli_server) -> None:
    line, db = tmp_path / "line", tmp_path / "station.db"
    line.mkdir()
    make_station_db(db)
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(line / "a.png")
    child = cli_server.spawn(watch_argv(str(line), db, "--timeout", "0.3"), user_env())
    try:
        assert len(child.wait_for_lines(1, 120)) == 1, child.stderr()
        shutil.rmtree(line)  # the share went away
        code = child.wait(60)
    finally:
        child.kill()
        child.wait(30)
    err = child.stderr()
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("inspector: error: ") and str(line) in err and "cannot be listed" in err
    assert [a["origin"] for a in parse_acks(child.stdout_lines())] == ["a.png"]
    errors = [d for k, d in _logged_camera_events(db) if k == "camera_error"]
    assert len(errors) == 1 and str(line) in errors[0]["message"]
