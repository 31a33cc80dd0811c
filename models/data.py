"""Caption datasets yielding (PIL RGB image, caption) pairs.

Model-agnostic on purpose: the trainer applies the bundle's train_preprocess and tokenizer in its
collate, so one dataset serves every architecture. Each dataset also offers `load_image(i)` and
`caption(i)` separately, so a trainer that has cached the image features can skip decoding.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from models.errors import ModelError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class DatasetError(ModelError, ValueError):
    """A dataset file, folder or row is missing or malformed."""


class ImageDecodeError(ModelError, ValueError):
    """An image file could not be read or decoded."""


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode an image file to RGB, raising ImageDecodeError (naming the file) on any failure.

    Image.MAX_IMAGE_PIXELS is respected: an over-sized image is refused as a decompression bomb.
    """
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x MAX_IMAGE_PIXELS; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # PIL decodes lazily; force it here so truncation surfaces now
                return img.convert("RGB")
    except FileNotFoundError as e:
        raise ImageDecodeError(f"image file not found: {path}") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageDecodeError(
            f"image {path} is larger than Image.MAX_IMAGE_PIXELS ({Image.MAX_IMAGE_PIXELS}); refusing to decode it: {e}"
        ) from e
    except (OSError, SyntaxError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
        raise ImageDecodeError(f"cannot decode image {path}: {e}") from e


class CsvCaptionDataset:
    """Image-caption pairs from a CSV/TSV file (the open_clip / RankCLIP reference format).

    Relative image paths resolve against `root`, or the CSV's folder when root is None.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        image_col: str = "filepath",
        caption_col: str = "title",
        sep: str | None = None,
        root: str | os.PathLike | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"caption file not found: {self.path}")
        if sep is None:
            sep = "\t" if self.path.suffix.lower() == ".tsv" else ","
        base = Path(root) if root is not None else self.path.parent
        self.paths: list[Path] = []
        self.captions: list[str] = []
        with open(self.path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter=sep)
            columns = reader.fieldnames or []
            missing = [c for c in (image_col, caption_col) if c not in columns]
            if missing:
                raise DatasetError(
                    f"{self.path}: missing column(s) {missing}; found {columns} "
                    f"(separator {sep!r}; pass image_col=/caption_col=/sep= to match the file)"
                )
            for row in reader:
                where = f"{self.path}, line {reader.line_num}"
                rel, caption = row.get(image_col), row.get(caption_col)
                if not rel or caption is None or not caption.strip():
                    raise DatasetError(f"{where}: empty image path or caption")
                image_path = Path(rel) if os.path.isabs(rel) else base / rel
                if not image_path.is_file():
                    raise DatasetError(f"{where}: image file not found: {image_path}")
                self.paths.append(image_path)
                self.captions.append(caption)
        if not self.paths:
            raise DatasetError(f"{self.path}: no rows")

    def __len__(self) -> int:
        return len(self.paths)

    def caption(self, index: int) -> str:
        """Caption of sample `index` (no image decode)."""
        return self.captions[index]

    def load_image(self, index: int) -> Image.Image:
        """Decoded RGB image of sample `index`."""
        return load_rgb(self.paths[index])

    def __getitem__(self, index: int) -> tuple[Image.Image, str]:
        return self.load_image(index), self.caption(index)


class LabelledFolderDataset:
    """Images in one sub-folder per label id; each sample's caption is one of its label's descriptions.

    The description is drawn at random but deterministically from (seed, epoch, index), so every
    epoch pairs an image with a possibly different paraphrase (call `set_epoch`, as the trainer does).
    """

    def __init__(self, root: str | os.PathLike, label_texts: Mapping[str, Sequence[str]], seed: int = 0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"image folder not found: {self.root}")
        self.label_texts = {str(k): [str(t) for t in v] for k, v in label_texts.items()}
        empty = sorted(k for k, v in self.label_texts.items() if not v)
        if empty:
            raise DatasetError(f"labels without any description: {empty}")
        self.seed, self.epoch = int(seed), 0
        self.paths: list[Path] = []
        self.labels: list[str] = []
        known = sorted(self.label_texts)
        for sub in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if sub.name not in self.label_texts:
                raise DatasetError(
                    f"folder {sub} is not a known label; known labels: {known} "
                    f"(add its descriptions to label_texts or move the folder out of {self.root})"
                )
            files = sorted(
                p
                for p in sub.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
            )
            self.paths.extend(files)
            self.labels.extend([sub.name] * len(files))
        if not self.paths:
            raise DatasetError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) in label sub-folders of {self.root}; "
                f"expected one sub-folder per label among {known}"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose caption draw `caption`/`__getitem__` return."""
        self.epoch = int(epoch)

    def caption(self, index: int) -> str:
        """This epoch's description for sample `index` (no image decode)."""
        index = range(len(self.paths))[index]  # IndexError out of range; negative indices normalised
        texts = self.label_texts[self.labels[index]]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return texts[int(rng.integers(len(texts)))]

    def load_image(self, index: int) -> Image.Image:
        """Decoded RGB image of sample `index`."""
        return load_rgb(self.paths[index])

    def __getitem__(self, index: int) -> tuple[Image.Image, str]:
        return self.load_image(index), self.caption(index)
