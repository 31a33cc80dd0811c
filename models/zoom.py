"""Coarse-to-fine zoom: refine a dense Grad-CAM peak by looking again, closer, where the map is hot.

A 6-px defect covers under one feature cell of a 448-px tile (32 px per cell) and is easily outvoted.
After the frame's map, the top-K local maxima of the (blurred) map are cropped (a square window of
`window` frame px around each), each crop is resized to the tower's input (`input_size` px short
side, so a 128-px window makes a 6-px defect ~21 px) and scored again, and the map of the window that
answers most strongly (`pick`) gives the peak and region. The crop's map is the same softmax
Grad-CAM (models.dense_map.cam_map), blurred half a cell, as the frame's.

Cost: one extra forward of `input_size` px per window (K per explained label). Coordinates are frame
pixels, integers; regions half-open (x0, y0, x1, y1), as everywhere in models/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from models.dense_map import FrameFeatures, cam_map, cell_px, roi_box, unit
from models.tiling import Box

# "agree": as "prob", but a window counts only when the closer look ranks the explained label first
# among the library's labels; otherwise the frame's own map stands. Without it every label's zoom
# lands on the one salient spot, and the map stops telling the candidates apart (wrong-text control).
# "rise": as "prob", but a window counts only when the closer look gives the label a higher
# probability than the whole frame did (it is where the evidence for this label is).
# "auto": "agree" for a window that covers at least AGREE_AREA of the frame (of the region of interest's
# box where the camera has one), "prob" for a smaller one.
# A window that is most of the frame gains little resolution, and without the check every label's map
# moves to the frame's one salient spot; a small window on a large frame is where the closer look sees
# what the frame's forward could not, and its crop's embedding is mostly background, so the crop-level
# check would reject the very defect it found (validation: bench/results/issue12/zoom/auto/).
PICKS = ("prob", "max", "agree", "rise", "auto")
AGREE_AREA = 0.25
BLUR_CELLS = 0.5  # as models.explain.PEAK_BLUR_CELLS (the crop's map is smoothed like the frame's)


@dataclass(frozen=True)
class ZoomSpec:
    """Zoom options (each is part of the scoring configuration when `windows` > 0). No defaults here:
    the station's live in [scoring] (inspector.frame.scoring.ScoringSettings.zoom_*)."""

    windows: int  # K local maxima looked at again; 0 = no zoom
    window: int  # side of the square crop, frame px (clipped to the frame)
    input_size: int  # short side the crop is resized to for its forward, px
    pick: str  # which window wins: "prob" (label's softmax probability on the crop), "max" (map max),
    # "agree" ("prob", among windows whose crop ranks the label first), "rise" ("prob", among
    # windows where the label's probability exceeds the whole frame's) or "auto" ("agree" for a window
    # covering at least AGREE_AREA of the frame, else "prob")

    def __post_init__(self) -> None:
        if self.windows < 0 or self.window < 16 or self.input_size < 32 or self.pick not in PICKS:
            raise ValueError(f"zoom: windows >= 0, window >= 16 px, input_size >= 32 px, pick in {PICKS}; got {self}")


@dataclass(frozen=True)
class Zoomed:
    """The winning window's map placed in the frame, its peak, region and score."""

    heat: np.ndarray  # float32 HxW: the frame's map scaled to max 1, the window replaced by its own map
    peak: tuple[int, int]  # (x, y) frame px
    bbox: tuple[int, int, int, int]  # (x0, y0, x1, y1) frame px, half-open, contains the peak
    window: Box
    score: float


def local_maxima(heat: np.ndarray, k: int, min_dist: int) -> list[tuple[int, int]]:
    """Up to k (x, y) maxima of `heat`, greedily, each at least `min_dist` px (Chebyshev) from the others."""
    work = heat.astype(np.float32).copy()
    peaks: list[tuple[int, int]] = []
    for _ in range(k):
        y, x = np.unravel_index(int(np.argmax(work)), work.shape)
        if work[y, x] <= 0 and peaks:
            break  # the rest of the map is cold
        peaks.append((int(x), int(y)))
        work[max(0, y - min_dist) : y + min_dist + 1, max(0, x - min_dist) : x + min_dist + 1] = -1.0
    return peaks


def window_box(x: int, y: int, side: int, height: int, width: int) -> Box:
    """A side x side box centred on (x, y), shifted (not shrunk) to stay inside the frame."""
    sw, sh = min(side, width), min(side, height)
    x0 = int(np.clip(x - sw // 2, 0, width - sw))
    y0 = int(np.clip(y - sh // 2, 0, height - sh))
    return (x0, y0, x0 + sw, y0 + sh)


def crop_map(
    features: FrameFeatures, direction: np.ndarray, library: np.ndarray, logit_scale: float, height: int, width: int
) -> tuple[np.ndarray, float, float, bool]:
    """(blurred softmax Grad-CAM of a crop at its size, the label's softmax probability, the map's max,
    whether the crop ranks the label first)."""
    heat = cam_map(features, direction, None, height, width, "softmax", library, logit_scale)
    heat = cv2.GaussianBlur(heat, (0, 0), BLUR_CELLS * cell_px(features))
    logits = logit_scale * (library @ features.embedding)
    probs = np.exp(logits - logits.max())
    row = int(np.argmax(library @ direction))  # the explained label is one of the library's rows
    return heat, float(probs[row] / probs.sum()), float(heat.max()), bool(np.argmax(logits) == row)


def zoom(
    encode: Callable[[np.ndarray, np.ndarray | None], FrameFeatures],
    rgb: np.ndarray,
    coarse: np.ndarray,
    direction: np.ndarray,
    library: np.ndarray,
    logit_scale: float,
    spec: ZoomSpec,
    roi: np.ndarray | None = None,
    frame_embedding: np.ndarray | None = None,
) -> Zoomed | None:
    """Refine the frame map `coarse` (HxW, >= 0) for the label `direction` (a row of `library`).

    `encode(crop, roi_crop)` runs the tower on a crop without tiles at `spec.input_size` (the caller's
    front end). `frame_embedding` (the whole frame's) is needed for pick "rise". None when zoom is off,
    the map is all zero (nothing to refine) or no window passes the pick rule.
    """
    if spec.windows == 0 or not np.isfinite(coarse).all() or coarse.max() <= 0:
        return None
    h, w = coarse.shape
    lib = np.stack([unit(r) for r in library])
    rx0, ry0, rx1, ry1 = roi_box(roi, h, w)  # "auto" compares a window with what the station looks at
    looked_at = (rx1 - rx0) * (ry1 - ry0)
    floor = -1.0
    if spec.pick == "rise":
        if frame_embedding is None:
            raise ValueError("zoom pick 'rise' needs the frame's embedding")
        logits = logit_scale * (lib @ unit(frame_embedding))
        probs = np.exp(logits - logits.max())
        floor = float(probs[int(np.argmax(lib @ unit(direction)))] / probs.sum())
    best = None
    for x, y in local_maxima(coarse, spec.windows, spec.window // 2):
        box = window_box(x, y, spec.window, h, w)
        x0, y0, x1, y1 = box
        part = None if roi is None else roi[y0:y1, x0:x1]
        feats = encode(np.ascontiguousarray(rgb[y0:y1, x0:x1]), part)
        heat, prob, top, first = crop_map(feats, unit(direction), lib, logit_scale, y1 - y0, x1 - x0)
        if part is not None:
            heat = np.where(part, heat, 0.0).astype(np.float32)
        agree = spec.pick == "agree" or (spec.pick == "auto" and (x1 - x0) * (y1 - y0) >= AGREE_AREA * looked_at)
        if (agree and not first) or prob <= floor:
            continue  # the closer look does not see this label here: keep the frame's map
        score = top if spec.pick == "max" else prob
        if heat.max() > 0 and (best is None or score > best[0]):
            best = (score, box, heat)
    if best is None:
        return None
    score, box, heat = best
    return place(coarse, heat, box, score)


def place(coarse: np.ndarray, heat: np.ndarray, box: Box, score: float) -> Zoomed:
    """The frame map (scaled to max 1) with `box` replaced by the window's map (scaled to max 1,
    feathered into the frame's at the window's inner sides);
    the peak and region are the window's (region: the peak's connected area >= half its max)."""
    from models.explain import _hottest_region  # the frame path's own peak rule (plateau centre, half max)

    x0, y0, x1, y1 = box
    out = np.nan_to_num(coarse, nan=0.0).astype(np.float32)
    out = out / max(float(out.max()), 1e-12)
    local = (heat / float(heat.max())).astype(np.float32)
    weight = _feather(out.shape, box)
    out[y0:y1, x0:x1] = weight * local + (1.0 - weight) * out[y0:y1, x0:x1]
    (px, py), (bx0, by0, bx1, by1) = _hottest_region(local)
    return Zoomed(out, (px + x0, py + y0), (bx0 + x0, by0 + y0, bx1 + x0, by1 + y0), box, score)


def _feather(shape: tuple[int, ...], box: Box) -> np.ndarray:
    """Weight of the window's own map inside `box`: 1 within, ramping to 0 over an eighth of the window
    at sides inside the frame, so the overlay shows no hard square seam (the peak is the window's)."""
    x0, y0, x1, y1 = box
    h, w = shape[:2]

    def ramp(n: int, lo_edge: bool, hi_edge: bool) -> np.ndarray:
        width = max(1, n // 8)
        r = np.ones(n, np.float32)
        edge = (np.arange(width, dtype=np.float32) + 0.5) / width
        if not lo_edge:
            r[:width] = np.minimum(r[:width], edge)
        if not hi_edge:
            r[n - width :] = np.minimum(r[n - width :], edge[::-1])
        return r

    return np.outer(ramp(y1 - y0, y0 == 0, y1 == h), ramp(x1 - x0, x0 == 0, x1 == w)).astype(np.float32)


def zoomed_explanation(explanation, frame: np.ndarray, z: Zoomed, spec: ZoomSpec):
    """A models.explain.Explanation with the heatmap, overlay, peak and region of `zoom`'s winning
    window; its layer says so."""
    from dataclasses import replace

    from pytorch_grad_cam.utils.image import show_cam_on_image

    from models.explain import OVERLAY_IMAGE_WEIGHT

    rgb = frame if frame.ndim == 3 else np.repeat(frame[:, :, None], 3, axis=2)
    overlay = show_cam_on_image(rgb.astype(np.float32) / 255.0, z.heat, use_rgb=True, image_weight=OVERLAY_IMAGE_WEIGHT)
    layer = f"{explanation.layer} + zoom {spec.windows}x{spec.window}px@{spec.input_size}"
    return replace(explanation, heatmap=z.heat, overlay=overlay, bbox=z.bbox, peak=z.peak, layer=layer)
