"""Which example images stood behind a logged inspection's ranking (for the audit detail).

The inspection names its library version; that version's examples of every candidate whose score
the examples carried (alone or with the words) are the ones it was compared against. The example
set hash and the good-part model named in the scoring configuration complete the answer to "what
was this part ranked against".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.errors import LibraryError
from inspector.library.examples import crop_box, example_set_hash
from inspector.library.labels import Example
from inspector.store.audit import InspectionRecord
from inspector.store.decision_log import DecisionLog, image_file, read_evidence_image


@dataclass(frozen=True)
class RankedExample:
    """One example of a candidate label as the ranking used it."""

    rank: int
    label_id: str
    label_name: str
    carried_by: str  # "examples" or "both"
    example: Example
    path: Path


@dataclass(frozen=True)
class RankingEvidence:
    """The examples behind an inspection's ranking, the example set's hash, the good-part model used."""

    examples: tuple[RankedExample, ...]
    example_set_hash: str
    good_model: str


def ranking_evidence(log: DecisionLog, record: InspectionRecord) -> RankingEvidence:
    """The examples of `record`'s library version behind each candidate the examples carried."""
    library = log.library.library(record.library_version) if record.library_version else None
    found: list[RankedExample] = []
    for c in record.candidates:
        if library is None or c.carried_by not in ("examples", "both"):
            continue
        try:
            label = library.label(c.label_id)
        except LibraryError:  # a label the version no longer has cannot have carried it; nothing to show
            continue
        for e in label.examples:
            found.append(
                RankedExample(
                    c.rank, c.label_id, c.label_name, c.carried_by, e, image_file(log.sdb.image_root, e.sha256)
                )
            )
    config = json.loads(log.scoring_config(record.id) or "{}")
    set_hash = example_set_hash(library) if library is not None and found else ""
    return RankingEvidence(tuple(found), set_hash, str(config.get("good_model", "")))


def thumbnail(item: RankedExample, side: int = 96) -> np.ndarray:
    """The example as the ranking embedded it (its box crop), at most `side` px; hash-checked on read."""
    from inspector.frame.imageio import cv2  # through imageio: its pixel limit is set first

    rgb = crop_box(read_evidence_image(item.path), item.example)
    scale = side / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(
            rgb,
            (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
    return np.ascontiguousarray(rgb)
