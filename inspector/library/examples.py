"""Example images of labels: checked with the safe decoder, stored content-addressed, exported beside YAML.

A library file names examples by path; the station keeps them as PNGs in its image store under
their SHA-256 (the same store as inspection images, so a logged part can become an example by its
hash). The decoded pixels are re-encoded, never the file's own bytes: whatever a hostile file held
besides pixels does not reach the store. A library version lists its examples by hash, so every
inspection names the exact example set it was ranked against (example_set_hash).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import ImageDecodeError, InspectorError, LibraryError
from inspector.frame.example_cache import ExampleCache, build_cache
from inspector.frame.example_probe import plant_prior
from inspector.frame.imageio import read_image_file
from inspector.library.labels import Example, Label, Library, dump_library
from inspector.store.images import image_file, store_image


def read_example(example: Example, label_id: str, image_root: Path | None = None) -> np.ndarray:
    """The example's RGB pixels (the whole image; crop with crop_box); one-line LibraryError when bad."""
    where = f"label {label_id!r}: example {example.key[:64]!r}"
    try:
        if example.sha256:
            if image_root is None:
                raise LibraryError(f"{where} is a stored image, but no station image store was given")
            rgb = read_image_file(image_file(image_root, example.sha256))
        else:
            rgb = read_image_file(example.path)
    except ImageDecodeError as exc:
        raise LibraryError(f"{where}: {exc}") from None
    except InspectorError as exc:  # e.g. a hash that is not 64 hex digits
        raise LibraryError(f"{where}: {exc}") from None
    if example.box is not None:
        x0, y0, x1, y1 = example.box
        height, width = rgb.shape[:2]
        if x1 > width or y1 > height:
            raise LibraryError(f"{where}: box {list(example.box)} reaches outside the {width}x{height} image")
    return rgb


def crop_box(rgb: np.ndarray, example: Example) -> np.ndarray:
    """The part of the image the example points at (its box), else the whole image."""
    if example.box is None:
        return rgb
    x0, y0, x1, y1 = example.box
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def check_examples(library: Library) -> int:
    """Decode every file example of a library (LibraryError on the first bad one); returns the count."""
    count = 0
    for label in library.labels:
        for example in label.examples:
            read_example(example, label.id)
            count += 1
    return count


def import_examples(library: Library, image_root: Path) -> Library:
    """Store each file example in the station (content-addressed) and name it by its hash."""
    labels = []
    for label in library.labels:
        stored = []
        for example in label.examples:
            if example.sha256:
                stored.append(example)
                continue
            sha = store_image(image_root, read_example(example, label.id))
            stored.append(Example(sha256=sha, reason=example.reason, box=example.box))
        labels.append(replace(label, examples=_unique(stored)))
    return replace(library, labels=tuple(labels))


def _unique(examples: list[Example]) -> tuple[Example, ...]:
    # Two files with the same pixels are one example; say so rather than fail on the duplicate hash.
    seen: dict[str, Example] = {}
    for example in examples:
        seen.setdefault(example.sha256, example)
    return tuple(seen.values())


def export_library(library: Library, path: Path, image_root: Path) -> Path:
    """Write library YAML at `path` and its stored examples into `<stem>.examples/` beside it."""
    if path.exists():
        raise LibraryError(f"{path} exists; choose a new file name (exports never overwrite)")
    folder = path.with_name(path.stem + ".examples")
    has_examples = any(label.examples for label in library.labels)
    if has_examples and folder.exists():
        raise LibraryError(f"{folder} exists; choose a new file name (exports never overwrite)")
    labels: list[Label] = []
    try:
        for label in library.labels:
            written = []
            for example in label.examples:
                folder.mkdir(parents=True, exist_ok=True)
                name = f"{label.id}-{example.sha256[:16]}.png"
                shutil.copyfile(image_file(image_root, example.sha256), folder / name)
                written.append(Example(path=f"{folder.name}/{name}", reason=example.reason, box=example.box))
            labels.append(replace(label, examples=tuple(written)))
        dump_library(replace(library, labels=tuple(labels)), path)
    except OSError as exc:
        raise LibraryError(f"cannot export the library to {path}: {exc.strerror or exc}") from None
    return path


def example_set(library: Library) -> tuple[tuple[str, str], ...]:
    """(label id, example SHA-256) of every stored example, in library order."""
    return tuple((label.id, example.sha256) for label in library.labels for example in label.examples)


def example_set_hash(library: Library) -> str:
    """One hash naming the example set (boxes included); the hash of nothing when there are none."""
    h = hashlib.sha256(b"rankclip-inspector/examples/v1\x00")
    for label in library.labels:
        for example in label.examples:
            h.update(f"{label.id}\x00{example.sha256}\x00{list(example.box or ())}\n".encode())
    return h.hexdigest()


def _display_name(example: Example) -> str:
    return example.reason or (example.sha256[:12] if example.sha256 else Path(example.path).name)


def example_compiler(
    library: Library,
    embed_images: Callable[[list[np.ndarray]], np.ndarray],
    model_id: str,
    log: Any = None,
    decided: Callable[[], Mapping[str, int]] | None = None,
) -> Callable[[np.ndarray, np.ndarray], ExampleCache | None]:
    """The `examples` argument of ranking.build_index: embeds the library's examples (their box crops).

    Embeddings are cached in the station database's embedding cache under the model id + '#examples'
    (keyed by image hash and box, so no description text can collide), so a recompile after one
    added example embeds only that one image. `decided` returns the plant's label mix, {label id:
    decided parts} (the station passes the decision log's, store.corrections.decided_label_counts);
    it is read at each compile of a library with examples, for the probe's prior shift.
    """

    def compile_(embeddings: np.ndarray, counts: np.ndarray) -> ExampleCache | None:
        items = [(label.id, example) for label in library.labels for example in label.examples]
        if not items:
            return None
        root = log.sdb.image_root if log is not None else None
        keys = [f"{example.key}:{list(example.box or ())}" for _, example in items]
        space = model_id + "#examples"
        cached = log.library.get_cached_embeddings(space, keys) if log is not None and root else {}
        missing = [i for i, key in enumerate(keys) if key not in cached]
        if missing:
            crops = [crop_box(read_example(items[i][1], items[i][0], root), items[i][1]) for i in missing]
            fresh = np.asarray(embed_images(crops), dtype=np.float32)
            if log is not None and root:
                log.library.put_embeddings(space, [keys[i] for i in missing], fresh)
            cached.update({keys[i]: fresh[j] for j, i in enumerate(missing)})
        vectors = {key: cached[key] for key in keys}
        grouped = [
            (label.id, [(_display_name(e), f"{e.key}:{list(e.box or ())}") for e in label.examples])
            for label in library.labels
        ]
        # the plant's label mix from the decision log (all decided parts, not only the examples),
        # read once per compile: the probe's prior shift; None without a log or with few decisions
        mix = decided() if decided is not None else {}
        prior = plant_prior([mix.get(label.id, 0) for label in library.labels]) if mix else None
        return build_cache(
            grouped,
            lambda names: np.stack([vectors[k] for k in names]),
            (embeddings, counts),
            example_set_hash(library),
            prior=prior,
        )

    return compile_
