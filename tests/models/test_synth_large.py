"""Small defects on large frames: exact masks within the size limit, reproducible, in the frame's texture."""

from __future__ import annotations

import numpy as np
import pytest

from models.synth.large import small_defects_on_large_frames


def test_small_defects_fit_and_repeat() -> None:
    samples = small_defects_on_large_frames(7, seed=3, size=256, max_defect=12)
    again = small_defects_on_large_frames(7, seed=3, size=256, max_defect=12)
    assert [s.defect for s in samples] == ["scratch", "crack", "stain", "pitting", "burn", "dent", "hole"]
    for s, t in zip(samples, again):
        assert s.image.shape == (256, 256, 3) and s.mask.shape == (256, 256) and s.mask.any()
        ys, xs = np.nonzero(s.mask)
        assert xs.max() - xs.min() < 12 and ys.max() - ys.min() < 12
        assert s.meta["extent_px"] <= 12
        np.testing.assert_array_equal(s.image, t.image)
    with pytest.raises(ValueError, match="size"):
        small_defects_on_large_frames(1, seed=0, size=64)
