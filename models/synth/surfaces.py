"""Procedural, seeded surface textures on which the defect generator draws.

Every surface is built in float32 (0..255), then finished with a random tint, a lighting gradient,
vignetting and a little sensor noise, and returned as uint8 RGB. All of that happens *before* a
defect is drawn, so the defect mask stays exact (nothing touches the image after the defect).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from models.synth.noise import (
    F32,
    centred_grid,
    colourise,
    fractal,
    hsv_to_rgb,
    rotate_crop,
    smooth_noise,
    streaks,
    to3,
    white,
)

SURFACE_KINDS: tuple[str, ...] = (
    "brushed_metal",
    "painted",
    "plastic",
    "cast",
    "wood",
    "fabric",
    "grid",
    "speckle",
)


def _big(s: int) -> int:
    return int(s * 1.45) + 2  # room to rotate by any angle and still fill an s x s window


def _brushed_metal(s: int, rng: np.random.Generator) -> np.ndarray:
    big = _big(s)
    lum = streaks(big, rng, int(rng.integers(2, 8))) * F32(rng.uniform(5, 16))
    lum += cv2.resize(streaks(big // 6, rng, 2), (big, big)) * F32(rng.uniform(2, 8))  # broad bands
    lum = rotate_crop(lum, rng.uniform(0, 180), s) + F32(rng.uniform(120, 215))
    lum += white(s, rng) * F32(rng.uniform(1.0, 3.0))
    return colourise(lum, 1 + rng.normal(0, 0.025, 3))


def _painted(s: int, rng: np.random.Generator) -> np.ndarray:
    base = hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.8), rng.uniform(0.35, 0.92))
    peel = smooth_noise(s, rng, s // int(rng.integers(4, 9))) * F32(rng.uniform(2, 6))  # orange peel
    peel += white(s, rng) * F32(rng.uniform(0.8, 2.5))
    return colourise(1 + peel * F32(2 / 255), base)


def _plastic(s: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.uniform(0.12, 0.3) if rng.random() < 0.35 else rng.uniform(0.35, 0.95)  # black housings are common
    base = hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.0, 0.7), v)
    stipple = cv2.GaussianBlur(white(s, rng), (0, 0), rng.uniform(0.6, 1.4))
    stipple *= F32(rng.uniform(3, 9) / (stipple.std() + 1e-6))
    yy, xx = centred_grid(s)
    cx, cy, r = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.2, 0.6)
    sheen = np.exp(((xx - F32(cx)) ** 2 + (yy - F32(cy)) ** 2) * F32(-0.5 / (r * r))) * F32(rng.uniform(5, 25))
    return colourise(np.ones((s, s), F32), base) + to3(stipple + sheen)


def _cast(s: int, rng: np.random.Generator) -> np.ndarray:
    grain = cv2.GaussianBlur(white(s, rng), (0, 0), rng.uniform(0.7, 1.5))
    grain *= F32(rng.uniform(9, 20) / (grain.std() + 1e-6))
    lum = grain + fractal(s, rng, 3, 3) * F32(rng.uniform(4, 12)) + F32(rng.uniform(85, 170))
    return colourise(lum, [1 + rng.uniform(0, 0.06), 1.0, 1 - rng.uniform(0, 0.06)])


def _wood(s: int, rng: np.random.Generator) -> np.ndarray:
    big = _big(s)
    yy = np.arange(big, dtype=F32)[:, None]
    period = F32(rng.uniform(8, 24) * s / 224)
    phase = (yy + fractal(big, rng, 2, 2) * F32(rng.uniform(3, 10))) / period
    phase += streaks(big, rng, 3) * F32(0.08)  # ring width wanders along the board
    # early wood is wide and light; late wood is a narrow dark band at the end of each ring
    late = np.clip((phase - np.floor(phase) - F32(rng.uniform(0.55, 0.8))) * F32(5.0), 0, 1)
    t = late * F32(0.75) + streaks(big, rng, int(rng.integers(3, 10))) * F32(0.12) + F32(0.15)
    t = np.clip(rotate_crop(t, rng.uniform(-15, 15) + rng.choice([0, 90]), s), 0, 1)
    light = np.array([rng.uniform(175, 225), rng.uniform(135, 175), rng.uniform(90, 130)], F32)
    dark = light * np.array([0.62, 0.55, 0.5], F32) * F32(rng.uniform(0.75, 1.0))
    return colourise(np.ones((s, s), F32), light) + colourise(t, dark - light)


def _fabric(s: int, rng: np.random.Generator) -> np.ndarray:
    big = _big(s)
    c = np.arange(big, dtype=F32)
    p = F32(rng.uniform(4.5, 10) * s / 224)
    # every factor depends on x alone or y alone: build 1-D profiles, broadcast once
    prof = np.sin(F32(math.pi) * ((c / p) % 1.0)) * F32(0.55) + F32(0.45)
    idx = (c // p).astype(np.int32)
    slub = 1 + rng.normal(0, 0.06, big).astype(F32)  # threads differ a little in thickness
    warp_x, weft_y = (prof * slub[idx])[None, :], (prof * slub[::-1][idx])[:, None]
    weave = int(rng.integers(0, 3))  # plain, twill, basket
    if weave == 0:
        over = (idx[None, :] + idx[:, None]) % 2 == 0
    elif weave == 1:
        over = (idx[None, :] + idx[:, None]) % 3 == 0
    else:
        over = (idx[None, :] // 2 + idx[:, None] // 2) % 2 == 0
    lum = rotate_crop(np.where(over, warp_x, weft_y).astype(F32), rng.uniform(-12, 12), s)
    lum += white(s, rng) * F32(0.04)
    return colourise(lum, hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.0, 0.75), rng.uniform(0.4, 0.95)))


def _grid(s: int, rng: np.random.Generator) -> np.ndarray:
    # solar-cell-like: blue (poly-crystalline facets or mono) with thin fingers and wide busbars
    blue = np.array([rng.uniform(35, 70), rng.uniform(55, 95), rng.uniform(110, 170)], F32)
    if rng.random() < 0.6:
        facets = np.floor(fractal(s, rng, 2, 5) * F32(2.5))
        shade = 1 + (facets % 5) * F32(rng.uniform(0.03, 0.08)) - F32(0.1)
    else:
        shade = 1 + fractal(s, rng, 2, 3) * F32(0.03)
    img = colourise(shade + white(s, rng) * F32(0.02), blue)
    metal = F32(rng.uniform(160, 215))
    pitch = rng.uniform(7, 13) * s / 224
    rows = np.arange(rng.uniform(0, pitch), s, pitch).astype(np.int32)
    img[rows] = img[rows] * F32(0.3) + metal * F32(0.7)
    n_bus, w = int(rng.integers(2, 4)), max(2, int(round(rng.uniform(3, 6) * s / 224)))
    for k in range(n_bus):
        x = int((k + 0.5) * s / n_bus + rng.uniform(-4, 4))
        img[:, max(0, x - w // 2) : x + (w + 1) // 2] = metal
    return np.ascontiguousarray(np.rot90(img, k=int(rng.integers(0, 2))))


def _speckle(s: int, rng: np.random.Generator) -> np.ndarray:
    base = hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.0, 0.4), rng.uniform(0.3, 0.85))
    img = colourise(np.ones((s, s), F32), base) + to3(white(s, rng) * F32(rng.uniform(5, 16)))
    style = int(rng.integers(0, 3))
    if style == 0:  # granite: coloured flecks, slightly blurred so they read as aggregate, not pits
        n = int(s * s * rng.uniform(0.02, 0.06))
        ys, xs = rng.integers(0, s, n), rng.integers(0, s, n)
        img[ys, xs] = rng.uniform(40, 230, (n, 3)).astype(F32)
        img = cv2.GaussianBlur(img, (0, 0), 0.7)
    elif style == 1:  # blotchy
        img += to3(fractal(s, rng, 3, 6) * F32(rng.uniform(6, 14)))
    return img


_MAKERS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "brushed_metal": _brushed_metal,
    "painted": _painted,
    "plastic": _plastic,
    "cast": _cast,
    "wood": _wood,
    "fabric": _fabric,
    "grid": _grid,
    "speckle": _speckle,
}


def finish(img: np.ndarray, rng: np.random.Generator, tint: float = 0.08) -> np.ndarray:
    """Tint, lighting gradient, vignetting and sensor noise on a float RGB image -> uint8 RGB."""
    s = img.shape[0]
    yy, xx = centred_grid(s)
    phi, g = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.35)
    cx, cy = rng.uniform(-0.15, 0.15, 2).astype(F32)
    shade = 1 + F32(g * math.cos(phi)) * xx + F32(g * math.sin(phi)) * yy
    shade -= F32(rng.uniform(0, 0.35) / 0.5) * ((xx - cx) ** 2 + (yy - cy) ** 2)
    shade += white(s, rng) * F32(rng.uniform(0.0, 2.5) / 128)  # sensor noise, relative to mid-grey
    gain = (1 + rng.uniform(-tint, tint, 3)) * rng.uniform(0.9, 1.1)
    out = cv2.multiply(cv2.multiply(img.astype(F32), to3(shade)), (*[float(v) for v in gain], 0.0))
    return np.clip(out + F32(0.5), 0, 255).astype(np.uint8)  # +0.5 then truncate = round


def make_surface(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A clean procedural surface of `kind` (one of SURFACE_KINDS): uint8 (size, size, 3) RGB."""
    if kind not in _MAKERS:
        raise ValueError(f"unknown surface kind {kind!r}; choose one of {SURFACE_KINDS}")
    if size < 32:
        raise ValueError(f"size {size} is too small for a surface; use at least 32 pixels")
    return finish(_MAKERS[kind](int(size), rng), rng)
