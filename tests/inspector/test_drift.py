"""Drift alarms: a shifted simulated camera raises one within 500 parts (real inference with the
tiny model); a stable stream of 50,000 parts raises none (per-part statistics fed directly,
resampled from real ones: full inference of 50,000 frames would take an hour here)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from inspector.capture.samples import sample_parts
from inspector.capture.simulated import shift_image
from inspector.config import LibraryConfig
from inspector.drift.monitor import DriftMonitor, DriftSettings, psi
from inspector.drift.stats import part_stats
from inspector.drift.watch import DriftWatch
from inspector.frame.records import Frame
from inspector.library.labels import load_library
from inspector.station import Station
from inspector.store.decision_log import DecisionLog

KNOWN = ("ok", "scratch", "crack", "stain", "pitting", "dent")  # the reference line never shows hole or burn
SETTINGS = DriftSettings(reference_parts=200, window_parts=100, check_every=25)


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    from inspector.frame.scorer import load_scorer

    path = tmp_path_factory.mktemp("drift") / "s.db"
    log = DecisionLog.open(path)
    log.users.create_first_admin("admin", "admin-pass-1")
    admin = log.login("admin", "admin-pass-1")
    log.users.add_user("qa1", "qa", "qa-pass-123", admin)
    log.users.add_user("op1", "operator", "op-pass-123", admin)
    log.library.import_library(load_library(LibraryConfig().path), log.login("qa1", "qa-pass-123"), "seed")
    version, library = log.library.in_force()
    st = Station(load_scorer("inspector-tiny", "cpu"), library, version, log)
    st.op = log.login("op1", "op-pass-123")
    st.reference = [p.rgb for p in sample_parts(200, size=96, seed=1, defects=KNOWN)]
    yield st
    st.close()


def _frame(rgb: np.ndarray, seq: int) -> Frame:
    return Frame(rgb, datetime.now(UTC), "cam", seq)


# A new defect type (hole and burn parts after a reference without them) is NOT detected within 500
# parts with the tiny random-weight model used here (max PSI 0.16 < 0.3: its label mix barely moves);
# bench/drift_alarms.py measures it, and it is reported as missed, not tested as passing.
@pytest.mark.parametrize("shift", ["lighting", "blur"])
def test_a_shifted_camera_raises_an_alarm_within_500_parts(station: Station, shift: str) -> None:
    watch = DriftWatch(station.log.sdb.path, SETTINGS)
    station.recorded_listeners.append(watch)
    try:
        seq = 0
        for rgb in station.reference:
            station.record(station.inspect(_frame(rgb, seq)), station.op)
            seq += 1
        assert watch.banner() is None
        base = [p.rgb for p in sample_parts(100, size=96, seed=3, defects=KNOWN)]
        knob = {"gain": 1.5} if shift == "lighting" else {"blur_sigma": 2.0}
        shifted = [shift_image(base[i % len(base)], **knob) for i in range(500)]
        for n, rgb in enumerate(shifted, start=1):
            station.record(station.inspect(_frame(rgb, seq + n)), station.op)
            if watch.banner():
                break
        assert watch.banner() is not None, f"no alarm after {n} shifted parts; PSI {watch.monitor.last_psi}"
        events = station.log.events(kind="drift_alarm")
        assert events and events[-1]["subject"] == station.model_id  # chained, with the model that saw it
        print(shift, "alarm after", n, "shifted parts:", watch.monitor.alarm.metrics)
    finally:
        station.recorded_listeners.remove(watch)
        watch.close()


def test_stable_stream_of_50000_parts_raises_no_alarm(station: Station) -> None:
    pool = [part_stats(station.inspect(_frame(rgb, i))) for i, rgb in enumerate(station.reference)]
    rng = np.random.default_rng(0)
    monitor = DriftMonitor(DriftSettings())  # the station's defaults
    alarms = [a for i in rng.integers(0, len(pool), 50_000) if (a := monitor.add(pool[i])) is not None]
    assert alarms == [] and monitor.last_psi  # it did check (every 50 parts), and stayed quiet
    assert max(monitor.last_psi.values()) < DriftSettings().psi_alarm


def test_reference_restarts_on_a_model_or_library_change_and_psi() -> None:
    restarts = []
    monitor = DriftMonitor(
        DriftSettings(reference_parts=5, window_parts=5, check_every=5),
        on_restart=lambda reason, _: restarts.append(reason),
    )
    from inspector.drift.stats import PartStats

    part = PartStats(0.3, 0.2, "ok", False, 120.0, 2.0, "m1", 1)
    for _ in range(7):
        monitor.add(part)
    monitor.add(replace(part, library_version=2))
    assert restarts == ["the model or library version changed"]
    assert psi(np.array([50.0, 50.0]), np.array([50.0, 50.0])) == 0.0
    assert psi(np.array([90.0, 10.0]), np.array([10.0, 90.0])) > 1.0
