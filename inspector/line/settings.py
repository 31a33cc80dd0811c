"""The line's configuration: [output], [output.mqtt], [output.opcua], [trigger]; --publish URLs.

Credentials come from the station TOML only: a --publish URL that carries a user or password is
refused, and no password is ever written to the log or into a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from inspector.errors import ConfigError

LINE_SECTIONS = frozenset({"output", "trigger"})
SECURITY_MODES = ("Basic256Sha256_SignAndEncrypt", "None")


@dataclass(frozen=True)
class MqttOutput:
    host: str = ""  # empty: no MQTT output
    port: int = 1883
    topic: str = "rankclip/verdicts"
    decisions_topic: str = "rankclip/decisions"
    client_id: str = ""  # empty: rankclip-<hostname>
    tls: bool = False
    ca_file: str = ""  # empty with tls: the system's trusted CAs
    cert_file: str = ""  # a client certificate, when the broker asks for one
    key_file: str = ""
    username: str = ""
    password: str = field(default="", repr=False)  # never shown, logged or published

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class OpcuaOutput:
    endpoint: str = ""  # e.g. opc.tcp://0.0.0.0:4840; empty: no OPC UA server
    security: str = "Basic256Sha256_SignAndEncrypt"
    cert_dir: str = ""  # empty: <database>.opcua/ beside the station database
    allow_anonymous: bool = False
    users: dict[str, str] = field(default_factory=dict, repr=False)  # user name -> password
    # The PLC acknowledges each verdict by writing its seq to Line.VerdictAck before the next is shown.
    handshake: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint)


@dataclass(frozen=True)
class TriggerConfig:
    mqtt_topic: str = ""  # empty: no MQTT trigger
    opcua: bool = False  # the PLC triggers by writing Trigger.PartId then incrementing Trigger.Request
    deadline_s: float = 2.0  # a trigger with no frame within this is a trigger_missed event

    @property
    def enabled(self) -> bool:
        return bool(self.mqtt_topic) or self.opcua


@dataclass(frozen=True)
class LineConfig:
    mqtt: MqttOutput = field(default_factory=MqttOutput)
    opcua: OpcuaOutput = field(default_factory=OpcuaOutput)
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    # A verdict committed later than this after its trigger (or capture) is published marked late.
    verdict_deadline_s: float = 2.0

    @property
    def enabled(self) -> bool:
        return self.mqtt.enabled or self.opcua.enabled


def _typed(cls: type, table: Any, where: str, source: str) -> Any:
    """An instance of dataclass `cls` from a TOML table, each key checked against the field's type."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{where}] must be a table")
    known = {f.name: f for f in fields(cls) if f.name != "enabled"}
    bad = set(table) - set(known)
    if bad:
        raise ConfigError(f"{source}: unknown keys in [{where}]: {sorted(bad)}; known: {sorted(known)}")
    default = cls()
    for key, value in table.items():
        want = type(getattr(default, key))
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if want is dict:
            ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        if not ok:
            raise ConfigError(f"{source}: [{where}] {key} must be {want.__name__}, got {type(value).__name__}")
        table = {**table, key: value}
    return replace(default, **table)


def line_config(data: dict[str, Any], source: str = "<dict>") -> LineConfig:
    """The [output] and [trigger] sections of a parsed station TOML (absent: all off)."""
    output = dict(data.get("output", {})) if isinstance(data.get("output", {}), dict) else None
    if output is None:
        raise ConfigError(f"{source}: [output] must be a table")
    mqtt = _typed(MqttOutput, output.pop("mqtt", {}), "output.mqtt", source)
    opcua = _typed(OpcuaOutput, output.pop("opcua", {}), "output.opcua", source)
    top = _typed(LineConfig, output, "output", source) if output else LineConfig()
    trigger = _typed(TriggerConfig, data.get("trigger", {}), "trigger", source)
    config = replace(top, mqtt=mqtt, opcua=opcua, trigger=trigger)
    return check(config, source)


def check(config: LineConfig, source: str = "<config>") -> LineConfig:
    """Refuse settings that cannot work together; returns the config unchanged."""
    if config.opcua.security not in SECURITY_MODES:
        raise ConfigError(f"{source}: [output.opcua] security must be one of {', '.join(SECURITY_MODES)}")
    if config.opcua.enabled:
        opcua_address(config.opcua.endpoint)
    if config.trigger.mqtt_topic and not config.mqtt.enabled:
        raise ConfigError(f"{source}: [trigger] mqtt_topic needs the broker in [output.mqtt] host")
    if config.trigger.opcua and not config.opcua.enabled:
        raise ConfigError(f"{source}: [trigger] opcua needs the server in [output.opcua] endpoint")
    for name, value in (("verdict_deadline_s", config.verdict_deadline_s), ("deadline_s", config.trigger.deadline_s)):
        if not value > 0:
            raise ConfigError(f"{source}: {name} must be > 0 seconds")
    if bool(config.mqtt.username) != bool(config.mqtt.password) and config.mqtt.password:
        raise ConfigError(f"{source}: [output.mqtt] password without username")
    return config


def opcua_address(endpoint: str) -> tuple[str, int]:
    """(host, port) of an opc.tcp:// endpoint; a one-line ConfigError otherwise."""
    parts = urlsplit(endpoint)
    if parts.scheme != "opc.tcp" or not parts.hostname or parts.username or parts.password:
        raise ConfigError(f"OPC UA endpoint {endpoint!r} must be opc.tcp://HOST:PORT (no user or password in it)")
    try:
        return parts.hostname, parts.port or 4840
    except ValueError:
        raise ConfigError(f"OPC UA endpoint {endpoint!r} has a bad port") from None


def apply_publish(config: LineConfig, urls: list[str]) -> LineConfig:
    """Overlay `--publish` URLs: mqtt://HOST:PORT/TOPIC or opc.tcp://HOST:PORT (credentials refused)."""
    for url in urls:
        parts = urlsplit(url)
        if parts.username or parts.password:
            raise ConfigError(
                f"--publish {parts.scheme}://...: credentials in a URL are refused (they would show"
                " in the process list and shell history); put them in [output.mqtt] of the station TOML"
            )
        if parts.scheme in ("mqtt", "mqtts"):
            try:
                port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
            except ValueError:
                raise ConfigError(f"--publish {url!r} has a bad port") from None
            if not parts.hostname:
                raise ConfigError(f"--publish {url!r} names no broker; write mqtt://HOST:PORT/TOPIC")
            topic = parts.path.lstrip("/") or config.mqtt.topic
            mqtt = replace(
                config.mqtt, host=parts.hostname, port=port, topic=topic, tls=config.mqtt.tls or parts.scheme == "mqtts"
            )
            config = replace(config, mqtt=mqtt)
        elif parts.scheme == "opc.tcp":
            opcua_address(url)
            config = replace(config, opcua=replace(config.opcua, endpoint=url))
        else:
            raise ConfigError(f"--publish {url!r}: write mqtt://HOST:PORT/TOPIC or opc.tcp://HOST:PORT")
    return check(config, "--publish")
