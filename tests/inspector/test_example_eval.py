"""`inspector eval` with examples: the library's, or --shots N seeded images per label folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakes import HashScorer
from inspector.errors import DataError
from inspector.learning.example_eval import evaluate_with_examples
from inspector.library.labels import library_from_dict

LIBRARY = library_from_dict(
    {
        "format": 2,
        "name": "t",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["a clean part"]},
            {"id": "dent", "disposition": "rework", "severity": 2, "descriptions": ["a dent"]},
        ],
    }
)


def _folder(tmp_path: Path) -> Path:
    for label, red in (("ok", 10), ("dent", 200)):
        (tmp_path / label).mkdir(parents=True)
        for i in range(6):
            rgb = np.zeros((8, 8, 3), np.uint8)
            rgb[..., 0], rgb[0, 0, 1] = red, i
            Image.fromarray(rgb).save(tmp_path / label / f"{i}.png")
    return tmp_path


def _scorer() -> HashScorer:
    # Each folder's images look alike and like none of the words: only examples can tell them apart.
    return HashScorer(dim=256, by_red={10: "clean look", 200: "dent look"})


def test_shots_take_n_images_per_label_as_examples_and_rank_the_rest(tmp_path: Path) -> None:
    data = _folder(tmp_path)
    words_only = evaluate_with_examples(_scorer(), LIBRARY, data, shots=None)
    shots = evaluate_with_examples(_scorer(), LIBRARY, data, shots=2, seed=3)
    assert words_only["n"] == 12 and shots["n"] == 8
    assert shots["examples"] == {"ok": 2, "dent": 2} and shots["top1"] == 1.0 > words_only["top1"]
    assert evaluate_with_examples(_scorer(), LIBRARY, data, shots=2, seed=3)["top1"] == shots["top1"]


def test_too_many_shots_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="so that some are left to rank"):
        evaluate_with_examples(_scorer(), LIBRARY, _folder(tmp_path), shots=6)
