"""FRESH TEST wording and image seed for the typed defects. Written 2026-12-05; never tuned on.

Rule: the test split is touched once, for a final table. Every choice (recipe, blend weight,
templates, thresholds) is made on the validation split, which is the former held-out wording
(vocab.HELDOUT, captions.heldout_descriptions) and the former test image seed. Do not edit these
descriptions after 2026-12-05: a changed test set is a new test set and needs a new date.
Each description carries at least one word that neither the training nor the held-out vocabulary
uses (tests/models/test_fresh_test.py checks this).
"""

from __future__ import annotations

FRESH_TEST_DATE = "2026-12-05"
# Generated test images: models.synth.generate(..., split="test", seed=FRESH_TEST_IMAGE_SEED).
# The former test seed (1 in the default recipe) becomes the validation seed.
FRESH_TEST_IMAGE_SEED = 20261205

FRESH_TEST: dict[str, tuple[str, ...]] = {
    "ok": (
        "a flawless component, ready to ship",
        "no imperfections anywhere on this piece",
        "spotless workpiece that meets spec",
    ),
    "scratch": (
        "a hairline abrasion on the face",
        "a thin gouge dragged along the finish",
        "scuffed by a burr during transport",
    ),
    "crack": (
        "a fracture line propagating outward",
        "the piece is cleft by a narrow fault",
        "a crazed network of fractures",
    ),
    "stain": (
        "a blotch of residue discolouring the face",
        "oily smudge contaminating the finish",
        "tarnished, mottled discolouration",
    ),
    "pitting": (
        "a cluster of pockmarks eaten into the face",
        "corrosion craters dotting the piece",
        "pockmarked with minute cavities",
    ),
    "burn": (
        "a scorched blemish from excess heat",
        "blackened where the piece overheated",
        "a scorch mark with browned edges",
    ),
    "dent": (
        "a dimple where something struck the piece",
        "a shallow depression from a knock",
        "the face is dinged inward",
    ),
    "hole": (
        "a puncture straight through the piece",
        "an orifice where material was knocked away",
        "an aperture that should not be there",
    ),
}


def fresh_test_descriptions(defect: str) -> list[str]:
    """The fresh test descriptions of one defect type (KeyError for an unknown type)."""
    return list(FRESH_TEST[defect])
