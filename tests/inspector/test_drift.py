"""Drift alarms: a shifted simulated camera raises one within 500 parts (real inference with the
tiny model, through the station and with the defaults); a stable stream of 50,000 parts from another
pool of the same line raises none with the defaults (per-part statistics fed directly, resampled
from real ones: full inference of 50,000 frames would take an hour here)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from inspector.capture.samples import sample_parts
from inspector.capture.simulated import shift_image
from inspector.config import LibraryConfig
from inspector.drift.monitor import DriftMonitor, DriftSettings, psi
from inspector.drift.stats import PartStats, part_stats
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
    log.users.add_user("qa1", "qa", "qa-pass-123", admin, temporary=False)
    log.users.add_user("op1", "operator", "op-pass-123", admin, temporary=False)
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


@pytest.fixture(scope="module")
def line(station: Station) -> dict[str, list]:
    """Per-part statistics of real inference: a reference pool, a pool of OTHER parts of the same line
    (500 each: a smaller pool's own sampling difference from the reference is itself a shift), and
    100 of those other parts through a brighter lamp and a blurred lens."""
    other = [p.rgb for p in sample_parts(500, size=96, seed=3, defects=KNOWN)]

    def stats(images):
        return [part_stats(station.inspect(_frame(rgb, i))) for i, rgb in enumerate(images)]

    return {
        "reference": stats(p.rgb for p in sample_parts(500, size=96, seed=1, defects=KNOWN)),
        "stable": stats(other),
        "lighting": stats(shift_image(rgb, gain=1.5) for rgb in other[:100]),
        "blur": stats(shift_image(rgb, blur_sigma=2.0) for rgb in other[:100]),
    }


def _after_reference(line: dict, settings: DriftSettings, rng: np.random.Generator) -> DriftMonitor:
    """A monitor whose reference is the reference pool (distinct parts) and whose window is full of
    other parts of the same line, as on a station that has run a while."""
    monitor = DriftMonitor(settings)
    for i in rng.permutation(len(line["reference"]))[: settings.reference_parts]:
        assert monitor.add(line["reference"][i]) is None
    for i in rng.integers(0, len(line["stable"]), settings.window_parts):
        assert monitor.add(line["stable"][i]) is None
    return monitor


def test_stable_stream_from_another_pool_of_the_line_raises_no_alarm_with_the_defaults(line: dict) -> None:
    settings = DriftSettings()  # the station's defaults
    rng = np.random.default_rng(0)
    monitor = _after_reference(line, settings, rng)
    peak: dict[str, float] = {}
    for n, i in enumerate(rng.integers(0, len(line["stable"]), 50_000), start=1):
        alarm = monitor.add(line["stable"][i])
        assert alarm is None, f"false alarm after {n} stable parts: {alarm.metrics}"
        if n % settings.check_every == 0:
            peak = {k: max(v, peak.get(k, 0.0)) for k, v in monitor.last_psi.items()}
    assert set(peak) >= {"score", "margin", "brightness", "sharpness", "label"}  # every part metric checked
    print("peak PSI over 50,000 stable parts:", {k: round(v, 3) for k, v in peak.items()})
    # The stream is measured, not ignored: a threshold at the level sampling reaches would alarm on it.
    touchy = replace(settings, psi_alarm=max(peak.values()) / 2)
    monitor = _after_reference(line, touchy, np.random.default_rng(0))
    assert any(monitor.add(line["stable"][i]) for i in np.random.default_rng(1).integers(0, 500, 50_000))


@pytest.mark.parametrize(("shift", "moved"), [("lighting", "brightness"), ("blur", "sharpness")])
def test_a_shifted_camera_alarms_within_500_parts_with_the_defaults(line: dict, shift: str, moved: str) -> None:
    settings = DriftSettings()
    rng = np.random.default_rng(2)
    monitor = _after_reference(line, settings, rng)
    alarms = [
        (n, a) for n, i in enumerate(rng.integers(0, len(line[shift]), 500), 1) if (a := monitor.add(line[shift][i]))
    ]
    assert alarms, f"no alarm within 500 {shift} parts; PSI {monitor.last_psi}"
    assert moved in alarms[0][1].metrics
    assert f"image {moved}" in alarms[0][1].text() and "Check the camera" in alarms[0][1].text()  # plain words
    print(shift, "alarm after", alarms[0][0], "parts with the defaults:", alarms[0][1].metrics)


def test_reference_restarts_on_a_model_or_library_change_and_psi() -> None:
    restarts = []
    monitor = DriftMonitor(
        DriftSettings(reference_parts=5, window_parts=5, check_every=5),
        on_restart=lambda reason, _: restarts.append(reason),
    )
    part = PartStats(0.3, 0.2, "ok", False, 120.0, 2.0, "m1", 1)
    for _ in range(7):
        monitor.add(part)
    monitor.add(replace(part, library_version=2))
    assert restarts == ["the model or library version changed"]
    assert psi(np.array([50.0, 50.0]), np.array([50.0, 50.0])) == 0.0
    assert psi(np.array([90.0, 10.0]), np.array([10.0, 90.0])) > 1.0


def test_the_small_sample_correction_is_a_station_setting_and_lowers_psi_by_the_sampling_level() -> None:
    from inspector.config import config_from_dict
    from inspector.errors import ConfigError

    assert config_from_dict({}).drift.small_sample_correction is True
    plain = config_from_dict({"drift": {"small_sample_correction": False}}).drift
    assert plain.small_sample_correction is False
    with pytest.raises(ConfigError):
        config_from_dict({"drift": {"small_sample_correction": "no"}})
    # Same parts, same windows: the corrected PSI is the plain one less (bins - 1) x (1/500 + 1/200).
    rng = np.random.default_rng(4)
    values = rng.normal(size=700)
    parts = [PartStats(float(v), 0.5, "ok", False, 120.0, 2.0, "m", 1) for v in values]
    found = {}
    for on in (True, False):
        monitor = DriftMonitor(replace(DriftSettings(), small_sample_correction=on), metrics=("score",))
        for p in parts:
            monitor.add(p)
        found[on] = monitor.last_psi["score"]
    assert found[True] == pytest.approx(max(0.0, found[False] - 9 * (1 / 500 + 1 / 200)))
