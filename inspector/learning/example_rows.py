"""Library examples as fine-tuning rows: QA's example images teach the model too, not only the ranking.

Each active example of a label that has descriptions becomes a TrainingPair (its stored image, the
label's descriptions, its box as the crop), in the TRAINING split only: the held-out split measures
the candidate on the line's own confirmations, and the examples are few, chosen images. An example
whose image is already a confirmed part is left to that confirmation (one row per image, as the
pairs' rules say), and a label known only by examples has no words to train the text tower with.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from inspector.learning.pairs import TrainingPair, TrainingSet
from inspector.library.labels import Library
from inspector.store.images import image_file

SOURCE = "library"


def example_pairs(library: Library, version: int, image_root: Path) -> tuple[list[TrainingPair], Counter[str]]:
    """The library's examples as pairs, and why any were left out (no descriptions, same image twice)."""
    pairs: list[TrainingPair] = []
    skipped: Counter[str] = Counter()
    seen: set[str] = set()
    for label in library.labels:
        for example in label.examples:
            if not example.sha256:
                skipped["example_not_stored"] += 1
            elif not label.descriptions:
                skipped["example_without_descriptions"] += 1
            elif example.sha256 in seen:
                skipped["example_duplicate"] += 1
            else:
                seen.add(example.sha256)
                path = image_file(image_root, example.sha256)
                pairs.append(
                    TrainingPair(
                        example.sha256,
                        str(path),
                        label.id,
                        tuple(label.descriptions),
                        source=SOURCE,
                        library_version=version,
                        box=example.box,
                    )
                )
    return pairs, skipped


def with_examples(ts: TrainingSet, library: Library, version: int, image_root: Path) -> TrainingSet:
    """The training set plus the library's examples as training rows (see the module docstring)."""
    pairs, skipped = example_pairs(library, version, image_root)
    confirmed = {p.image_sha256 for p in ts.train + ts.heldout}
    extra = [p for p in pairs if p.image_sha256 not in confirmed]
    skipped["example_is_a_confirmed_part"] += len(pairs) - len(extra)
    excluded = dict(ts.excluded)
    for key, n in skipped.items():
        if n:
            excluded[key] = excluded.get(key, 0) + n
    return replace(ts, train=ts.train + tuple(extra), excluded=excluded)
