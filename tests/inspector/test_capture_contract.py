"""The one contract every frame source passes: same open/read/close/health behaviour for all."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.capture.base import FrameSource
from inspector.capture.folder import FolderSource
from inspector.capture.genicam import GenICamSource, find_viky_cti
from inspector.capture.opencv import OpenCVSource
from inspector.capture.simulated import SimulatedCamera, synthetic_images
from inspector.capture.watchdog import ResilientSource
from inspector.errors import CameraError
from inspector.frame.imageio import cv2

H, W, N = 48, 64, 4


@dataclass
class Case:
    make: Callable[[], FrameSource]
    n_frames: int
    shape: tuple[int, int, int] | None  # None: whatever the device delivers
    finite: bool = True  # False: the source never runs dry (a real or simulated GenTL device)


def write_video(path: Path, n: int = N) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    assert writer.isOpened()
    for img in synthetic_images(n, (H, W)):
        writer.write(img[:, :, ::-1])
    writer.release()
    return path


def _sim() -> SimulatedCamera:
    return SimulatedCamera(synthetic_images(N, (H, W)), fps=200, loop=False)


def _folder_case(tmp: Path) -> Case:
    folder = tmp / "inbox"
    folder.mkdir()
    for i, img in enumerate(synthetic_images(N, (H, W))):
        Image.fromarray(img).save(folder / f"part_{i}.png")
    return Case(lambda: FolderSource(folder, settle_s=0.05, poll_s=0.02), N, (H, W, 3))


def _genicam_case() -> Case:
    try:
        import harvesters.core  # noqa: F401
    except ImportError:
        pytest.skip("harvesters not installed (optional extra: pip install harvesters)")
    cti = find_viky_cti()
    if cti is None:
        pytest.skip("viky.cti not found in the genicam package")
    return Case(lambda: GenICamSource(str(cti), 0), 5, None, finite=False)


CASES: dict[str, Callable[[Path], Case]] = {
    "simulated": lambda tmp: Case(_sim, N, (H, W, 3)),
    "folder": _folder_case,
    "opencv-video-file": lambda tmp: Case(lambda: OpenCVSource(str(write_video(tmp / "clip.avi"))), N, (H, W, 3)),
    "resilient-threaded": lambda tmp: Case(lambda: ResilientSource(_sim, stall_after_s=5.0), N, (H, W, 3)),
    "resilient-inline": lambda tmp: Case(
        lambda: ResilientSource(_sim, stall_after_s=5.0, threaded=False), N, (H, W, 3)
    ),
    "genicam-viky": lambda tmp: _genicam_case(),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    return CASES[request.param](tmp_path)


def test_a_new_source_is_closed_and_refuses_reads(case: Case) -> None:
    source = case.make()
    assert source.health().state == "closed"
    with pytest.raises(CameraError, match="closed"):
        source.read(0.1)


def test_open_read_delivers_ordered_utc_frames_of_the_right_shape(case: Case) -> None:
    source = case.make()
    source.open()
    try:
        assert source.health().state == "connected"
        frames = [source.read(3.0) for _ in range(case.n_frames)]
        assert all(f is not None for f in frames), "a frame did not arrive within 3 s"
        seqs = [f.seq for f in frames]
        assert seqs == sorted(set(seqs)), f"seq not strictly increasing: {seqs}"
        for f in frames:
            assert f.captured_at.tzinfo is not None and f.captured_at.utcoffset() == UTC.utcoffset(None)
            assert f.rgb.dtype == np.uint8 and f.rgb.ndim == 3 and f.rgb.shape[2] == 3
            if case.shape is not None:
                assert f.rgb.shape == case.shape
            assert f.source_id == source.source_id
        health = source.health()
        assert health.frames_delivered == case.n_frames
        assert health.last_frame_at is not None and health.last_frame_at.tzinfo is not None
    finally:
        source.close()


def test_read_returns_none_promptly_when_nothing_arrives(case: Case) -> None:
    if not case.finite:
        pytest.skip("this source streams forever: there is no quiet period to observe")
    with case.make() as source:
        for _ in range(case.n_frames):
            assert source.read(3.0) is not None
        # Bounds far below the 3 s a read that ignored its timeout would take, generous for a loaded CI.
        start = time.perf_counter()
        assert source.read(0.2) is None
        assert time.perf_counter() - start < 0.2 + 1.5
        start = time.perf_counter()
        assert source.read(0.0) is None
        assert time.perf_counter() - start < 1.0


def test_close_is_idempotent_and_reads_after_close_raise(case: Case) -> None:
    source = case.make()
    with source:
        assert source.read(3.0) is not None
    assert source.health().state == "closed"
    source.close()
    source.close()
    assert source.health().state == "closed"
    with pytest.raises(CameraError):
        source.read(0.1)


def test_a_closed_source_can_be_reopened_and_seq_keeps_increasing(case: Case) -> None:
    source = case.make()
    with source:
        first = source.read(3.0)
    with source:
        assert source.health().state == "connected"
        second = source.read(3.0)
    if second is not None:  # a finite source may legitimately have no frame left after a reopen
        assert first is not None and second.seq > first.seq
