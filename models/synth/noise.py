"""Fast noise and image helpers shared by the surface and defect generators.

Speed matters (thousands of images per training run on 2 cores), and two numpy habits cost most:
drawing fresh normal deviates for every pixel and broadcasting a colour over an HxWx3 array.
So white noise is cut from a fixed, pre-drawn bank at a seeded random offset and orientation
(still deterministic by seed), and colour is applied with OpenCV's per-channel arithmetic.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

F32 = np.float32
_BANK = 1024


@functools.lru_cache(maxsize=1)
def _bank() -> np.ndarray:
    bank = np.random.default_rng(20240611).standard_normal((_BANK, _BANK), dtype=F32)
    bank.flags.writeable = False
    return bank


def white(size: int, rng: np.random.Generator) -> np.ndarray:
    """Standard normal white noise (size x size float32), a seeded crop of the noise bank."""
    if size > _BANK:
        return rng.standard_normal((size, size), dtype=F32)
    y, x = rng.integers(0, _BANK - size + 1, 2)
    out = _bank()[y : y + size, x : x + size]
    k = int(rng.integers(0, 8))  # 8 orientations multiply the distinct crops
    if k & 4:
        out = out.T
    return np.ascontiguousarray(out[:: 1 - 2 * (k & 1), :: 1 - (k & 2)])


def smooth_noise(size: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    """Band-limited noise (size x size, float32, std ~1): a cells x cells grid upsampled bicubically."""
    cells = max(2, int(cells))
    out = cv2.resize(rng.standard_normal((cells, cells), dtype=F32), (size, size), interpolation=cv2.INTER_CUBIC)
    return out / (out.std() + 1e-6)


def fractal(size: int, rng: np.random.Generator, octaves: int = 3, base_cells: int = 4) -> np.ndarray:
    """Sum of smooth noises at doubling frequencies and shrinking weights; std ~1."""
    out = np.zeros((size, size), F32)
    for o in range(octaves):
        out += smooth_noise(size, rng, base_cells * 2**o) * F32(0.55**o)
    return out / (out.std() + 1e-6)


def streaks(size: int, rng: np.random.Generator, along_cells: int) -> np.ndarray:
    """Noise that varies fast from row to row and slowly along each row (brushing, wood fibre)."""
    n = rng.standard_normal((size, max(2, int(along_cells))), dtype=F32)
    out = cv2.resize(n, (size, size), interpolation=cv2.INTER_LINEAR)
    return out / (out.std() + 1e-6)


def rotate_crop(img: np.ndarray, angle_deg: float, size: int) -> np.ndarray:
    """The central size x size window of a larger square texture rotated about its centre."""
    big = img.shape[0]
    m = cv2.getRotationMatrix2D((big / 2, big / 2), angle_deg, 1.0)
    m[:, 2] -= (big - size) / 2  # write only the window we keep
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def to3(layer: np.ndarray) -> np.ndarray:
    """A single-channel float32 layer repeated into 3 channels (fast)."""
    return cv2.cvtColor(np.ascontiguousarray(layer, dtype=F32), cv2.COLOR_GRAY2RGB)


def colourise(layer: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """HxW layer times an RGB colour -> HxWx3 float32."""
    c = [float(v) for v in colour]
    return cv2.multiply(to3(layer), (c[0], c[1], c[2], 0.0))


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (all in 0..1) as an RGB float32 vector in 0..255."""
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, F32) * 255.0


@functools.lru_cache(maxsize=8)
def centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only (yy, xx) pixel-centre coordinates scaled to [-0.5, 0.5)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(F32) / size - F32(0.5)
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx
