"""Procedural typed-defect generator with exact pixel masks, and the caption composer.

    from models.synth import generate, SyntheticDefectDataset
    samples = generate(800, seed=0, split="train")        # Sample(image, mask, defect, surface, meta)
    data = SyntheticDefectDataset(samples, seed=0)        # (PIL image, caption) pairs

numpy + OpenCV + Pillow only (no torch). See models/synth/README.md.
"""

from models.synth.captions import caption, heldout_descriptions, train_descriptions
from models.synth.dataset import Sample, SyntheticDefectDataset, generate
from models.synth.defects import (
    CONTRAST_FLOOR,
    DEFECT_TYPES,
    MASK_TOL,
    DefectNotVisible,
    draw_defect,
    local_contrast,
)
from models.synth.seeds import TEXTILE, TextileSeedsUnavailable, seed_split
from models.synth.surfaces import SURFACE_KINDS, make_surface

__all__ = [
    "CONTRAST_FLOOR",
    "DEFECT_TYPES",
    "MASK_TOL",
    "SURFACE_KINDS",
    "TEXTILE",
    "DefectNotVisible",
    "Sample",
    "SyntheticDefectDataset",
    "TextileSeedsUnavailable",
    "caption",
    "draw_defect",
    "generate",
    "heldout_descriptions",
    "local_contrast",
    "make_surface",
    "seed_split",
    "train_descriptions",
]
