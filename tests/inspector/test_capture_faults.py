"""Faults: stalls, disconnects, garbage, hangs and floods, with the watchdog's reactions."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from inspector.capture.base import FrameSource
from inspector.capture.simulated import ManualClock, SimulatedCamera, synthetic_images
from inspector.capture.watchdog import Backoff, ResilientSource
from inspector.errors import CameraError

IMAGES = synthetic_images(3, (24, 32))


class Recorder:
    """on_event sink that also notes the (fake) time and the wrapper's state at each event."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock, self.events, self.source = clock, [], None

    def __call__(self, kind: str, details: dict[str, Any]) -> None:
        assert details["message"] and details["source_id"]
        state = self.source.health().state if self.source is not None else None
        self.events.append((kind, self.clock(), details, state))

    def of(self, kind: str) -> list[tuple[str, float, dict[str, Any], Any]]:
        return [e for e in self.events if e[0] == kind]


def test_backoff_ceiling_is_capped_exponential() -> None:
    b = Backoff(base=0.5, cap=30.0, jitter=0.0)
    assert [b.ceiling(n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    rng = random.Random(1)
    assert [b.delay(n, rng) for n in range(9)] == [b.ceiling(n) for n in range(9)]


def test_full_jitter_stays_under_the_ceiling_and_varies() -> None:
    b, rng = Backoff(base=0.5, cap=30.0, jitter=1.0), random.Random(7)
    delays = [b.delay(n, rng) for n in range(12)]
    assert all(0 <= d <= b.ceiling(n) for n, d in enumerate(delays))
    assert len({round(d / b.ceiling(n), 6) for n, d in enumerate(delays)}) > 6  # not a fixed fraction


def _stall_then_fail_then_heal(clock: ManualClock, failures: int) -> Any:
    calls = {"n": 0}

    def factory() -> FrameSource:
        calls["n"] += 1
        if calls["n"] == 1:
            return SimulatedCamera(IMAGES, fps=10, stall_after=3, clock=clock, sleep=clock.sleep)
        if calls["n"] <= 1 + failures:
            raise CameraError("camera unplugged (test)")
        return SimulatedCamera(IMAGES, fps=10, clock=clock, sleep=clock.sleep)

    return factory


def test_stall_marks_stalled_and_retries_on_the_capped_exponential_schedule() -> None:
    clock, failures = ManualClock(), 6
    rec = Recorder(clock)
    src = ResilientSource(
        _stall_then_fail_then_heal(clock, failures), stall_after_s=2.0,
        backoff=Backoff(base=0.5, cap=4.0, jitter=0.0), on_event=rec,
        threaded=False, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    rec.source = src
    src.open()
    frames = []
    for _ in range(200):
        frame = src.read(0.25)
        if frame is not None:
            frames.append(frame)
        if len(frames) == 5:
            break
    assert len(frames) == 5
    (stalled,) = rec.of("stalled")
    assert stalled[3] == "stalled"
    assert stalled[1] == pytest.approx(0.2 + 2.0)  # last frame at t=0.2, then 2 s of silence
    scheduled = [e[2]["delay_s"] for e in rec.of("reconnect_scheduled")]
    assert scheduled == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    # Each attempt happens exactly its delay after the failure that scheduled it.
    sched_times = [e[1] for e in rec.of("reconnect_scheduled")]
    attempt_times = [e[1] for e in rec.of("reconnect_attempt")]
    assert len(attempt_times) == failures + 1
    for t_sched, delay, t_try in zip(sched_times, scheduled, attempt_times, strict=True):
        assert t_try == pytest.approx(t_sched + delay)
    (recovered,) = rec.of("recovered")
    assert recovered[2]["downtime_s"] == pytest.approx(sum(scheduled))
    health = src.health()
    assert health.state == "connected" and health.reconnect_attempts == failures + 1
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    src.close()
    assert rec.events[-1][0] == "closed"


def test_full_jitter_delays_through_the_watchdog_stay_under_the_schedule() -> None:
    clock = ManualClock()
    rec = Recorder(clock)
    backoff = Backoff(base=0.5, cap=4.0, jitter=1.0)
    src = ResilientSource(
        _stall_then_fail_then_heal(clock, 8), stall_after_s=1.0, backoff=backoff, on_event=rec,
        threaded=False, clock=clock, sleep=clock.sleep, rng=random.Random(3),
    )  # fmt: skip
    with src:
        while not rec.of("recovered") and clock.now < 120:
            src.read(0.5)
    delays = [e[2]["delay_s"] for e in rec.of("reconnect_scheduled")]
    assert len(delays) == 9
    assert all(0 <= d <= backoff.ceiling(n) for n, d in enumerate(delays))
    assert delays != [backoff.ceiling(n) for n in range(9)]


def test_camera_that_disappears_and_returns_is_recovered() -> None:
    clock = ManualClock()
    rec = Recorder(clock)
    camera = SimulatedCamera(IMAGES, fps=10, disconnect_after=4, disconnect_for_s=10.0, clock=clock, sleep=clock.sleep)
    src = ResilientSource(
        lambda: camera, stall_after_s=2.0, backoff=Backoff(0.5, 8.0, jitter=0.0), on_event=rec,
        threaded=False, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    rec.source = src
    with src:
        got = [f for f in (src.read(0.5) for _ in range(100)) if f is not None][:10]
        assert len(got) == 10
        kinds = [e[0] for e in rec.events]
        assert kinds.index("disconnected") < kinds.index("reconnect_failed") < kinds.index("recovered")
        assert rec.of("disconnected")[0][3] == "reconnecting"
        assert rec.of("recovered")[0][2]["downtime_s"] >= 10.0
        assert src.health().state == "connected"
        assert "reconnecting" in src.health().last_error
        assert [f.seq for f in got] == list(range(got[0].seq, got[0].seq + 10))


def test_disconnect_and_return_with_the_reader_thread() -> None:
    rec = Recorder()
    camera = SimulatedCamera(IMAGES, fps=100, disconnect_after=3, disconnect_for_s=0.3)
    src = ResilientSource(lambda: camera, stall_after_s=1.0, backoff=Backoff(0.05, 0.2, jitter=0.5), on_event=rec)
    with src:
        got, deadline = [], time.monotonic() + 5
        while len(got) < 6 and time.monotonic() < deadline:
            if (f := src.read(0.1)) is not None:
                got.append(f)
        assert len(got) == 6, rec.events
        assert rec.of("disconnected") and rec.of("recovered")


def test_garbage_frames_are_counted_and_skipped() -> None:
    clock = ManualClock()
    camera = SimulatedCamera(IMAGES, fps=10, garbage_every=3, clock=clock, sleep=clock.sleep)
    with camera:
        frames = [camera.read(1.0) for _ in range(8)]  # slots 0..10; 2, 5 and 8 are garbage
    assert all(f is not None for f in frames)
    health = camera.health()
    assert health.frames_invalid == 3 and health.frames_delivered == 8
    assert "invalid frame" in health.last_error
    wrapped = ResilientSource(
        lambda: SimulatedCamera(IMAGES, fps=None, garbage_every=2), stall_after_s=2.0, threaded=False
    )
    with wrapped:
        assert all(wrapped.read(1.0) is not None for _ in range(4))
        assert wrapped.health().frames_invalid == 3  # slots 1, 3, 5 of 0..6


def test_read_never_blocks_past_its_timeout_when_the_inner_source_hangs() -> None:
    rec = Recorder()
    made: list[SimulatedCamera] = []

    def factory() -> FrameSource:
        made.append(SimulatedCamera(IMAGES, fps=50, hang_after=2 if not made else None))
        return made[-1]

    src = ResilientSource(factory, stall_after_s=0.4, backoff=Backoff(0.05, 0.1, jitter=0.0), on_event=rec)
    with src:
        worst, got = 0.0, 0
        deadline = time.monotonic() + 5
        while got < 5 and time.monotonic() < deadline:
            start = time.monotonic()
            got += src.read(0.1) is not None
            worst = max(worst, time.monotonic() - start)
        assert got == 5
        assert worst < 0.1 + 0.15, f"read blocked {worst:.2f} s with a 0.1 s timeout"
        assert rec.of("stalled") and rec.of("recovered") and len(made) >= 2


def test_queue_stays_bounded_and_keeps_the_newest_under_a_fast_producer() -> None:
    src = ResilientSource(lambda: SimulatedCamera(IMAGES, fps=None), stall_after_s=5.0, queue_size=4)
    with src:
        assert src.read(2.0) is not None
        paused_at = time.time()
        time.sleep(0.4)
        frame = src.read(1.0)
        health = src.health()
    assert frame is not None
    assert health.queue_peak <= 4 and health.frames_dropped > 100
    # Drop-oldest: what waits in the queue was captured late in the pause, not at its start.
    assert frame.captured_at.timestamp() > paused_at + 0.2


def test_a_factory_that_cannot_build_fails_loudly_instead_of_retrying() -> None:
    def factory() -> FrameSource:
        raise ValueError("bad camera settings")

    rec = Recorder()
    src = ResilientSource(factory, threaded=False, on_event=rec)
    with pytest.raises(CameraError, match="bad camera settings"):
        src.open()
    assert src.health().state == "failed" and rec.of("failed")
    src.close()


def test_max_attempts_turns_an_outage_into_failed() -> None:
    clock = ManualClock()

    def factory() -> FrameSource:
        raise CameraError("no such camera")

    src = ResilientSource(
        factory, backoff=Backoff(0.5, 1.0, jitter=0.0), max_attempts=3,
        threaded=False, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    src.open()
    assert src.health().state == "reconnecting"
    with pytest.raises(CameraError, match="gave up after 3"):
        for _ in range(50):
            src.read(1.0)
    assert src.health().state == "failed"
