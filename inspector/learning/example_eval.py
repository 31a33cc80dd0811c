"""`inspector eval` with example images: the station's own ranking (words + examples) on a labelled folder.

With the library's examples, every image of the folder is ranked. With `--shots N [--seed S]`, N
images per label folder (seeded) become that label's examples, replacing the library's, and the
rest are ranked: what the station would do after N confirmed parts per label, with no training.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import DataError
from inspector.frame.imageio import read_image_file
from inspector.frame.ranking import build_index, label_scores
from inspector.library.examples import example_compiler, example_set_hash
from inspector.library.labels import Example, Library

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def labelled_files(root: Path, library: Library) -> list[tuple[Path, str]]:
    """(image file, label id) for every image in the folder's label sub-folders, in a stable order."""
    if not root.is_dir():
        raise DataError(f"--data {root}: expected a folder with one sub-folder per label id")
    out = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in library.label_ids:
            raise DataError(f"folder {sub} is not a label of the library; known: {', '.join(library.label_ids)}")
        out += [
            (p, sub.name)
            for p in sorted(sub.rglob("*"))
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        ]
    if not out:
        raise DataError(f"no images in the label sub-folders of {root}")
    return out


def with_shots(
    library: Library, files: list[tuple[Path, str]], shots: int, seed: int
) -> tuple[Library, list[tuple[Path, str]]]:
    """N seeded images per label folder as the labels' only examples; the rest to rank."""
    if shots < 1:
        raise DataError(f"--shots {shots}: give at least 1 image per label")
    rng = np.random.default_rng(seed)
    chosen: set[Path] = set()
    labels = []
    for label in library.labels:
        mine = [p for p, lab in files if lab == label.id]
        if mine and len(mine) <= shots:
            raise DataError(
                f"label folder {label.id!r} has {len(mine)} images: --shots {shots} needs more than {shots},"
                " so that some are left to rank"
            )
        picked = [mine[i] for i in sorted(rng.choice(len(mine), shots, replace=False))] if mine else []
        chosen.update(picked)
        labels.append(replace(label, examples=tuple(Example(path=str(p)) for p in picked)))
    return replace(library, labels=tuple(labels)), [(p, lab) for p, lab in files if p not in chosen]


def evaluate_with_examples(
    scorer: Any, library: Library, data: Path, shots: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """Rank the folder's images with words and examples, exactly as the station ranks a part."""
    from models import metrics

    files = labelled_files(data, library)
    if shots is not None:
        library, files = with_shots(library, files, shots, seed)
    index = build_index(
        library, scorer.embed_texts, scorer.model_id, 0, example_compiler(library, scorer.embed_images, scorer.model_id)
    )
    images = [read_image_file(p) for p, _ in files]
    scores = label_scores(scorer.embed_images(images), index)[0]
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    names = list(library.label_ids)
    y = np.array([names.index(lab) for _, lab in files])
    recall = metrics.per_label_recall(scores, y)
    ok = [names.index(i) for i in library.ok_label_ids]
    is_defect = ~np.isin(y, ok)
    auroc = None
    if ok and 0 < is_defect.sum() < len(y):
        probs = metrics.softmax(np.where(np.isfinite(scores), scores, -1e9), scorer.logit_scale)
        auroc = metrics.auroc(1.0 - probs[:, ok].max(axis=1), is_defect)
    return {
        "n": int(len(y)),
        "top1": metrics.topk_accuracy(scores, y, 1),
        "top3": metrics.topk_accuracy(scores, y, 3),
        "mrr": metrics.mean_reciprocal_rank(scores, y),
        "per_label_recall": {n: (None if np.isnan(r) else float(r)) for n, r in zip(names, recall)},
        "confusion": {
            "labels": names,
            "matrix": metrics.confusion_matrix(y, metrics.predictions(scores), len(names)).tolist(),
        },
        "auroc_defect_vs_ok": auroc,
        "model_id": scorer.model_id,
        "examples": {lab.id: len(lab.examples) for lab in library.labels},
        "example_set": example_set_hash(library) if shots is None else None,
        "shots": shots,
        "seed": seed if shots is not None else None,
    }
