"""Trigger in: the part id reaches the record in the inspection's own commit; a trigger with no
frame in time is a trigger_missed event; a verdict past its deadline is published marked late."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from inspector.capture.simulated import SimulatedCamera, synthetic_images
from inspector.frame.records import PartTag, utc_now
from inspector.line.outbox import Outbox
from inspector.line.trigger import TriggeredSource, TriggerError, TriggerQueue
from linestation import make_log, record


def test_a_triggered_frame_carries_its_part_into_the_same_commit(tmp_path):
    log, op, _, version = make_log(tmp_path / "station.db")
    queue = TriggerQueue(deadline_s=5.0)
    with TriggeredSource(SimulatedCamera(synthetic_images(2, (8, 8)), fps=None), queue) as source:
        assert source.read(0.01) is None and source.health().frames_delivered == 0  # not read without a trigger
        queue.put("P-1", "bracket", "opcua")
        frame = source.read(1.0)
    assert frame.part.part_id == "P-1" and frame.part.product_id == "bracket" and frame.part.trigger == "opcua"
    result = record(log, op, version, 3, frame.part)
    rows = log.sdb.conn.execute("SELECT tbl, row_id FROM chain ORDER BY seq DESC LIMIT 2").fetchall()
    assert rows[1] == ("inspections", result.inspection_id) and rows[0][0] == "events"
    event = log.events(kind="part_identified")[0]
    assert event["subject"] == str(result.inspection_id) and json.loads(event["detail"])["part_id"] == "P-1"
    assert log.verify().ok
    log.close()


def test_a_trigger_without_a_frame_is_missed():
    now = [0.0]
    queue = TriggerQueue(deadline_s=2.0, clock=lambda: now[0])
    events: list[tuple[str, dict]] = []
    camera = SimulatedCamera(synthetic_images(1, (8, 8)), fps=None, loop=False)
    with TriggeredSource(camera, queue, lambda k, d: events.append((k, d))) as source:
        queue.put("A-1")
        assert source.read(0.0).part.part_id == "A-1"  # the only frame
        queue.put("A-2")
        assert source.read(0.0) is None  # the camera has nothing more; the deadline is not yet past
        now[0] = 2.5
        assert source.read(0.0) is None
    assert [(k, d["part_id"]) for k, d in events] == [("trigger_missed", "A-2")]
    assert queue.missed == 1 and queue.pending() == 0


@pytest.mark.parametrize("part_id", ["", " lead", "x" * 129, "tab\there", 42])
def test_a_malformed_part_id_is_refused(part_id):
    queue = TriggerQueue(deadline_s=1.0)
    with pytest.raises(TriggerError):
        queue.put(part_id)
    assert queue.pending() == 0 and queue.events()[0][0] == "trigger_refused"


def test_a_verdict_past_its_deadline_is_marked_late(tmp_path):
    log, op, _, version = make_log(tmp_path / "station.db")
    outbox = Outbox(log.sdb.path, "test", deadline_s=2.0)
    start = outbox.cursor()
    record(log, op, version, 1, PartTag("ON-TIME", triggered_at=utc_now()))
    record(log, op, version, 2, PartTag("LATE", triggered_at=utc_now() - timedelta(seconds=3)))
    messages = outbox.pending(start)
    assert [(m.payload["part_id"], m.payload["late"]) for m in messages] == [("ON-TIME", False), ("LATE", True)]
    assert messages[1].payload["verdict_ms"] >= 3000
    outbox.advance(messages[0].seq)
    assert outbox.cursor() == messages[0].seq and outbox.backlog(outbox.cursor()) == 1
    outbox.close()
    log.close()
