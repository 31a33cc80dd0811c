"""Drift on the operators' answers: a drop in agreement with #1 (or a rise in "none of these")
raises a chained drift alarm through DecisionLog.decision_listeners; a stable rate raises none."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from inspector.capture.samples import sample_parts
from inspector.config import LibraryConfig
from inspector.drift.monitor import DECISION_METRICS, DriftMonitor, DriftSettings
from inspector.drift.stats import DecisionStats
from inspector.drift.watch import DriftWatch
from inspector.frame.answers import record_answer
from inspector.frame.records import Frame
from inspector.library.labels import load_library
from inspector.station import Station
from inspector.store.decision_log import DecisionLog

SETTINGS = DriftSettings(reference_parts=200, window_parts=100, check_every=25)


@pytest.fixture()
def station(tmp_path):
    from inspector.frame.scorer import load_scorer

    log = DecisionLog.open(tmp_path / "s.db")
    log.users.create_first_admin("admin", "admin-pass-1")
    admin = log.login("admin", "admin-pass-1")
    log.users.add_user("qa1", "qa", "qa-pass-123", admin, temporary=False)
    log.users.add_user("op1", "operator", "op-pass-123", admin, temporary=False)
    log.library.import_library(load_library(LibraryConfig().path), log.login("qa1", "qa-pass-123"), "seed")
    version, library = log.library.in_force()
    st = Station(load_scorer("inspector-tiny", "cpu"), library, version, log)
    st.op = log.login("op1", "op-pass-123")
    yield st
    st.close()


def _answer(station: Station, result, agree: bool, rng: np.random.Generator) -> None:
    recorded = station.record(result, station.op)
    if agree:
        record_answer(station.log, recorded, station.op, "confirm")
    elif rng.random() < 0.5:
        record_answer(station.log, recorded, station.op, "pick", 2)
    else:
        record_answer(station.log, recorded, station.op, "none_of_these", typed="a mark nobody listed")


def test_an_agreement_drop_raises_a_chained_alarm_within_300_answers(station: Station) -> None:
    watch = DriftWatch(station.log.sdb.path, SETTINGS)
    station.log.decision_listeners.append(watch.decided)
    rng = np.random.default_rng(0)
    parts = [station.inspect(Frame(p.rgb, datetime.now(UTC), "cam", i)) for i, p in enumerate(sample_parts(8, size=96))]
    try:
        for i in range(SETTINGS.reference_parts + SETTINGS.window_parts):  # operators agree with 90 %
            _answer(station, parts[i % len(parts)], rng.random() < 0.9, rng)
        assert watch.banner() is None, watch.decisions.last_psi
        for n in range(1, 301):  # after a change (a new model, a new part type): 55 % agreement
            _answer(station, parts[n % len(parts)], rng.random() < 0.55, rng)
            if watch.banner():
                break
        assert watch.banner() is not None, f"no alarm after {n} answers; PSI {watch.decisions.last_psi}"
        assert "agreed" in watch.decisions.alarm.metrics
        # The banner says in plain words what moved: the agreement, from about 90 % to about 55 %.
        banner = watch.banner()
        agreed = re.search(r"agreed with the #1 label on (\d+) % of answers \(reference (\d+) %, PSI", banner)
        assert agreed, banner
        now, before = int(agreed[1]), int(agreed[2])
        assert 80 <= before <= 97 and 40 <= now <= 72, banner
        assert "how operators answer" in banner and "camera" not in banner
        event = station.log.events(kind="drift_alarm")[-1]
        assert "agreed" in json.loads(event["detail"])["words"]
        assert event["subject"] == station.model_id
        assert station.log.verify().ok  # the alarm is a chained event like the others
        print("agreement drop: alarm after", n, "answers", watch.decisions.alarm.metrics)
    finally:
        watch.close()


def test_a_correction_or_rejected_image_does_not_count_and_a_stable_rate_raises_nothing() -> None:
    rng = np.random.default_rng(1)
    monitor = DriftMonitor(DriftSettings(), metrics=DECISION_METRICS)  # the station's defaults
    for _ in range(50_000):
        agree = rng.random() < 0.9
        assert monitor.add(DecisionStats(agree, not agree and rng.random() < 0.3, "m", 1)) is None
    assert set(monitor.last_psi) == set(DECISION_METRICS)
    from inspector.drift.stats import decision_stats
    from inspector.frame.records import Decision, DecisionCommitted

    reject = DecisionCommitted(1, Decision(1, "reject_image", "op1"), None, "m", 1)
    correction = DecisionCommitted(2, Decision(1, "confirm", "qa1", "ok", 1), 1, "m", 1)
    assert decision_stats(reject) is None and decision_stats(correction) is None
    assert decision_stats(DecisionCommitted(3, Decision(1, "confirm", "op1", "ok", 1), None, "m", 1)).agreed


def test_a_rise_of_the_open_set_rate_raises_an_alarm() -> None:
    """A new defect type shows as more parts that match no label well (the open-set rate, per part)."""
    from inspector.drift.stats import PartStats

    rng = np.random.default_rng(2)
    monitor = DriftMonitor(DriftSettings())
    part = PartStats(0.3, 0.2, "ok", False, 120.0, 2.0, "m", 1)

    def feed(rate: float, n: int) -> int | None:
        for i in range(1, n + 1):
            if monitor.add(replace(part, open_set=bool(rng.random() < rate))) is not None:
                return i
        return None

    assert feed(0.05, 5000) is None  # stable: no alarm
    delay = feed(0.35, 500)
    assert delay is not None and "open_set" in monitor.alarm.metrics
