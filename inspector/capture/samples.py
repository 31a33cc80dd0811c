"""Sample parts for demos, screenshots and `make run`: generated defect images on real textures.

The generator lives in models.synth (numpy/OpenCV only, no torch); the station app may not import
models/, so it asks here. Images are drawn from the generator's *test* split, whose textures the
default model never saw in training.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def sample_parts(count: int = 16, *, size: int = 224, seed: int = 0,
                 defects: Sequence[str] | None = None) -> list[SamplePart]:
    """`count` generated parts with balanced defect types (including clean 'ok' parts); `defects`:
    only these types (a drift test's "new defect type" stream)."""
    from models.synth import TextileSeedsUnavailable, generate

    try:
        extra = {} if defects is None else {"defects": tuple(defects)}
        samples = generate(count, seed=seed, size=size, split="test", **extra)
    except TextileSeedsUnavailable as exc:  # an optional data package; say which one
        raise CameraError(f"sample parts need the seed textures: {exc}") from exc
    return [SamplePart(s.defect, s.surface, np.ascontiguousarray(s.image, dtype=np.uint8)) for s in samples]


def sample_camera(parts: Sequence[SamplePart], *, fps: float = 1.0) -> SimulatedCamera:
    """A simulated camera replaying `parts` in a loop at `fps` (unopened)."""
    if not parts:
        raise CameraError("the sample camera needs at least one part")
    return SimulatedCamera([p.rgb for p in parts], fps=fps, loop=True, source_id=SAMPLE_SOURCE_ID)
