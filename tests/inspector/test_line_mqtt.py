"""Verdicts out over MQTT against a real broker (amqtt in a child process on 127.0.0.1).

After commit only, in seq order, QoS 1; the broker is SIGKILLed mid-stream and restarted: every
committed inspection arrives at least once and first arrivals are in seq order."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from inspector.commands.inspect import result_json
from inspector.frame.records import Decision, PartTag, utc_now
from inspector.line.outputs import LineOutputs, status_text
from inspector.line.publisher import wait_until
from inspector.line.settings import LineConfig, MqttOutput, TriggerConfig
from linebroker import Subscriber, free_port, kill, read_record, start_broker
from linestation import chain_seqs, make_log, record

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def broker(tmp_path):
    port = free_port()
    proc = start_broker(port, tmp_path / "acked.txt")
    box = {"proc": proc, "port": port, "record": tmp_path / "acked.txt"}
    yield box
    if box["proc"].poll() is None:
        kill(box["proc"])


def _config(port: int, **mqtt: object) -> LineConfig:
    return LineConfig(mqtt=MqttOutput(host="127.0.0.1", port=port, topic="line/v", decisions_topic="line/d", **mqtt))  # type: ignore[arg-type]


def test_verdicts_and_decisions_reach_a_subscriber(tmp_path, broker):
    log, op, _, version = make_log(tmp_path / "station.db")
    before = record(log, op, version, 0)  # committed before the output existed: not replayed
    sub = Subscriber(broker["port"], ["line/v", "line/d"])
    line = LineOutputs(_config(broker["port"]), log.sdb.path, poll_s=0.02)
    try:
        with line:
            assert wait_until(lambda: line.status()[0].connected, 20)
            tagged = record(log, op, version, 1, PartTag("P-0001", "bracket-7", "api", utc_now()))
            plain = record(log, op, version, 2)
            log.record_decision(Decision(tagged.inspection_id, "pick", "op", "ok", 2), op)
            line.committed()
            assert wait_until(lambda: len(sub.messages) >= 3, 20), sub.messages
            status = line.status()[0]
            assert (
                status.backlog == 0 and status.delivered == 3 and status_text(status) == "mqtt: connected · 0 waiting"
            )
    finally:
        sub.close()
    verdicts = [json.loads(p) for t, p in sub.messages if t == "line/v"]
    decisions = [json.loads(p) for t, p in sub.messages if t == "line/d"]
    assert [v["inspection_id"] for v in verdicts] == [tagged.inspection_id, plain.inspection_id]
    assert before.inspection_id not in [v["inspection_id"] for v in verdicts]
    # the keys of `inspector rank --json` with the same values, plus part id, seq and lateness
    expected = result_json(tagged)
    assert set(expected) <= set(verdicts[0])
    for key in (
        "inspection_id",
        "source",
        "origin",
        "image_sha256",
        "model_id",
        "library_version",
        "verdict",
        "candidates",
        "timings_ms",
    ):
        assert verdicts[0][key] == expected[key], key
    assert verdicts[0]["part_id"] == "P-0001" and verdicts[0]["product_id"] == "bracket-7"
    assert verdicts[1]["part_id"] is None and verdicts[0]["late"] is False
    assert [v["seq"] for v in verdicts] == chain_seqs(log, ("inspections",))[1:]
    assert decisions == [pytest.approx(decisions[0])] and decisions[0]["disposition"] == "accept"  # rank 2 is "ok"
    assert decisions[0]["part_id"] == "P-0001" and decisions[0]["kind"] == "pick"
    assert decisions[0]["seq"] == chain_seqs(log, ("decisions",))[0]
    kinds = [e["kind"] for e in log.events()]
    assert "line_output_connected" in kinds
    log.close()


def test_broker_killed_midstream_loses_nothing(tmp_path, broker):
    log, op, _, version = make_log(tmp_path / "station.db")
    line = LineOutputs(_config(broker["port"]), log.sdb.path, poll_s=0.02)
    total, committed = 150, []
    with line:
        assert wait_until(lambda: line.status()[0].connected, 20)

        for i in range(total):
            committed.append(record(log, op, version, i).inspection_id)
            line.committed()
            if i == 50:  # mid-stream: the broker dies without a goodbye
                assert wait_until(lambda: len(read_record(broker["record"])) >= 20, 20)
                kill(broker["proc"])
            if i == 100:  # back after an outage in which 50 inspections were committed
                assert wait_until(lambda: not line.status()[0].connected, 20)
                assert line.status()[0].backlog > 0
                broker["proc"] = start_broker(broker["port"], broker["record"])
            time.sleep(0.01)
        assert wait_until(lambda: line.status()[0].backlog == 0 and line.status()[0].connected, 60), line.status()
    seqs = [json.loads(p)["seq"] for t, p in read_record(broker["record"]) if t == "line/v"]
    ids = [json.loads(p)["inspection_id"] for t, p in read_record(broker["record"]) if t == "line/v"]
    assert set(ids) == set(committed), f"missing: {sorted(set(committed) - set(ids))}"
    first = list(dict.fromkeys(seqs))  # first arrival of each seq, in arrival order
    assert first == sorted(first) == chain_seqs(log, ("inspections",))
    duplicates = len(seqs) - len(first)
    print(f"{total} committed, {len(seqs)} received, {duplicates} duplicates, 0 missing")
    kinds = [e["kind"] for e in log.events()]
    assert "line_output_disconnected" in kinds and kinds.count("line_output_connected") >= 2
    log.close()


def test_an_mqtt_trigger_tags_the_next_frame(tmp_path, broker):
    import paho.mqtt.client as mqtt

    from inspector.capture.simulated import SimulatedCamera, synthetic_images

    log = make_log(tmp_path / "station.db")[0]
    config = replace(_config(broker["port"]), trigger=TriggerConfig(mqtt_topic="line/trigger", deadline_s=5.0))
    line = LineOutputs(config, log.sdb.path, poll_s=0.02)
    events: list[tuple[str, dict]] = []
    source = line.wrap(SimulatedCamera(synthetic_images(2, (8, 8)), fps=None), lambda k, d: events.append((k, d)))
    plc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plc")
    plc.connect("127.0.0.1", broker["port"])
    plc.loop_start()
    try:
        with line, source:
            assert wait_until(lambda: line.status()[0].connected, 20)
            assert source.read(0.05) is None  # no trigger: the camera is not read
            plc.publish("line/trigger", json.dumps({"part_id": "P-77", "product_id": "hinge"}), qos=1)
            plc.publish("line/trigger", b'{"part_id": ', qos=1)  # malformed: refused, logged
            frame = None
            for _ in range(100):
                got = source.read(0.1)  # each read also hands over the queued trigger events
                frame = frame or got
                if frame is not None and events:
                    break
            assert frame is not None and frame.part is not None and frame.part.part_id == "P-77"
            assert frame.part.product_id == "hinge" and frame.part.trigger == "mqtt"
            assert [k for k, _ in events] == ["trigger_refused"]
    finally:
        plc.disconnect()
        plc.loop_stop()
    log.close()


def test_the_broker_password_stays_out_of_the_log_and_the_status(tmp_path, broker):
    log, op, _, version = make_log(tmp_path / "station.db")
    line = LineOutputs(_config(broker["port"], username="station1", password="Br0ker-Secret"), log.sdb.path)
    sub = Subscriber(broker["port"], ["line/v"])
    try:
        with line:
            assert wait_until(lambda: line.status()[0].connected, 20)
            record(log, op, version, 1)
            line.committed()
            assert wait_until(lambda: len(sub.messages) == 1, 20)
            kill(broker["proc"])  # a disconnect event with its error text
            assert wait_until(lambda: not line.status()[0].connected, 20)
    finally:
        sub.close()
    log.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("station.db*") if p.is_file())
    assert b"Br0ker-Secret" not in stored and b"Br0ker-Secret" not in sub.messages[0][1]
    assert "Br0ker-Secret" not in repr(line.status()) and "Br0ker-Secret" not in repr(line.config)
