"""One publisher thread per line output: committed messages out, in seq order, acknowledged or retried.

The thread owns its own database connection (Outbox). It reads the committed inspections and
decisions after the output's cursor, hands them to the channel, and advances the cursor to the
last message the broker/PLC acknowledged. On a lost connection it reconnects with back-off and
starts again from the cursor: at-least-once, in order, no gaps. Connection changes are chained
events (line_output_connected / line_output_disconnected) and reach `on_change` (e.g. the GUI,
which must hop to its own thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from inspector.errors import InspectorError
from inspector.line.outbox import Message, Outbox
from inspector.store.database import event_row


class ChannelError(InspectorError):
    """The broker or PLC could not be reached, or dropped the connection."""


class Channel(Protocol):
    """What a line output must do; `deliver` returns how many leading messages were acknowledged."""

    name: str
    address: str  # for the status bar and the log: never with credentials
    last_error: str  # why the connection was lost or refused

    def connect(self, timeout: float) -> None: ...
    def is_connected(self) -> bool: ...
    def deliver(self, messages: list[Message], timeout: float) -> int: ...  # may drop the connection
    def close(self) -> None: ...


@dataclass(frozen=True)
class OutputStatus:
    """A line output's delivery state, for the status bar."""

    name: str
    address: str
    connected: bool = False
    backlog: int = 0  # committed, not yet acknowledged
    delivered: int = 0  # acknowledged since start
    cursor: int = 0  # the last acknowledged seq
    last_error: str = ""
    running: bool = False


class Publisher:
    """Deliver the committed log to one channel on a background thread."""

    def __init__(
        self,
        db_path: str | Path,
        channel: Channel,
        deadline_s: float,
        *,
        on_change: Callable[[OutputStatus], None] | None = None,
        poll_s: float = 0.05,
        batch: int = 100,
        ack_timeout_s: float = 10.0,
    ) -> None:
        self.db_path, self.channel, self.deadline_s = Path(db_path), channel, deadline_s
        self.on_change, self.poll_s, self.batch, self.ack_timeout_s = on_change, poll_s, batch, ack_timeout_s
        self._stop, self._wake = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._status = OutputStatus(channel.name, channel.address)
        self._thread: threading.Thread | None = None
        self._drain_until = 0.0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"line-{self.channel.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0, drain_s: float = 0.0) -> None:
        """Stop delivering, first for up to `drain_s` s publishing what is committed while connected
        (what is not acknowledged stays in the outbox for the next start)."""
        self._drain_until = time.monotonic() + drain_s
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + drain_s)
            self._thread = None

    def wake(self) -> None:
        """A commit just happened: look now rather than at the next poll."""
        self._wake.set()

    def status(self) -> OutputStatus:
        with self._lock:
            return self._status

    def _set(self, **changes: object) -> None:
        with self._lock:
            before = self._status
            self._status = replace(before, **changes)  # type: ignore[arg-type]
            after = self._status
        if after != before and self.on_change is not None:
            self.on_change(after)

    def _run(self) -> None:
        try:
            outbox = Outbox(self.db_path, self.channel.name, self.deadline_s)
        except InspectorError as exc:
            self._set(last_error=str(exc))
            return
        try:
            self._set(running=True)
            self._loop(outbox)
        finally:
            self.channel.close()
            outbox.close()
            self._set(running=False, connected=False)

    def _loop(self, outbox: Outbox) -> None:
        cursor, backoff = outbox.cursor(), 0.2
        self._set(cursor=cursor, backlog=outbox.backlog(cursor))
        while not self._stop.is_set() or (time.monotonic() < self._drain_until and self.channel.is_connected()):
            if not self.channel.is_connected():
                try:
                    self.channel.connect(timeout=5.0)
                except ChannelError as exc:
                    self._lost(outbox, str(exc), cursor)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 2.0)  # a restarted broker or PLC is found within 2 s
                    continue
                backoff = 0.2
                self._set(connected=True, last_error="", backlog=outbox.backlog(cursor))
                self._event(outbox, "line_output_connected", {"backlog": self.status().backlog, "cursor": cursor})
            batch = outbox.pending(cursor, self.batch)
            if not batch:
                if self.status().backlog:
                    self._set(backlog=0)
                if self._stop.is_set():
                    return  # drained
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self._set(backlog=outbox.backlog(cursor))
            try:
                done = self.channel.deliver(batch, self.ack_timeout_s)
            except ChannelError as exc:
                done = 0
                self._lost(outbox, str(exc), cursor)
            if done:
                cursor = batch[done - 1].seq
                outbox.advance(cursor)
                self._set(cursor=cursor, delivered=self.status().delivered + done, backlog=outbox.backlog(cursor))
            if not self.channel.is_connected():  # lost part-way: what was acknowledged is kept above
                self._lost(outbox, self.channel.last_error or "connection lost", cursor)
            elif not done:  # connected but nothing acknowledged yet (a PLC slow to hand-shake)
                self._stop.wait(self.poll_s)

    def _lost(self, outbox: Outbox, error: str, cursor: int) -> None:
        was = self.status().connected
        self._set(connected=False, last_error=error, backlog=outbox.backlog(cursor))
        if was:
            self._event(
                outbox,
                "line_output_disconnected",
                {"error": error[:300], "backlog": self.status().backlog, "cursor": cursor},
            )

    def _event(self, outbox: Outbox, kind: str, detail: dict[str, object]) -> None:
        # A chained event; a database fault must not stop delivery (it shows in the status instead).
        try:
            with outbox.sdb.transaction():
                outbox.sdb.append(
                    "events", event_row(kind, None, self.channel.name, {"address": self.channel.address, **detail})
                )
        except InspectorError as exc:
            self._set(last_error=f"{kind} not logged: {exc}")


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll `predicate` until it holds or `timeout` s pass (for shutdown and tests)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
