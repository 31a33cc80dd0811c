"""The MQTT output (paho-mqtt): verdicts and decisions out at QoS 1, triggers in.

A fresh client per connection (clean session): after a drop the publisher starts again from its
cursor, so nothing depends on paho's in-memory queue. Credentials and TLS come from
[output.mqtt]; the password is never logged and never part of the address.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from inspector.line.outbox import Message
from inspector.line.publisher import ChannelError
from inspector.line.settings import MqttOutput
from inspector.line.trigger import TriggerError, TriggerQueue


class MqttChannel:
    """Publish to a broker; optionally subscribe to the trigger topic."""

    name = "mqtt"

    def __init__(self, cfg: MqttOutput, triggers: TriggerQueue | None = None, trigger_topic: str = "") -> None:
        self.cfg, self.triggers, self.trigger_topic = cfg, triggers, trigger_topic
        scheme = "mqtts" if cfg.tls else "mqtt"
        self.address = f"{scheme}://{cfg.host}:{cfg.port}/{cfg.topic}"
        self.last_error = ""
        self._client: mqtt.Client | None = None
        self._up, self._lost = threading.Event(), threading.Event()
        self._refused = ""

    def connect(self, timeout: float) -> None:
        """Connect (TCP, TLS, CONNACK) within `timeout` s; ChannelError otherwise."""
        self.close()
        self._up.clear()
        self._lost.clear()
        self._refused = ""
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.cfg.client_id or f"rankclip-{socket.gethostname()}"[:23],
            clean_session=True,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(200)
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self.cfg.password)
        client.on_connect, client.on_disconnect, client.on_message = (
            self._on_connect,
            self._on_disconnect,
            self._on_message,
        )
        try:
            if self.cfg.tls:
                client.tls_set(
                    ca_certs=self.cfg.ca_file or None,
                    certfile=self.cfg.cert_file or None,
                    keyfile=self.cfg.key_file or None,
                )
            client.connect(self.cfg.host, self.cfg.port, keepalive=10)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.last_error = f"cannot reach the MQTT broker {self.address}: {exc}"
            raise ChannelError(self.last_error) from None
        client.loop_start()
        self._client = client
        end = time.monotonic() + timeout
        while not self._up.wait(0.05):
            if self._refused or self._lost.is_set() or time.monotonic() > end:
                self.last_error = (
                    f"the MQTT broker {self.address} refused the connection: {self._refused}"
                    if self._refused
                    else f"no answer from the MQTT broker {self.address}"
                )
                self.close()
                raise ChannelError(self.last_error)

    def is_connected(self) -> bool:
        if self._client is not None and self._lost.is_set():
            self.close()  # here, on the publisher's thread: paho's own thread cannot stop itself
        return self._client is not None and self._up.is_set()

    def deliver(self, messages: list[Message], timeout: float) -> int:
        """Publish at QoS 1 and wait for the PUBACKs in order; the count acknowledged before a drop."""
        client = self._client
        if client is None:
            raise ChannelError(f"not connected to the MQTT broker {self.address}")
        infos = [
            client.publish(self.cfg.topic if m.kind == "inspection" else self.cfg.decisions_topic, m.body(), qos=1)
            for m in messages
        ]
        end, acked = time.monotonic() + timeout, 0
        for info in infos:
            while not info.is_published():
                if self._lost.is_set() or time.monotonic() > end or info.rc not in (0, mqtt.MQTT_ERR_AGAIN):
                    self.last_error = self.last_error or f"no PUBACK from the MQTT broker {self.address}"
                    self._lost.set()
                    return acked
                try:
                    info.wait_for_publish(0.05)
                except (RuntimeError, ValueError) as exc:
                    self.last_error = f"publishing to {self.address} failed: {exc}"
                    self._lost.set()
                    return acked
            acked += 1
        return acked

    def close(self) -> None:
        client, self._client = self._client, None
        self._up.clear()
        if client is not None:
            client.disconnect()
            client.loop_stop()

    # --- paho's network thread ---------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            return
        if self.trigger_topic:
            client.subscribe(self.trigger_topic, qos=1)
        self._up.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._up.is_set():
            self.last_error = f"the MQTT broker {self.address} dropped the connection ({reason})"
        self._up.clear()
        self._lost.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if self.triggers is None:
            return
        part_id, product_id, problem = parse_trigger(message.payload)
        if problem:
            self.triggers.refuse("mqtt", problem)
            return
        try:
            self.triggers.put(part_id, product_id, "mqtt")
        except TriggerError:
            pass  # queued as a trigger_refused event by put()


def parse_trigger(payload: bytes) -> tuple[str, str, str]:
    """(part_id, product_id, problem): JSON {"part_id": ..., "product_id": ...} or the bare part id."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return "", "", "trigger payload is not UTF-8"
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return "", "", f"trigger payload is not valid JSON: {exc}"
        if not isinstance(data, dict):
            return "", "", "trigger JSON must be an object"
        return data.get("part_id", ""), data.get("product_id", "") or "", ""
    return text, "", ""
