"""The operator's queue without Qt: oldest trouble part first, limits T and K send the part on screen
to the review lane (a chained event), sign-out loses nothing, a double tap answers one part only,
and every inspection's derived state shows in the audit records and the export."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fakes import HashScorer
from inspector.capture.samples import SamplePart, line_sequence
from inspector.capture.simulated import ManualClock
from inspector.config import ConfigError, DatabaseConfig, LibraryConfig, StationConfig, config_from_dict
from inspector.errors import InspectorError
from inspector.frame.queue import OperatorQueue, QueuePolicy, TooSoon, answer_review, policy_from, review_lane
from inspector.frame.records import Frame, InspectionResult, utc_now
from inspector.library.labels import seed_library_dir
from inspector.station import Station
from inspector.store.audit import AuditFilter, inspection_record, search


@pytest.fixture()
def station(tmp_path: Path):
    config = StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )
    with Station.open(config, scorer=HashScorer("fake-queue", image_text="a jagged crack")) as st:
        st.log.users.create_first_admin("admin", "admin-pass-1")
        admin = st.log.login("admin", "admin-pass-1")
        for name, role in (("op1", "operator"), ("qa1", "qa"), ("aud1", "auditor")):
            st.log.users.add_user(name, role, f"{name}-pass-1", admin, temporary=False)
        yield st, {n: st.log.login(n, f"{n}-pass-1") for n in ("op1", "qa1", "aud1")}


def recorded(st: Station, user, seq: int, trouble: bool) -> InspectionResult:
    """A recorded part whose verdict is trouble (scrap) or calm (accept)."""
    frame = Frame(rgb=np.full((8, 8, 3), seq % 250, np.uint8), captured_at=utc_now(), source_id="t", seq=seq)
    result = st.inspect(frame)
    verdict = replace(result.verdict, disposition="scrap" if trouble else "accept", needs_review=False, open_set=False)
    return st.record(replace(result, verdict=verdict), user)


def states(st: Station) -> dict[int, str]:
    return {r["id"]: r["state"] for r in search(st.log, AuditFilter()).inspections}


def test_parts_are_shown_oldest_first_and_a_double_tap_answers_one(station) -> None:
    st, users = station
    clock = ManualClock()
    queue = OperatorQueue(st.log, users["op1"], QueuePolicy(max_wait_s=30, max_waiting=5), clock)
    parts = [recorded(st, users["op1"], i, trouble=True) for i in range(3)]
    for p in parts:
        assert queue.offer(p)
    assert queue.current.inspection_id == parts[0].inspection_id and queue.waiting == 2
    with pytest.raises(TooSoon, match="double tap"):
        queue.answer("confirm")  # shown 0 ms ago
    clock.sleep(0.5)
    _, answered = queue.answer("confirm")
    assert answered.inspection_id == parts[0].inspection_id
    clock.sleep(0.15)  # the second tap of a double tap: the next part has been on screen 150 ms
    with pytest.raises(TooSoon):
        queue.answer("confirm")
    assert queue.current.inspection_id == parts[1].inspection_id
    assert [d["inspection_id"] for d in st.log.decisions()] == [parts[0].inspection_id]


def test_calm_parts_pass_and_trouble_parts_beyond_t_or_k_go_to_the_review_lane(station) -> None:
    st, users = station
    clock = ManualClock()
    queue = OperatorQueue(st.log, users["op1"], QueuePolicy(max_wait_s=10, max_waiting=2), clock)
    calm = recorded(st, users["op1"], 0, trouble=False)
    assert not queue.offer(calm) and queue.current is None
    trouble = [recorded(st, users["op1"], i, trouble=True) for i in range(1, 5)]
    for p in trouble:
        queue.offer(p)
    # K = 2 behind the one on screen: the 4th arrival pushed the oldest waiting one to the lane;
    # the part on screen (being answered) stays.
    assert queue.current.inspection_id == trouble[0].inspection_id and queue.waiting == 2
    clock.sleep(10.5)  # T passed for the part on screen
    assert queue.tick() == [trouble[0].inspection_id]
    assert queue.current.inspection_id == trouble[2].inspection_id
    events = st.log.events(kind="part_to_review")
    assert [(e["subject"], e["user"]) for e in events] == [
        (str(trouble[1].inspection_id), "op1"),
        (str(trouble[0].inspection_id), "op1"),
    ]
    assert ['"queue_full"' in e["detail"] for e in events] == [True, False]
    s = states(st)
    assert s[calm.inspection_id] == "passed"
    assert [s[p.inspection_id] for p in trouble] == ["pending_review", "pending_review", "open", "open"]
    assert st.log.verify().ok


def test_sign_out_moves_every_waiting_part_and_the_review_list_answers_them(station) -> None:
    st, users = station
    clock = ManualClock()
    queue = OperatorQueue(st.log, users["op1"], QueuePolicy(), clock)
    trouble = [recorded(st, users["op1"], i, trouble=True) for i in range(3)]
    for p in trouble:
        queue.offer(p)
    assert queue.sign_out() == [p.inspection_id for p in trouble] and queue.current is None
    assert [r["id"] for r in review_lane(st.log)] == [p.inspection_id for p in trouble]
    # QA answers one from the review list, the operator another; the auditor may not.
    answer_review(st.log, users["qa1"], trouble[0].inspection_id, "pick", 2)
    answer_review(st.log, users["op1"], trouble[1].inspection_id, "reject_image")
    with pytest.raises(InspectorError, match="may not decide"):
        answer_review(st.log, users["aud1"], trouble[2].inspection_id, "confirm")
    with pytest.raises(InspectorError, match="not in the review lane"):
        answer_review(st.log, users["qa1"], trouble[0].inspection_id, "confirm")
    assert [r["id"] for r in review_lane(st.log)] == [trouble[2].inspection_id]
    assert inspection_record(st.log, trouble[0].inspection_id).state == "answered"
    assert inspection_record(st.log, trouble[2].inspection_id).state == "pending_review"


def test_the_export_carries_each_inspection_state(station, tmp_path: Path) -> None:
    st, users = station
    queue = OperatorQueue(st.log, users["op1"], QueuePolicy(), ManualClock())
    calm = recorded(st, users["op1"], 0, trouble=False)
    trouble = recorded(st, users["op1"], 1, trouble=True)
    queue.offer(trouble)
    queue.sign_out()
    summary = st.log.export("2000-01-01", "2100-01-01", tmp_path / "bundle", users["qa1"])
    with (summary.out_dir / "inspection_states.csv").open(newline="") as f:
        rows = {int(r["inspection_id"]): r["state"] for r in csv.DictReader(f)}
    assert rows == {calm.inspection_id: "passed", trouble.inspection_id: "pending_review"}


def test_queue_and_camera_settings_come_from_the_station_config() -> None:
    config = config_from_dict(
        {
            "queue": {"max_wait_s": 15, "max_waiting": 3, "min_on_screen_ms": 250},
            "camera": {"sample_defect_share": 0.05},
        }
    )
    assert policy_from(config.queue) == QueuePolicy(15.0, 3, 0.25)
    assert config.camera.sample_defect_share == 0.05 and StationConfig().queue.min_on_screen_ms == 300
    for bad in ({"queue": {"max_waiting": "3"}}, {"queue": {"max_wait_s": -1}}, {"camera": {"sample_defect_share": 2}}):
        with pytest.raises(ConfigError):
            config_from_dict(bad)


def test_the_sample_line_has_the_configured_share_of_defects() -> None:
    parts = [SamplePart("ok" if i < 2 else "crack", "s", np.zeros((4, 4, 3), np.uint8)) for i in range(6)]
    line = line_sequence(parts, 0.08, length=100)
    assert sum(p.defect != "ok" for p in line) == 8
    assert {id(p) for p in line if p.defect == "ok"} == {id(parts[0]), id(parts[1])}  # both clean parts used
