"""Seed textures and the fixed train/test partition of them.

Real seeds are the 1,000 nominal textile images of the MIT-licensed `conformal-clip-data` package
(simulated woven textures, 250x250, grey). The package is optional: nothing imports it until a
caller asks for textile seeds, and then a missing package raises TextileSeedsUnavailable.

Train and test never share a seed texture. Each seed has a stable key (the textile file name, or
"proc-<id>" for a procedural surface's private random stream), and a fixed hash of that key puts
it in exactly one split, so the partition is the same on every machine and in every run.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import cv2
import numpy as np

from models.data import DatasetError
from models.synth.noise import F32, colourise, hsv_to_rgb
from models.synth.surfaces import finish

SPLITS: tuple[str, ...] = ("train", "test")
TEST_SHARE = 0.2  # share of seed keys reserved for the test split
TEXTILE = "textile"  # the surface name recorded for samples drawn on a textile seed


class TextileSeedsUnavailable(DatasetError):
    """Textile seed images were requested but the conformal-clip-data package is not installed."""


def seed_split(key: str) -> str:
    """The split ("train" or "test") a seed key belongs to; fixed by SHA-256, never by a run's seed."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big")
    return "test" if h < TEST_SHARE * 2**32 else "train"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@functools.lru_cache(maxsize=2)
def textile_files(split: str) -> tuple[Path, ...]:
    """The nominal textile seed files of `split`, sorted by name."""
    _check_split(split)
    try:
        import conformal_clip_data as ccd  # optional: only textile seeds need it
    except ImportError as e:
        raise TextileSeedsUnavailable(
            "textile seed images need the conformal-clip-data package (MIT, 42 MB): "
            "pip install conformal-clip-data==0.1.4, or pass textile_fraction=0 to use "
            "procedural surfaces only"
        ) from e
    files = sorted(Path(ccd.nominal_dir()).glob("*.jpg"))
    if not files:
        raise TextileSeedsUnavailable(f"no textile images found in {ccd.nominal_dir()}; reinstall conformal-clip-data")
    return tuple(p for p in files if seed_split(p.name) == split)


@functools.lru_cache(maxsize=1024)
def _load_grey(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)  # the files are RGB-encoded but grey in content
    if img is None:
        raise DatasetError(f"cannot decode textile seed image {path}; reinstall conformal-clip-data")
    img.flags.writeable = False
    return img


def textile_surface(path: Path, size: int, rng: np.random.Generator) -> np.ndarray:
    """A seed textile cut, flipped, resized and tinted to a uint8 (size, size, 3) RGB surface."""
    grey = _load_grey(str(path))
    h, w = grey.shape
    c = int(min(h, w) * rng.uniform(0.6, 1.0))  # random crop: scale and position vary
    y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
    crop = grey[y : y + c, x : x + c]
    k = int(rng.integers(0, 8))
    crop = np.rot90(crop, k & 3)
    if k & 4:
        crop = crop[:, ::-1]
    lum = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA).astype(F32)
    if rng.random() < 0.35:
        colour = np.full(3, 255.0 * rng.uniform(0.8, 1.1), F32)  # undyed
    else:
        colour = hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.15, 0.8), rng.uniform(0.6, 1.0)) * F32(1.1)
    return finish(colourise(lum * F32(1 / 128), colour * F32(0.55)), rng)


def procedural_texture_id(split: str, rng: np.random.Generator) -> int:
    """A random id for a procedural surface's private stream, drawn from `split`'s side of the hash."""
    _check_split(split)
    while True:  # rejection sampling: on average 1.25 draws for train, 5 for test
        tid = int(rng.integers(0, 2**62))
        if seed_split(procedural_key(tid)) == split:
            return tid


def procedural_key(texture_id: int) -> str:
    """The seed key of a procedural texture id (what seed_split partitions)."""
    return f"proc-{texture_id}"
