"""Draw one typed defect on a surface, with an exact pixel mask, a visibility guarantee and metadata.

Exact mask: after painting, every pixel whose change is at most MASK_TOL grey levels (in every
channel) is put back to its original value. So the mask is, by construction, exactly the set of
pixels that differ from the clean surface, and each of them differs by more than MASK_TOL.

Visibility: `local_contrast` compares the defect's pixels with a ring of surface around them. A
draw below CONTRAST_FLOOR is boosted (its change scaled up), then redrawn, then redrawn in a
high-contrast rendition; a defect that still cannot be made visible raises DefectNotVisible, and
the caller picks a new surface. Faint defects exist on purpose, but always above the floor.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from models.data import DatasetError
from models.synth.painters import PAINTERS

DEFECT_TYPES: tuple[str, ...] = ("ok", "scratch", "crack", "stain", "pitting", "burn", "dent", "hole")
MASK_TOL = 4  # grey levels; smaller changes are undone, so mask == "changed by more than this"
CONTRAST_FLOOR = 18.0  # see local_contrast; below this a defect was judged too hard to see
FAINT_BELOW = 25.0  # a visible defect under this contrast is recorded (and captioned) as faint
MIN_AREA_224 = 40  # pixels at 224 x 224: smaller defects are dots, not defects
MAX_AREA_FRACTION = 0.45  # a defect must leave surface around it to be judged against
_BOOSTS = (1.0, 1.5, 2.2)
_ATTEMPTS = 8  # the last half of them ask the painter for its strong rendition


class DefectNotVisible(DatasetError):
    """A defect could not be drawn above the visibility floor on this surface; use another surface."""


def ring_mask(mask: np.ndarray) -> np.ndarray:
    """The band of surface around a mask that its contrast is measured against (3% of the width)."""
    r = max(3, round(0.03 * mask.shape[1]))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool) & ~mask


def local_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """How far the masked pixels stand out from the surface around them, in RGB grey levels.

    With m the median colour of the surrounding ring: mean |pixel - m| over the mask minus the same
    over the ring. Subtracting the ring's own spread means texture alone scores ~0, so a mark on a
    busy fabric needs more contrast than one on smooth paint. Dimples (dark and light halves) and
    colour casts score as well as plain dark spots, which a difference of means would not.
    """
    mask = np.asarray(mask, bool)
    ring = ring_mask(mask)
    if not mask.any() or ring.sum() < 8:
        return 0.0
    img = image.astype(np.float32)
    around_px = img[ring]
    ref = np.median(around_px[:: max(1, len(around_px) // 4096)], axis=0)  # a subsample is plenty
    inside = np.sqrt(((img[mask] - ref) ** 2).sum(axis=1)).mean()
    around = np.sqrt(((around_px - ref) ** 2).sum(axis=1)).mean()
    return float(inside - around)


def _apply(image: np.ndarray, base: np.ndarray, delta: np.ndarray, boost: float) -> tuple[np.ndarray, np.ndarray]:
    cand = np.clip(base + delta * np.float32(boost) + np.float32(0.5), 0, 255).astype(np.uint8)
    c0, c1, c2 = cv2.split(cv2.absdiff(cand, image))  # per-channel max; numpy's axis=2 max is slow
    mask = cv2.max(cv2.max(c0, c1), c2) > MASK_TOL
    out = image.copy()
    out[mask] = cand[mask]
    return out, mask


def _place_words(cx: float, cy: float) -> str:
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "center"
    if row == "middle":
        return col
    return row if col == "center" else f"{row}-{col}"


def describe(mask: np.ndarray) -> dict:
    """Geometry of a defect mask: bbox (x0, y0, x1, y1; end exclusive), area, location and size words."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    cx, cy = float(xs.mean() + 0.5) / w, float(ys.mean() + 0.5) / h
    extent = max(x1 - x0, y1 - y0) / max(h, w)
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    mu20, mu02, mu11 = m["mu20"], m["mu02"], m["mu11"]
    spread = math.sqrt(4 * mu11**2 + (mu20 - mu02) ** 2)
    lam1, lam2 = (mu20 + mu02 + spread) / 2, max((mu20 + mu02 - spread) / 2, 1e-9)
    orientation = None
    if lam1 / lam2 > 16:  # clearly elongated (axis ratio > 4): say which way it runs
        deg = abs(math.degrees(0.5 * math.atan2(2 * mu11, mu20 - mu02)))
        orientation = "horizontal" if deg < 22.5 else "vertical" if deg > 67.5 else "diagonal"
    return {
        "bbox": (x0, y0, x1, y1),
        "area_fraction": float(mask.mean()),
        "centroid": (round(cx, 4), round(cy, 4)),
        "location": _place_words(cx, cy),
        "near_edge": bool(
            extent < 0.5 and (min(cx, cy, 1 - cx, 1 - cy) < 0.15 or min(x0, y0, w - x1, h - y1) <= 0.02 * w)
        ),
        "spans": bool(extent > 0.7),
        "extent": round(extent, 4),
        "size": "small" if extent < 0.2 else "large" if extent > 0.45 else "medium",
        "orientation": orientation,
    }


def ok_meta() -> dict:
    """Metadata of a defect-free sample (same keys as a defect's where they make sense)."""
    return {
        "defect": "ok",
        "bbox": None,
        "area_fraction": 0.0,
        "centroid": None,
        "location": None,
        "near_edge": False,
        "spans": False,
        "extent": 0.0,
        "size": None,
        "orientation": None,
        "count": 0,
        "faint": False,
        "contrast": 0.0,
    }


def draw_defect(image: np.ndarray, defect: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw `defect` on a uint8 RGB surface -> (new image, exact bool mask, metadata).

    "ok" returns an unchanged copy and an empty mask. Raises DefectNotVisible when no visible
    rendition fits this surface (rare: e.g. a dark mark on a near-black part).
    """
    if defect not in DEFECT_TYPES:
        raise ValueError(f"unknown defect type {defect!r}; choose one of {DEFECT_TYPES}")
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    if defect == "ok":
        return image.copy(), np.zeros((h, w), bool), ok_meta()
    base = image.astype(np.float32)
    min_area = MIN_AREA_224 * h * w / 224**2
    best = 0.0
    for attempt in range(_ATTEMPTS):
        painted, facts = PAINTERS[defect](base, rng, attempt >= _ATTEMPTS // 2)
        delta = painted - base
        for boost in _BOOSTS:
            out, mask = _apply(image, base, delta, boost)
            area = int(mask.sum())
            if area < min_area or area > MAX_AREA_FRACTION * h * w:
                continue
            contrast = local_contrast(out, mask)
            best = max(best, contrast)
            if contrast >= CONTRAST_FLOOR:
                facts.pop("drawn_faint", None)  # the measured contrast decides "faint", not the intent
                meta = {"defect": defect, **describe(mask), **facts}
                meta.update(
                    contrast=round(contrast, 2), faint=contrast < FAINT_BELOW, boost=boost, attempts=attempt + 1
                )
                return out, mask, meta
    raise DefectNotVisible(
        f"could not draw a visible {defect!r} on this {w}x{h} surface in {_ATTEMPTS} attempts "
        f"(best local contrast {best:.1f} < floor {CONTRAST_FLOOR}); draw it on another surface"
    )
