"""Sample parts for demos, screenshots and `make run`: generated defect images on real textures.

The generator lives in models.synth (numpy/OpenCV only, no torch); the station app may not import
models/, so it asks here. Images are drawn from the generator's *test* split, whose textures the
default model never saw in training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from inspector.capture.simulated import SimulatedCamera
from inspector.errors import CameraError

SAMPLE_SOURCE_ID = "sim:samples"


@dataclass(frozen=True)
class SamplePart:
    """One generated part: its image and the defect the generator drew (the ground truth)."""

    defect: str
    surface: str
    rgb: np.ndarray


def sample_parts(
    count: int = 16, *, size: int = 224, seed: int = 0, defects: Sequence[str] | None = None
) -> list[SamplePart]:
    """`count` generated parts with balanced defect types (including clean 'ok' parts); `defects`:
    only these types (a drift test's "new defect type" stream)."""
    from models.synth import TextileSeedsUnavailable, generate

    try:
        extra = {} if defects is None else {"defects": tuple(defects)}
        samples = generate(count, seed=seed, size=size, split="test", **extra)
    except TextileSeedsUnavailable as exc:  # an optional data package; say which one
        raise CameraError(f"sample parts need the seed textures: {exc}") from exc
    return [SamplePart(s.defect, s.surface, np.ascontiguousarray(s.image, dtype=np.uint8)) for s in samples]


def line_sequence(parts: Sequence[SamplePart], defect_share: float, length: int = 100) -> list[SamplePart]:
    """`length` parts as a line delivers them: defective ones spread evenly at `defect_share`
    (0..1) among clean ones, each kind cycling through its own parts."""
    if not 0.0 <= defect_share <= 1.0:
        raise CameraError(f"the defect share is a fraction from 0 to 1, got {defect_share}")
    clean = [p for p in parts if p.defect == "ok"]
    defective = [p for p in parts if p.defect != "ok"]
    if (defect_share < 1 and not clean) or (defect_share > 0 and not defective):
        raise CameraError("the sample parts need both clean and defective parts for a mixed line")
    out: list[SamplePart] = []
    for i in range(length):
        bad = int((i + 1) * defect_share) > int(i * defect_share)  # evenly spread, exact over `length`
        pool = defective if bad else clean
        out.append(pool[sum(1 for p in out if (p.defect != "ok") == bad) % len(pool)])
    return out


def sample_camera(
    parts: Sequence[SamplePart],
    *,
    fps: float = 1.0,
    defect_share: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SimulatedCamera:
    """A simulated camera replaying `parts` in a loop at `fps` (unopened); with `defect_share`,
    as a line with that share of defective parts (see line_sequence)."""
    if not parts:
        raise CameraError("the sample camera needs at least one part")
    shown = list(parts) if defect_share is None else line_sequence(parts, defect_share)
    return SimulatedCamera(
        [p.rgb for p in shown], fps=fps, loop=True, source_id=SAMPLE_SOURCE_ID, clock=clock, sleep=sleep
    )
