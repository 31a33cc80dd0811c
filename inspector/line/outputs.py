"""The line around a running station: its outputs' publishers and the trigger queue, started and
stopped together (`with open_line(...) as line:`), and the one hook a capture loop needs.

A capture loop calls `line.wrap(source, on_event)` once (triggered capture when [trigger] is set)
and `line.committed()` after each commit (a nudge; the publishers also poll). The GUI reads
`line.status()` or passes `on_change` (called on a publisher thread).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Self

from inspector.capture.base import EventSink, FrameSource
from inspector.line.publisher import OutputStatus, Publisher
from inspector.line.settings import LineConfig
from inspector.line.trigger import TriggeredSource, TriggerQueue


class LineOutputs:
    """Publishers for [output.mqtt] / [output.opcua] and the [trigger] queue of one station database."""

    def __init__(
        self,
        config: LineConfig,
        db_path: str | Path,
        on_change: Callable[[OutputStatus], None] | None = None,
        poll_s: float = 0.05,
    ) -> None:
        self.config, self.db_path = config, Path(db_path)
        self.triggers = TriggerQueue(config.trigger.deadline_s) if config.trigger.enabled else None
        self.publishers: list[Publisher] = []
        self.opcua = None
        if config.mqtt.enabled:
            from inspector.line.mqtt_out import MqttChannel

            channel = MqttChannel(config.mqtt, self.triggers, config.trigger.mqtt_topic)
            self.publishers.append(
                Publisher(db_path, channel, config.verdict_deadline_s, on_change=on_change, poll_s=poll_s)
            )
        if config.opcua.enabled:
            from inspector.line.opcua_out import OpcuaChannel

            self.opcua = OpcuaChannel(config.opcua, self.db_path, self.triggers if config.trigger.opcua else None)
            self.publishers.append(
                Publisher(db_path, self.opcua, config.verdict_deadline_s, on_change=on_change, poll_s=poll_s)
            )

    def start(self) -> None:
        for publisher in self.publishers:
            publisher.start()
        self.set_state("running")

    def stop(self, drain_s: float = 5.0) -> None:
        """Stop every publisher, each first publishing for up to `drain_s` s what is already committed;
        what is not acknowledged stays in the outbox for the next start."""
        self.set_state("stopped")
        for publisher in self.publishers:
            publisher.stop(drain_s=drain_s)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wrap(self, source: FrameSource, on_event: EventSink | None = None) -> FrameSource:
        """The source to read: triggered by the line when [trigger] is configured, else unchanged."""
        return source if self.triggers is None else TriggeredSource(source, self.triggers, on_event)

    def committed(self) -> None:
        """Something was committed: publish it now rather than at the next poll."""
        for publisher in self.publishers:
            publisher.wake()

    def set_state(self, state: str) -> None:
        """The station state shown to the PLC (OPC UA Station.State): running, paused, stopped, fault."""
        if self.opcua is not None:
            self.opcua.set_state(state)

    def status(self) -> list[OutputStatus]:
        """Each output's connection and backlog (cheap; never blocks on the network)."""
        return [p.status() for p in self.publishers]


def status_text(status: OutputStatus) -> str:
    """e.g. 'mqtt: connected · 0 waiting' or 'opcua: DOWN · 37 waiting' (for a status bar)."""
    state = "connected" if status.connected else ("DOWN" if status.running else "stopped")
    return f"{status.name}: {state} · {status.backlog} waiting"
