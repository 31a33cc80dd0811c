"""[output] / [output.mqtt] / [output.opcua] / [trigger] in the station TOML, and --publish URLs."""

from __future__ import annotations

import pytest

from inspector.config import config_from_dict
from inspector.errors import ConfigError
from inspector.line.settings import LineConfig, apply_publish


def test_the_line_sections_are_read_with_their_types():
    config = config_from_dict(
        {
            "database": {"path": "/tmp/x.db"},
            "output": {
                "verdict_deadline_s": 1.5,
                "mqtt": {"host": "broker.plant", "port": 8883, "tls": True, "username": "st1", "password": "pw"},
                "opcua": {"endpoint": "opc.tcp://0.0.0.0:4840", "users": {"plc": "secret"}},
            },
            "trigger": {"mqtt_topic": "st1/trigger", "opcua": True, "deadline_s": 3},
        }
    )
    line = config.line
    assert line.verdict_deadline_s == 1.5 and line.mqtt.port == 8883 and line.mqtt.tls
    assert line.opcua.security == "Basic256Sha256_SignAndEncrypt"  # secure unless said otherwise
    assert line.trigger.deadline_s == 3.0 and line.opcua.users == {"plc": "secret"}
    assert "pw" not in repr(line) and "secret" not in repr(line)
    assert config_from_dict({}).line == LineConfig() and not LineConfig().enabled


@pytest.mark.parametrize(
    "data, words",
    [
        ({"output": {"mqtt": {"hots": "x"}}}, "unknown keys in [output.mqtt]"),
        ({"output": {"mqtt": {"host": "x", "port": "1883"}}}, "port must be int"),
        ({"output": {"opcua": {"endpoint": "http://x"}}}, "must be opc.tcp://HOST:PORT"),
        ({"output": {"opcua": {"endpoint": "opc.tcp://x:1", "security": "Basic128"}}}, "security must be one of"),
        ({"trigger": {"mqtt_topic": "t"}}, "needs the broker"),
        ({"output": {"verdict_deadline_s": 0}}, "must be > 0"),
        ({"outputs": {}}, "unknown sections"),
    ],
)
def test_bad_line_settings_are_one_line_errors(data, words):
    with pytest.raises(ConfigError, match=None) as err:
        config_from_dict(data)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_publish_urls_overlay_the_config_and_refuse_credentials():
    line = apply_publish(LineConfig(), ["mqtt://10.0.0.5:1884/st1/verdicts", "opc.tcp://0.0.0.0:4841"])
    assert (line.mqtt.host, line.mqtt.port, line.mqtt.topic) == ("10.0.0.5", 1884, "st1/verdicts")
    assert line.opcua.endpoint == "opc.tcp://0.0.0.0:4841" and not line.mqtt.tls
    assert apply_publish(LineConfig(), ["mqtts://b"]).mqtt.port == 8883
    for url in ("mqtt://user:pw@broker:1883/t", "mqtt://user@broker/t", "opc.tcp://u:p@0.0.0.0:4840"):
        with pytest.raises(ConfigError, match="credentials in a URL are refused") as err:
            apply_publish(LineConfig(), [url])
        assert "pw" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="write mqtt://HOST:PORT/TOPIC"):
        apply_publish(LineConfig(), ["amqp://broker"])
