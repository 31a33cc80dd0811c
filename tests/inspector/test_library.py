"""Library YAML format: seed files load, round-trip, and bad files give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.errors import LibraryError
from inspector.library.labels import dump_library, library_from_dict, load_library, seed_library_dir

SEEDS = sorted(seed_library_dir().glob("*.yaml"))


def _doc(**label_overrides):
    label = {"id": "scratch", "disposition": "rework", "severity": 2, "descriptions": ["a thin scratch"]}
    label.update(label_overrides)
    return {
        "format": 1,
        "name": "t",
        "labels": [{"id": "ok", "disposition": "accept", "descriptions": ["fine"]}, label],
    }


def test_there_are_seed_libraries() -> None:
    names = {p.stem for p in SEEDS}
    assert {"generic_surfaces", "textiles", "solar_cells"} <= names


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_seed_library_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    library = load_library(path)
    assert library.ok_label_ids, "every seed library needs an ok label"
    assert all(len(label.descriptions) >= 3 for label in library.labels)
    out = tmp_path / "copy.yaml"
    dump_library(library, out)
    assert load_library(out) == library


def test_generic_library_covers_generator_classes() -> None:
    ids = set(load_library(seed_library_dir() / "generic_surfaces.yaml").label_ids)
    assert {"ok", "scratch", "crack", "stain", "pitting", "burn", "dent", "hole"} <= ids


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"disposition": "bin"}, "disposition"),
        ({"severity": 9}, "severity"),
        ({"severity": "high"}, "severity"),
        ({"threshold": 1.5}, "threshold"),
        ({"id": "Bad Id"}, "label id"),
        ({"descriptions": []}, "no descriptions"),
        ({"descriptions": ["same", "Same"]}, "repeats"),
        ({"descriptions": ["x" * 500]}, "characters"),
        ({"colour": "red"}, "unknown keys"),
        ({"scope": {"line": "3"}}, "scope"),
    ],
)
def test_bad_label_is_refused_with_a_clear_message(overrides, message) -> None:
    with pytest.raises(LibraryError, match=message):
        library_from_dict(_doc(**overrides))


def test_duplicate_label_ids_refused() -> None:
    doc = _doc(id="ok")
    with pytest.raises(LibraryError, match="repeats label ids: ok"):
        library_from_dict(doc)


def test_unknown_format_refused() -> None:
    doc = _doc()
    doc["format"] = 3
    with pytest.raises(LibraryError, match="format 3"):
        library_from_dict(doc)


def test_yaml_objects_are_not_constructed(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(LibraryError, match="not valid YAML"):
        load_library(path)


def test_missing_file_is_a_library_error(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="does not exist"):
        load_library(tmp_path / "nope.yaml")


def test_lookup_names_known_labels() -> None:
    library = library_from_dict(_doc())
    assert library.label("scratch").disposition == "rework"
    assert library.label_texts()["ok"] == ["fine"]
    with pytest.raises(LibraryError, match="known: ok, scratch"):
        library.label("dent")
