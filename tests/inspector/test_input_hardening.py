"""Issue 14, inputs and outputs (findings 16, 18-22): each test performs the attack and checks it now fails."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.capture.factory import build_source
from inspector.capture.folder import FolderSource
from inspector.capture.opencv import OpenCVSource, redact_url
from inspector.cli import main as cli_main
from inspector.errors import CameraError, LibraryError
from inspector.library.labels import library_from_dict, load_library, seed_library_dir
from inspector.store.decision_log import DecisionLog
from inspector.store.export import neutralise
from tests.inspector.test_decision_log import LIBRARY

SEED = seed_library_dir() / "generic_surfaces.yaml"


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_watch_with_a_wrong_password_stores_no_library(tmp_path: Path, monkeypatch, capsys) -> None:
    """Finding 16: on a database without a library, a failed sign-in must not seed --library as version 1."""
    with DecisionLog.open(tmp_path / "s.db") as log:
        log.users.create_first_admin("admin", "admin-secret-1")
        log.users.add_user("op", "operator", "operator-secret", log.login("admin", "admin-secret-1"), temporary=False)
    monkeypatch.setenv("INSPECTOR_PASSWORD", "wrong-password")
    code = cli_main(
        [
            "watch",
            str(tmp_path / "in"),
            "--db",
            str(tmp_path / "s.db"),
            "--user",
            "op",
            "--library",
            str(SEED),
            "--model",
            "inspector-tiny",
        ]
    )
    assert code == 2 and "wrong" in capsys.readouterr().err
    with DecisionLog.open(tmp_path / "s.db") as log:
        assert log.sdb.conn.execute("SELECT COUNT(*) FROM library_versions").fetchone()[0] == 0


LAUGHS = """format: 1
name: laughs
labels: [{id: ok, disposition: accept, descriptions: [a clean surface]}]
description:
  - &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  - &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  - &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
"""


def test_yaml_aliases_and_non_text_values_are_refused_before_conversion(tmp_path: Path) -> None:
    """Finding 18: nested aliases (billion laughs) under an allowed key; values str()-ed before type checks."""
    (tmp_path / "laughs.yaml").write_text(LAUGHS, encoding="utf-8")
    with pytest.raises(LibraryError, match="aliases"):
        load_library(tmp_path / "laughs.yaml")
    (tmp_path / "big.yaml").write_text("format: 1\nname: big\n# " + "x" * (2 * 1024 * 1024) + "\n", encoding="utf-8")
    with pytest.raises(LibraryError, match="KiB"):
        load_library(tmp_path / "big.yaml")
    base = {"format": 1, "name": "t", "labels": [{"id": "ok", "disposition": "accept", "descriptions": ["a surface"]}]}
    with pytest.raises(LibraryError, match="'description' must be a string"):
        library_from_dict({**base, "description": [["lol"] * 9] * 9})
    for key, value in (("name", ["x"] * 9), ("disposition", {"a": 1}), ("id", 12)):
        label = {**base["labels"][0], key: value}
        with pytest.raises(LibraryError, match=f"'{key}' must be a string"):
            library_from_dict({**base, "labels": [label]})
    with pytest.raises(LibraryError, match="scope"):
        library_from_dict({**base, "labels": [{**base["labels"][0], "scope": {"product": ["a"] * 9}}]})


def test_camera_credentials_in_a_source_url_are_never_stored_or_shown() -> None:
    """Finding 19: `watch rtsp://user:password@...` kept the password in events and exports."""
    url = "rtsp://admin:hunter2-secret@127.0.0.1:9/stream?token=abc123&channel=1"
    assert redact_url(url) == "rtsp://admin:***@127.0.0.1:9/stream?token=***&channel=1"
    assert redact_url("http://onlytoken@cam.local/x") == "http://***@cam.local/x"
    assert redact_url("/data/parts") == "/data/parts"
    source = build_source(url)
    assert "hunter2" not in source.source_id and "abc123" not in source.source_id
    camera = OpenCVSource(url, open_timeout_s=0.5, read_timeout_s=0.5)
    assert "hunter2" not in camera.source_id
    with pytest.raises(CameraError) as info:
        camera.open()
    assert "hunter2" not in str(info.value) and "abc123" not in str(info.value)


@pytest.mark.parametrize(
    "cell", [" =1+1", "\t=1+1", '\uff1dHYPERLINK("x")', "\u200b=1+1", "\ufeff@SUM(A1)", "\u00a0+1", "\uff0b1"]
)
def test_formula_cells_hidden_behind_blanks_or_full_width_signs_are_neutralised(cell: str) -> None:
    """Finding 20: leading whitespace, full-width '＝' and zero-width characters hid formulas from the check."""
    assert neutralise(cell) == "'" + cell


def test_harmless_cells_are_left_alone() -> None:
    assert [neutralise(v) for v in ("scratch", "a = b", 3, -2.5, None)] == ["scratch", "a = b", 3, -2.5, None]


def test_library_export_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    """Finding 20: `library export` to a dangling link wrote through it (to wherever it pointed)."""
    with DecisionLog.open(tmp_path / "s.db") as log:
        log.users.create_first_admin("admin", "admin-secret-1")
        log.users.add_user("qa", "qa", "qa-engineer-pw", log.login("admin", "admin-secret-1"), temporary=False)
        log.library.import_library(LIBRARY, log.login("qa", "qa-engineer-pw"), "seed")
        link = tmp_path / "lib.yaml"
        link.symlink_to(tmp_path / "elsewhere" / "victim.yaml")
        (tmp_path / "elsewhere").mkdir()
        with pytest.raises(LibraryError, match="exists"):
            log.library.export_yaml(link)
        assert not (tmp_path / "elsewhere" / "victim.yaml").exists()


def test_rank_heatmap_never_overwrites_a_file(tmp_path: Path, capsys) -> None:
    """Finding 20: `rank --heatmap FILE` replaced an existing file."""
    image = _image(tmp_path / "part.png")
    existing = tmp_path / "report.png"
    existing.write_bytes(b"keep me")
    code = cli_main(["rank", str(image), "--model", "inspector-tiny", "--heatmap", str(existing), "--json"])
    assert code == 2 and existing.read_bytes() == b"keep me" and "exists" in capsys.readouterr().err
    fresh = tmp_path / "fresh.png"
    assert cli_main(["rank", str(image), "--model", "inspector-tiny", "--heatmap", str(fresh), "--json"]) == 0
    assert fresh.stat().st_size > 0


def test_a_huge_file_in_a_watched_folder_is_refused_without_reading_it(tmp_path: Path) -> None:
    """Finding 21: a 1.5 GB file was read whole before the 50 MB check (here a sparse 200 MB file)."""
    watched = tmp_path / "in"
    watched.mkdir()
    with open(watched / "huge.png", "wb") as f:
        f.truncate(200 * 1024 * 1024)
    _image(watched / "small.png")
    events: list[tuple[str, dict]] = []
    source = FolderSource(watched, settle_s=0.0, poll_s=0.01, on_event=lambda k, d: events.append((k, d)))
    source.open()
    tracemalloc.start()
    try:
        frames = []
        while (frame := source.read(0.3)) is not None:
            frames.append(frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        source.close()
    assert [f.origin for f in frames] == ["small.png"]
    rejected = [d for k, d in events if k == "file_rejected"]
    assert rejected and rejected[0]["file"] == "huge.png" and "limit" in rejected[0]["error"]
    assert peak < 20 * 1024 * 1024  # the 200 MB were never read


def test_a_sidecar_with_an_unknown_interpolation_is_a_one_line_error(tiny_bundle, tmp_path: Path, capsys) -> None:
    """Finding 22: an unknown interpolation value ended in open_clip's AssertionError traceback."""
    from models.checkpoint import save_checkpoint

    save_checkpoint(tiny_bundle, tmp_path / "tiny")
    sidecar = tmp_path / "tiny.json"
    data = json.loads(sidecar.read_text())
    data["preprocess_cfg"]["interpolation"] = "lanczos"
    sidecar.write_text(json.dumps(data))
    image = _image(tmp_path / "part.png")
    assert cli_main(["rank", str(image), "--model", str(tmp_path / "tiny.safetensors"), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "interpolation 'lanczos' is not one of" in err


def test_private_umask_from_the_cli(tmp_path: Path) -> None:
    """Finding 10: the CLI's own outputs (here a heatmap) are private too."""
    saved = os.umask(0o022)
    try:
        image = _image(tmp_path / "part.png")
        assert cli_main(["rank", str(image), "--model", "inspector-tiny", "--heatmap", str(tmp_path / "h.png")]) == 0
        assert (tmp_path / "h.png").stat().st_mode & 0o077 == 0
    finally:
        os.umask(saved)
