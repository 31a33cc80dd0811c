"""Held-out small defects on large frames: resolution is tested where it matters.

A clean held-out surface at full frame size; the defect is drawn on a small window of that same
surface (the painters scale a defect with the image they are given) and the window is written
back, so the defect sits in the frame's own texture. Only defects whose mask fits in
`max_defect` x `max_defect` px are kept; masks are exact, in frame pixels.
"""

from __future__ import annotations

import numpy as np

from models.synth.dataset import Sample, _surface
from models.synth.defects import DEFECT_TYPES, DefectNotVisible, draw_defect
from models.synth.seeds import SPLITS
from models.synth.surfaces import SURFACE_KINDS

WINDOWS = (48, 32, 24, 16)  # px: windows a defect is painted in (defects come out a fraction of it)
WINDOW = WINDOWS[0]
_TRIES = 60


def small_defects_on_large_frames(
    n: int,
    *,
    seed: int,
    size: int = 1024,
    max_defect: int = 12,
    split: str = "test",
    defects: tuple[str, ...] | None = None,
) -> list[Sample]:
    """`n` frames of `size` x `size` px, each with one defect whose mask fits in max_defect px."""
    if size < 2 * WINDOW:
        raise ValueError(f"size must be >= {2 * WINDOW} px, got {size}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    kinds = [d for d in (defects or DEFECT_TYPES) if d != "ok"]
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, SPLITS.index(split), 7, i])
        defect, kind = kinds[i % len(kinds)], SURFACE_KINDS[int(rng.integers(len(SURFACE_KINDS)))]
        clean, key = _surface(kind, size, split, rng)
        for t in range(_TRIES):
            win = WINDOWS[t % len(WINDOWS)]
            x, y = (int(v) for v in rng.integers(0, size - win, 2))
            try:
                patch, mask, meta = draw_defect(np.ascontiguousarray(clean[y : y + win, x : x + win]), defect, rng)
            except (DefectNotVisible, ValueError):
                continue
            ys, xs = np.nonzero(mask)
            if len(xs) and xs.max() - xs.min() < max_defect and ys.max() - ys.min() < max_defect:
                break
        else:
            raise DefectNotVisible(f"no {defect!r} within {max_defect} px on sample {i} after {_TRIES} tries")
        image, full = clean.copy(), np.zeros((size, size), bool)
        image[y : y + win, x : x + win] = patch
        full[y : y + win, x : x + win] = mask.astype(bool)
        image.setflags(write=False)
        full.setflags(write=False)
        extent = int(max(xs.max() - xs.min(), ys.max() - ys.min()) + 1)
        out.append(
            Sample(
                image=image,
                mask=full,
                defect=defect,
                surface=kind,
                meta={
                    **meta,
                    "surface": kind,
                    "seed_key": key,
                    "split": split,
                    "index": i,
                    "extent_px": extent,
                    "frame_px": size,
                },
            )
        )
    return out
