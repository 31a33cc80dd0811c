"""A real MQTT broker (amqtt, pure Python) in a child process, for the line tests and bench.

`python tests/linebroker.py PORT [RECORD]` serves 127.0.0.1:PORT until killed; `start_broker(port)`
runs that and waits until the port accepts connections; SIGKILL it to simulate a broker outage.

With RECORD, every QoS 1 PUBLISH the broker receives is appended to that file (flushed) BEFORE the
broker sends its PUBACK: the file is what the line side acknowledged, a SIGKILL cannot cut a message
between the acknowledgement and the record (amqtt itself keeps nothing across a restart).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(port: int, record: Path | None = None, timeout: float = 30.0) -> subprocess.Popen:
    """A broker child process listening on 127.0.0.1:port (anonymous clients allowed)."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), str(port), *([str(record)] if record else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the broker exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the broker did not listen on {port} within {timeout} s")


def kill(proc: subprocess.Popen) -> None:
    proc.kill()  # SIGKILL: no goodbye to the clients, as in a crash or a pulled cable
    proc.wait(10)


def read_record(path: Path) -> list[tuple[str, bytes]]:
    """(topic, payload) of every PUBLISH the recording broker acknowledged, in arrival order."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        topic, _, payload = line.partition(b"\t")
        out.append((topic.decode(), base64.b64decode(payload)))
    return out


def _record_before_puback(path: Path) -> None:
    from amqtt.mqtt.protocol.handler import ProtocolHandler
    from amqtt.session import INCOMING

    sink = open(path, "ab")  # noqa: SIM115 - open for the life of the process
    original = ProtocolHandler._handle_qos1_message_flow

    async def recording(self, app_message):  # type: ignore[no-untyped-def]
        if app_message.direction == INCOMING:
            sink.write(app_message.topic.encode() + b"\t" + base64.b64encode(bytes(app_message.data)) + b"\n")
            sink.flush()
        await original(self, app_message)

    ProtocolHandler._handle_qos1_message_flow = recording


async def _serve(port: int, record: str | None) -> None:
    from amqtt.broker import Broker

    if record:
        _record_before_puback(Path(record))

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    await asyncio.Event().wait()


class Subscriber:
    """A paho subscriber that records (topic, payload) of every message, reconnecting by itself."""

    def __init__(self, port: int, topics: list[str]) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}", clean_session=False)
        self.client.on_connect = lambda c, *_: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
