"""Benchmark data (optional extra `[bench]`, never needed by `make test`): ELPV solar cells and textiles.

- ELPV (`elpv-dataset` 1.0.0.post1): 2,624 real electroluminescence images of solar cells, 300x300
  grey, each with a defect probability in {0, 1/3, 2/3, 1} and a module type (mono/poly).
  Licence CC BY-NC-SA 4.0: benchmark only. Never train shipped weights on it, never copy the images
  into the repository.
- Textiles (`conformal-clip-data` 0.1.4, MIT): 2,000 simulated textile textures, nominal 1,000 /
  local defect 500 / global defect 500 (Megahed et al. 2025). The defect generator uses 80 % of the
  nominal images as seed textures for training (models.synth.seeds); the benchmark therefore tests
  nominal images only from the held-out 20 % of seeds, so no tested image was ever trained on.

Images come back as uint8 HxWx3 RGB arrays (the grey sources repeated over three channels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.data import DatasetError, load_rgb
from models.synth.seeds import seed_split

ELPV_LICENCE = "CC BY-NC-SA 4.0 (data), Apache-2.0 (loader code): benchmark only, never in shipped weights"
TEXTILE_LICENCE = "MIT (simulated textile textures, Megahed et al. 2025)"
TEXTILE_CLASSES = ("ok", "local", "global")  # nominal -> "ok", the station's label for defect-free


class BenchDataUnavailable(DatasetError):
    """A benchmark data set was requested but its optional package is not installed."""


@dataclass(frozen=True)
class LabelledImages:
    """Images with one label each, plus per-image extras (ELPV: probability, module type; textiles: file)."""

    images: list[np.ndarray] = field(repr=False)
    labels: list[str]
    extras: dict[str, list] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray | list[int]) -> LabelledImages:
        idx = [int(i) for i in index]
        return LabelledImages(
            [self.images[i] for i in idx],
            [self.labels[i] for i in idx],
            {k: [v[i] for i in idx] for k, v in self.extras.items()},
        )


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2)) if grey.ndim == 2 else grey


def load_elpv() -> LabelledImages:
    """All 2,624 ELPV cells; label "defective" for p >= 0.5, "ok" below (extras: probability, type)."""
    try:
        from elpv_dataset.utils import load_dataset
    except ImportError as e:
        raise BenchDataUnavailable(
            "the ELPV benchmark needs the elpv-dataset package (CC BY-NC-SA 4.0, 91 MB): "
            "pip install 'elpv-dataset==1.0.0.post1' (or the project's [bench] extra)"
        ) from e
    images, probs, types = load_dataset()
    probs = [float(p) for p in probs]
    return LabelledImages(
        [_rgb(im) for im in images],
        ["defective" if p >= 0.5 else "ok" for p in probs],
        {"probability": probs, "type": [str(t) for t in types]},
    )


def elpv_split(data: LabelledImages, test_share: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (probability x module type) random split into (train, test) indices, as Deitsch et al.
    (2019) split 75/25. The labels file has no module ids, so cells of one module can fall on both sides."""
    rng = np.random.default_rng(seed)
    keys = [f"{p:.3f}/{t}" for p, t in zip(data.extras["probability"], data.extras["type"])]
    train, test = [], []
    for key in sorted(set(keys)):
        idx = rng.permutation([i for i, k in enumerate(keys) if k == key])
        n_test = int(round(test_share * len(idx)))
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return np.array(sorted(train)), np.array(sorted(test))


def load_textiles() -> LabelledImages:
    """The 2,000 textile textures; labels "ok" (nominal), "local", "global" (extras: file, seed_split)."""
    try:
        import conformal_clip_data as ccd
    except ImportError as e:
        raise BenchDataUnavailable(
            "the textile benchmark needs conformal-clip-data: pip install 'conformal-clip-data==0.1.4'"
        ) from e
    images, labels, files, splits = [], [], [], []
    for label, folder in zip(TEXTILE_CLASSES, (ccd.nominal_dir(), ccd.local_dir(), ccd.global_dir())):
        for path in sorted(Path(folder).glob("*.jpg")):
            images.append(np.asarray(load_rgb(path)))
            labels.append(label)
            files.append(path.name)
            # Only nominal images are seed textures of the generator; local/global were never seen.
            splits.append(seed_split(path.name) if label == "ok" else "test")
    return LabelledImages(images, labels, {"file": files, "seed_split": splits})


def textile_fewshot_split(data: LabelledImages, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k training images per class, drawn at random; the test set is all the rest, except nominal
    images whose seed texture the default model trained on (kept out of both sides)."""
    rng = np.random.default_rng([seed, k])
    usable = np.array([s == "test" for s in data.extras["seed_split"]])
    train: list[int] = []
    for label in TEXTILE_CLASSES:
        idx = np.flatnonzero((np.array(data.labels) == label) & usable)
        if len(idx) <= k:
            raise DatasetError(f"textile class {label!r} has only {len(idx)} usable images, fewer than k={k} + 1")
        train.extend(rng.choice(idx, size=k, replace=False).tolist())
    chosen = set(train)
    test = [i for i in np.flatnonzero(usable) if i not in chosen]
    return np.array(sorted(train)), np.array(test)
