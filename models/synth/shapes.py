"""Geometry for the defect drawers: anti-aliased strokes and discs, random walks, soft blobs.

All shapes come back as float32 coverage layers in [0, 1] (HxW), so a drawer only has to decide
what colour change the coverage carries. OpenCV draws with 4 fractional bits (shift=4) so thin
lines and small pits land at sub-pixel positions instead of snapping to the pixel grid.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from models.synth.noise import F32, smooth_noise

_SHIFT = 4
_ONE = 1 << _SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def strokes(size: int, paths: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Coverage of open polylines, each given as (points Nx2 in (x, y) pixels, thickness)."""
    canvas = np.zeros((size, size), np.uint8)
    for pts, thick in paths:
        cv2.polylines(canvas, [_fixed(pts)], False, 255, max(1, int(thick)), cv2.LINE_AA, _SHIFT)
    return canvas.astype(F32) * F32(1 / 255)


def discs(size: int, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Coverage of filled anti-aliased discs."""
    canvas = np.zeros((size, size), np.uint8)
    for (x, y), r in zip(np.asarray(centres), np.asarray(radii)):
        c = (int(round(x * _ONE)), int(round(y * _ONE)))
        cv2.circle(canvas, c, max(1, int(round(r * _ONE))), 255, -1, cv2.LINE_AA, _SHIFT)
    return canvas.astype(F32) * F32(1 / 255)


def polygon(size: int, pts: np.ndarray) -> np.ndarray:
    """Coverage of one filled polygon with an anti-aliased (hard, one-pixel) edge."""
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillPoly(canvas, [_fixed(pts)], 255, cv2.LINE_AA, _SHIFT)
    return canvas.astype(F32) * F32(1 / 255)


def bezier(p0: np.ndarray, p1: np.ndarray, bend: float, n: int = 40) -> np.ndarray:
    """A quadratic Bezier from p0 to p1 whose control point sits `bend` x length off the chord."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    ctrl = (p0 + p1) / 2 + np.array([-d[1], d[0]]) * bend
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t**2 * p1


def random_walk(
    start: np.ndarray, heading: float, length: float, step: float, jag: float, rng: np.random.Generator
) -> np.ndarray:
    """A jagged path: unit steps whose direction jitters but keeps returning to `heading`."""
    pts, p, theta, done = [np.asarray(start, float)], np.asarray(start, float), heading, 0.0
    while done < length:
        theta = heading + 0.6 * (theta - heading) + rng.normal(0, jag)  # mean reversion keeps a course
        st = step * rng.uniform(0.6, 1.4)
        p = p + st * np.array([math.cos(theta), math.sin(theta)])
        pts.append(p)
        done += st
    return np.array(pts)


def blob(
    size: int,
    centre: tuple[float, float],
    radii: tuple[float, float],
    angle: float,
    rng: np.random.Generator,
    irregular: float = 0.25,
    soft: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """An irregular soft-edged blob: (coverage in [0, 1], normalised radius d; d = 1 at the edge).

    Coverage is exactly 0 where d >= 1, so the blob is compact (a finite mask), and ramps to 1 over
    the outer `soft` fraction of the radius.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(F32)
    dx, dy = xx - F32(centre[0]), yy - F32(centre[1])
    c, s = F32(math.cos(angle)), F32(math.sin(angle))
    u, v = (dx * c + dy * s) / F32(radii[0]), (-dx * s + dy * c) / F32(radii[1])
    d = np.sqrt(u * u + v * v)
    cells = max(3, int(size / max(radii) * 1.5))  # wobble on the scale of the blob itself
    # clip the wobble so far-away noise troughs cannot pull d under 1 and make stray islands
    d *= np.clip(1 + F32(irregular) * smooth_noise(size, rng, cells) * F32(0.5), 0.75, 1.4)
    cover = np.clip((1 - d) / F32(max(soft, 1e-3)), 0, 1)
    return cover * cover * (3 - 2 * cover), d  # smoothstep: no visible kink at the inner edge
