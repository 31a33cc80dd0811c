"""Generate labelled samples (image, exact mask, metadata) and serve them as caption pairs.

Determinism: sample i depends only on (seed, split, i), through its own random stream; the plan
(which defect and which surface kind goes where) depends only on (seed, split, n). Same arguments,
same bytes, on any machine with the same numpy/OpenCV.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from models.synth.captions import caption as compose_caption
from models.synth.defects import DEFECT_TYPES, DefectNotVisible, draw_defect
from models.synth.seeds import (
    SPLITS,
    TEXTILE,
    procedural_key,
    procedural_texture_id,
    textile_files,
    textile_surface,
)
from models.synth.surfaces import SURFACE_KINDS, make_surface

_SURFACE_RETRIES = 6  # fresh surfaces to try when a defect cannot be made visible on one


@dataclass(frozen=True)
class Sample:
    """One generated image with its exact defect mask. Arrays are read-only."""

    image: np.ndarray  # uint8 (H, W, 3) RGB
    mask: np.ndarray  # bool (H, W): exactly the pixels the defect changed
    defect: str
    surface: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"image must be uint8 HxWx3, got {self.image.dtype} {self.image.shape}")
        if self.mask.dtype != bool or self.mask.shape != self.image.shape[:2]:
            raise ValueError(f"mask must be bool {self.image.shape[:2]}, got {self.mask.dtype} {self.mask.shape}")
        if self.defect not in DEFECT_TYPES:
            raise ValueError(f"unknown defect {self.defect!r}; choose one of {DEFECT_TYPES}")
        if (self.defect == "ok") == bool(self.mask.any()):
            raise ValueError(
                f"an {self.defect!r} sample must have {'an empty' if self.defect == 'ok' else 'a non-empty'} mask"
            )
        self.image.flags.writeable = False
        self.mask.flags.writeable = False


def _check(names: Iterable[str], known: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(names)
    bad = [x for x in names if x not in known]
    if bad or not names:
        raise ValueError(f"{what} must be a non-empty selection of {known}; got unknown {bad or 'none given'}")
    return names


def _surface(kind: str, size: int, split: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A clean surface and its seed key (the unit the train/test partition is made of)."""
    if kind == TEXTILE:
        files = textile_files(split)
        path = files[int(rng.integers(len(files)))]
        return textile_surface(path, size, rng), path.name
    tid = procedural_texture_id(split, rng)
    return make_surface(kind, size, np.random.default_rng(tid)), procedural_key(tid)


def generate(
    n: int,
    *,
    seed: int,
    size: int = 224,
    defects: Iterable[str] = DEFECT_TYPES,
    surfaces: Iterable[str] = SURFACE_KINDS,
    textile_fraction: float = 0.5,
    split: str = "train",
) -> list[Sample]:
    """`n` samples with balanced defect types; textile seeds for `textile_fraction` of them.

    split "train" and "test" draw from disjoint seed textures (textile files and procedural texture
    ids are partitioned by a fixed hash), so no test image reuses a training texture.
    """
    defects, surfaces = _check(defects, DEFECT_TYPES, "defects"), _check(surfaces, SURFACE_KINDS, "surfaces")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0.0 <= textile_fraction <= 1.0:
        raise ValueError(f"textile_fraction must be in [0, 1], got {textile_fraction}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    code = SPLITS.index(split)
    plan = np.random.default_rng([seed, code, 0])
    kinds = np.array(surfaces, dtype=object)[plan.permutation(np.arange(n) % len(surfaces))] if n else []
    n_textile = int(round(n * textile_fraction))
    if n_textile:
        textile_files(split)  # fail fast, before any work, when the optional package is missing
    is_textile = plan.permutation(np.arange(n) < n_textile)
    types = np.array(defects, dtype=object)[plan.permutation(np.arange(n) % len(defects))] if n else []
    return [
        _sample(
            str(types[i]),
            TEXTILE if is_textile[i] else str(kinds[i]),
            size,
            split,
            np.random.default_rng([seed, code, 1, i]),
            i,
        )
        for i in range(n)
    ]


def _sample(defect: str, kind: str, size: int, split: str, rng: np.random.Generator, index: int) -> Sample:
    for _ in range(_SURFACE_RETRIES):
        clean, key = _surface(kind, size, split, rng)
        try:
            image, mask, meta = draw_defect(clean, defect, rng)
        except DefectNotVisible:
            continue  # e.g. a dark mark on a near-black part: this defect needs another surface
        meta.update(surface=kind, seed_key=key, split=split, index=index)
        return Sample(image=image, mask=mask, defect=defect, surface=kind, meta=meta)
    raise DefectNotVisible(f"no visible {defect!r} on {_SURFACE_RETRIES} {kind!r} surfaces (sample {index})")


class SyntheticDefectDataset(Sequence):
    """(PIL RGB image, caption) pairs over generated samples; captions vary by (seed, epoch, index).

    `caption_split` picks the vocabulary: "train" for training, "test" for the held-out wordings
    (default: the split the samples were generated for). Call `set_epoch` as the trainer does.
    """

    def __init__(self, samples: Sequence[Sample], *, seed: int = 0, caption_split: str | None = None) -> None:
        self.samples = list(samples)
        self.seed, self.epoch = int(seed), 0
        splits = {s.meta.get("split", "train") for s in self.samples}
        self.caption_split = caption_split or (splits.pop() if len(splits) == 1 else "train")
        if self.caption_split not in SPLITS:
            raise ValueError(f"caption_split must be one of {SPLITS}, got {self.caption_split!r}")

    @classmethod
    def generate(
        cls, n: int, *, seed: int, caption_split: str | None = None, **kwargs: object
    ) -> SyntheticDefectDataset:
        """Generate `n` samples (keyword arguments as for `generate`) and wrap them."""
        return cls(generate(n, seed=seed, **kwargs), seed=seed, caption_split=caption_split)  # type: ignore[arg-type]

    @property
    def labels(self) -> list[str]:
        """The defect type of every sample."""
        return [s.defect for s in self.samples]

    @property
    def masks(self) -> list[np.ndarray]:
        """The exact defect mask of every sample (empty for "ok")."""
        return [s.mask for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose caption draw `caption`/`__getitem__` return."""
        self.epoch = int(epoch)

    def caption(self, index: int) -> str:
        """This epoch's caption of sample `index` (no image conversion)."""
        index = range(len(self.samples))[index]  # normalises negatives, raises IndexError past the end
        s = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return compose_caption({**s.meta, "defect": s.defect, "surface": s.surface}, rng, self.caption_split)

    def load_image(self, index: int) -> Image.Image:
        """Sample `index` as a PIL RGB image."""
        return Image.fromarray(self.samples[index].image)  # uint8 HxWx3 -> RGB

    def __getitem__(self, index: int) -> tuple[Image.Image, str]:  # type: ignore[override]
        return self.load_image(index), self.caption(index)
