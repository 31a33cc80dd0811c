"""Library format 2: example images per label, checked, stored by hash, versioned, exported beside the YAML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from inspector.cli import main
from inspector.errors import LibraryError
from inspector.library.examples import example_set, example_set_hash, import_examples
from inspector.library.labels import dump_library, load_library, seed_library_dir
from inspector.store.decision_log import DecisionLog, store_image
from inspector.store.users import AccessDenied
from tests.inspector.test_imageio import png_bomb


def _png(path: Path, value: int, size: tuple[int, int] = (24, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.full((size[1], size[0], 3), value, np.uint8)
    rgb[0, :, 1] = np.arange(size[0], dtype=np.uint8)  # not flat, so two values never share pixels by accident
    Image.fromarray(rgb).save(path)
    return path


def _library_file(folder: Path, examples: list, fmt: int = 2, descriptions: bool = True) -> Path:
    label = {"id": "dent", "disposition": "rework", "severity": 2, "examples": examples}
    if descriptions:
        label["descriptions"] = ["a shallow dent"]
    doc = {
        "format": fmt,
        "name": "lab",
        "labels": [{"id": "ok", "disposition": "accept", "descriptions": ["a clean part"]}, label],
    }
    path = folder / "lib.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture()
def station(tmp_path: Path):
    log = DecisionLog.open(tmp_path / "station" / "s.db")
    log.users.create_first_admin("admin", "admin-pass-1")
    admin = log.login("admin", "admin-pass-1")
    log.users.add_user("qa1", "qa", "qa1-password", admin, temporary=False)
    log.users.add_user("op1", "operator", "op1-password", admin, temporary=False)
    yield log, log.login("qa1", "qa1-password"), log.login("op1", "op1-password")
    log.close()


def test_format_1_files_round_trip_unchanged(tmp_path: Path) -> None:
    for path in sorted(seed_library_dir().glob("*.yaml")):
        library = load_library(path)
        dump_library(library, tmp_path / path.name)
        assert yaml.safe_load((tmp_path / path.name).read_text())["format"] == 1  # older stations still read it
        assert load_library(tmp_path / path.name) == library


def test_format_2_reads_path_strings_and_mappings_relative_to_the_file(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "a.png", 10)
    _png(tmp_path / "img" / "b.png", 20)
    path = _library_file(tmp_path, ["img/a.png", {"path": "img/b.png", "reason": "left edge", "box": [1, 2, 9, 8]}])
    label = load_library(path).label("dent")
    assert [Path(e.path) for e in label.examples] == [tmp_path / "img" / "a.png", tmp_path / "img" / "b.png"]
    assert (label.examples[1].reason, label.examples[1].box) == ("left edge", (1, 2, 9, 8))


def test_a_label_with_only_examples_is_valid_and_with_neither_is_not(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", 10)
    library = load_library(_library_file(tmp_path, ["a.png"], descriptions=False))
    assert library.label("dent").descriptions == ()
    with pytest.raises(LibraryError, match="no descriptions and no examples"):
        load_library(_library_file(tmp_path, [], descriptions=False))


@pytest.mark.parametrize(
    ("examples", "fmt", "message"),
    [
        (["a.png"], 1, "unknown keys"),  # examples need format 2
        (["/etc/passwd"], 2, "relative to the library file"),
        (["../outside.png"], 2, "without '..'"),
        ([{"path": "a.png", "box": [5, 5, 2, 9]}], 2, "box"),
        ([{"path": "a.png", "box": [0, 0, 1]}], 2, "four whole pixel numbers"),
        ([{"path": "a.png", "colour": "red"}], 2, "optional 'reason', 'box'"),
        (["a.png", "a.png"], 2, "same example twice"),
    ],
)
def test_malformed_example_entries_are_refused(tmp_path: Path, examples: list, fmt: int, message: str) -> None:
    with pytest.raises(LibraryError, match=message):
        load_library(_library_file(tmp_path, examples, fmt))


def _check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["library", "check", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_library_check_decodes_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _png(tmp_path / "a.png", 10)
    code, out, _ = _check(_library_file(tmp_path, ["a.png"]), capsys)
    assert code == 0 and "1 examples" in out


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: None, "cannot read image file"),  # missing
        (lambda p: p.write_text("not an image"), "unrecognised header"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(_png(p, 1).read_bytes()[:60]), "truncated or corrupt"),
        (lambda p: p.write_bytes(png_bomb(zeros_mb=1)), "decompression bomb"),
    ],
)
def test_hostile_example_files_are_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write, message: str
) -> None:
    write(tmp_path / "bad.png")
    code, _, err = _check(_library_file(tmp_path, ["bad.png"]), capsys)
    assert code == 2 and message in err and err.count("\n") == 1 and "'dent'" in err


def test_a_box_outside_the_image_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _png(tmp_path / "a.png", 10, size=(24, 16))
    code, _, err = _check(_library_file(tmp_path, [{"path": "a.png", "box": [0, 0, 30, 10]}]), capsys)
    assert code == 2 and "outside the 24x16 image" in err


def test_import_stores_by_hash_and_export_round_trips(station, tmp_path: Path) -> None:
    log, qa, _ = station
    _png(tmp_path / "a.png", 10)
    _png(tmp_path / "b.png", 20)
    path = _library_file(tmp_path, ["a.png", {"path": "b.png", "reason": "deep one", "box": [0, 0, 8, 8]}])
    v1 = log.library.import_library(load_library(path), qa, "examples from the lab")
    stored = log.library.library(v1)
    shas = [sha for _, sha in example_set(stored)]
    assert len(shas) == 2 and all(log.image_path(sha).is_file() for sha in shas)
    out = tmp_path / "export" / "copy.yaml"
    out.parent.mkdir()
    log.library.export_yaml(out)
    doc = yaml.safe_load(out.read_text())
    assert doc["format"] == 2
    entries = doc["labels"][1]["examples"]
    assert entries[0].startswith("copy.examples/") and entries[1]["reason"] == "deep one"
    assert entries[1]["box"] == [0, 0, 8, 8] and (out.parent / entries[0]).is_file()
    reread = import_examples(load_library(out), log.sdb.image_root)  # the same images: the same hashes
    assert example_set(reread) == example_set(stored) and example_set_hash(reread) == example_set_hash(stored)
    with pytest.raises(LibraryError, match="leaves the library as it is"):  # reasons and boxes came back too
        log.library.import_library(load_library(out), qa, "round trip")
    with pytest.raises(LibraryError, match="exists"):
        log.library.export_yaml(out)
    assert log.verify().ok


def test_examples_are_part_of_the_library_version(station, tmp_path: Path) -> None:
    from inspector.library.labels import Example

    log, qa, op = station
    v1 = log.library.import_library(load_library(seed_library_dir() / "generic_surfaces.yaml"), qa, "seed")
    before = example_set_hash(log.library.library(v1))
    sha = store_image(log.sdb.image_root, np.full((8, 8, 3), 7, np.uint8))
    with pytest.raises(AccessDenied, match="may not edit library"):
        log.library.add_example("scratch", Example(sha256=sha), op, "operator alone")
    v2 = log.library.add_example("scratch", Example(sha256=sha, reason="line 3"), qa, "a real scratch")
    assert v2 == v1 + 1 and example_set_hash(log.library.library(v2)) != before
    assert example_set(log.library.library(v2)) == (("scratch", sha),)
    assert example_set(log.library.library(v1)) == ()  # history unchanged
    v3 = log.library.retire_example("scratch", sha, qa, "wrong label")
    assert example_set(log.library.library(v3)) == ()
    assert [(e.sha256, r) for e, r in {s.id: s for s in log.library.labels(v3)}["scratch"].examples] == [(sha, True)]
    with pytest.raises(LibraryError, match="cannot read image file"):
        log.library.add_example("scratch", Example(sha256="ab" * 32), qa, "an image that is not stored")


def test_reopening_an_old_database_adds_the_examples_table(tmp_path: Path) -> None:
    log = DecisionLog.open(tmp_path / "s.db")
    log.close()
    log = DecisionLog.open(tmp_path / "s.db")
    assert "library_examples" in log.sdb.db.table_names() and log.verify().ok
    log.close()
