"""A deterministic camera for tests and demos: replays images at a set rate, with injectable faults.

Time comes from an injectable `clock`/`sleep` pair, so with a ManualClock a test runs a minute of
"camera time" in microseconds and every timing it asserts is exact.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inspector.capture.base import FrameSource, rgb_problem
from inspector.errors import CameraError
from inspector.frame.records import Frame

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class ManualClock:
    """A fake monotonic clock: `clock()` reads it, `clock.sleep(s)` advances it instantly."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []  # every sleep requested, for assertions

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.now += seconds


def synthetic_images(count: int = 8, size: tuple[int, int] = (240, 320), seed: int = 0) -> list[np.ndarray]:
    """Textured surfaces drawn with numpy (stripes, grain, a scratch or a spot): no files needed."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    images = []
    for i in range(count):
        angle = rng.uniform(0, np.pi)
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / rng.uniform(3, 12))
        base = 128 + 40 * stripes + rng.normal(0, 8, size=(h, w))
        if i % 3 == 1:  # a scratch: a thin dark line
            r = int(rng.integers(h // 4, 3 * h // 4))
            base[r : r + 2, w // 6 : 5 * w // 6] -= 90
        elif i % 3 == 2:  # a spot: a dark disc
            cy, cx, rad = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4), h // 12
            base[(yy - cy) ** 2 + (xx - cx) ** 2 < rad**2] -= 70
        tint = rng.uniform(0.8, 1.2, size=3)
        rgb = np.clip(base[:, :, None] * tint[None, None, :], 0, 255).astype(np.uint8)
        images.append(rgb)
    return images


def shift_image(rgb: np.ndarray, *, gain: float = 1.0, blur_sigma: float = 0.0) -> np.ndarray:
    """A camera that changed (drift tests): lighting scaled by `gain`, a lens blurred by `blur_sigma` px."""
    from inspector.frame.imageio import cv2

    out = rgb
    if blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur_sigma)
    if gain != 1.0:
        out = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return out


def load_folder_images(folder: str | Path) -> list[np.ndarray]:
    """Every image in a folder, in name order, through the safe decoder."""
    from inspector.frame.imageio import read_image_file

    folder = Path(folder)
    if not folder.is_dir():
        raise CameraError(f"simulated camera folder {str(folder)!r} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise CameraError(f"simulated camera folder {str(folder)!r} has no {'/'.join(IMAGE_SUFFIXES)} images")
    return [read_image_file(p) for p in paths]


class SimulatedCamera(FrameSource):
    """Replays images at `fps` (None: as fast as read), looping or not, with optional faults.

    Faults: `stall_after=N` goes silent after N frames of one open session (until reopened);
    `disconnect_after=N` vanishes once after N frames in total: read raises and open fails for
    `disconnect_for_s`; `garbage_every=k` makes every k-th frame invalid (counted, skipped);
    `hang_after=N` makes read block, ignoring its timeout, until close() (opencv#22677-style).
    """

    backend = "simulated"

    def __init__(
        self,
        images: Sequence[np.ndarray] | str | Path,
        fps: float | None = 10.0,
        loop: bool = True,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        source_id: str = "sim",
        stall_after: int | None = None,
        disconnect_after: int | None = None,
        disconnect_for_s: float = 0.0,
        garbage_every: int | None = None,
        hang_after: int | None = None,
    ) -> None:
        super().__init__(source_id)
        self._images = load_folder_images(images) if isinstance(images, str | Path) else list(images)
        if not self._images:
            raise CameraError("a simulated camera needs at least one image")
        for i, img in enumerate(self._images):
            if problem := rgb_problem(img):
                raise CameraError(f"simulated camera image {i} is unusable: {problem}")
        if fps is not None and not (fps > 0 and math.isfinite(fps)):
            raise CameraError(f"fps must be a positive number or None, got {fps}")
        self._period = 0.0 if fps is None else 1.0 / fps
        self._loop = loop
        self._clock, self._sleep = clock, sleep
        self._stall_after, self._garbage_every, self._hang_after = stall_after, garbage_every, hang_after
        self._disconnect_after, self._disconnect_for_s = disconnect_after, disconnect_for_s
        self._absent_until = -math.inf  # clock time before which the "device" is gone
        self._disconnected_once = False
        self._produced = 0  # frame slots produced in total (garbage included)
        self._session_frames = 0
        self._next_due = 0.0
        self._unhang = threading.Event()

    def open(self) -> None:
        with self._lock:
            if self._state == "connected":
                return
            now = self._clock()
            if now < self._absent_until:
                message = (
                    f"simulated camera {self.source_id!r} is disconnected for another "
                    f"{self._absent_until - now:.1f} s; retry later"
                )
                self._note_error(message)
                raise CameraError(message)
            self._session_frames = 0
            self._next_due = now
            self._unhang.clear()
            self._set_state("connected")

    def close(self) -> None:
        self._unhang.set()  # release a read blocked by hang_after
        self._set_state("closed")

    def read(self, timeout: float) -> Frame | None:
        self._require_open()
        if self._state == "failed":
            raise CameraError(f"simulated camera {self.source_id!r} was disconnected; close and reopen it")
        deadline = self._clock() + max(0.0, timeout)
        while True:
            self._inject_disconnect_or_hang()
            if self._silent():
                self._sleep(max(0.0, deadline - self._clock()))
                return None
            wait = self._next_due - self._clock()
            if wait > deadline - self._clock():
                self._sleep(max(0.0, deadline - self._clock()))
                return None
            if wait > 0:
                self._sleep(wait)
            frame = self._produce()
            if frame is not None:
                return self._delivered_frame(frame)

    def _silent(self) -> bool:
        stalled = self._stall_after is not None and self._session_frames >= self._stall_after
        exhausted = not self._loop and self._produced >= len(self._images)
        return stalled or exhausted

    def _inject_disconnect_or_hang(self) -> None:
        if self._hang_after is not None and self._produced >= self._hang_after:
            self._unhang.wait()  # ignores the timeout on purpose: this is the fault under test
            raise CameraError(f"simulated camera {self.source_id!r} hung and was closed")
        if (
            self._disconnect_after is not None
            and not self._disconnected_once
            and self._produced >= self._disconnect_after
        ):
            self._disconnected_once = True
            self._absent_until = self._clock() + self._disconnect_for_s
            message = f"simulated camera {self.source_id!r} was removed (injected fault)"
            self._set_state("failed", message)
            raise CameraError(message)

    def _produce(self) -> Frame | None:
        index = self._produced
        self._produced += 1
        self._session_frames += 1
        now = self._clock()
        # When the consumer fell behind, restart the schedule instead of bursting to catch up.
        self._next_due = max(self._next_due + self._period, now) if self._period else now
        data: Any = self._images[index % len(self._images)]
        if self._garbage_every and (index + 1) % self._garbage_every == 0:
            data = _garbage(data, index // self._garbage_every)
        return self._make_frame(data, origin=f"image-{index % len(self._images)}")


def _garbage(like: np.ndarray, index: int) -> Any:
    """A corrupt buffer of the kinds cameras deliver: wrong type, wrong shape, a raw byte string."""
    kinds = (
        lambda: like.astype(np.float32),
        lambda: like[:, :, 0],
        lambda: b"\x00\xff incomplete buffer",
    )
    return kinds[index % len(kinds)]()
