"""The fresh test wording (2026-12-05) is new: disjoint from the training and validation wording."""

from __future__ import annotations

import re

from models.synth import DEFECT_TYPES, vocab
from models.synth.captions import heldout_descriptions, train_descriptions
from models.synth.fresh_test import (
    FRESH_TEST,
    FRESH_TEST_DATE,
    FRESH_TEST_IMAGE_SEED,
    fresh_test_descriptions,
)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _vocabulary_words(table: dict) -> set[str]:
    out: set[str] = set()
    for words in table.values():
        for sing, plur in words.nouns:
            out |= _words(sing) | _words(plur)
        for text in words.adjectives + words.sentences:
            out |= _words(text)
    return out


def test_fresh_wording_covers_every_type_and_is_new() -> None:
    assert FRESH_TEST_DATE == "2026-12-05" and FRESH_TEST_IMAGE_SEED not in (0, 1)
    assert set(FRESH_TEST) == set(DEFECT_TYPES)
    seen = _vocabulary_words(vocab.TRAIN) | _vocabulary_words(vocab.HELDOUT)
    for defect in DEFECT_TYPES:
        old = set(train_descriptions(defect)) | set(heldout_descriptions(defect))
        for text in fresh_test_descriptions(defect):
            assert text not in old
            assert _words(text) - seen, f"{text!r} has no word the other splits lack"
