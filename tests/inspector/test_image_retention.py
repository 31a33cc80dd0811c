"""Issue 14, retention: old evidence images move to an archive folder (admin, reason, chained event),
the chain still verifies, and `log verify --images` tells present / archived / missing apart."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.errors import InspectorError
from inspector.store.access import AccessDenied
from inspector.store.decision_log import DecisionLog
from inspector.store.images import image_file
from inspector.store.retention import archive_images, archived_hashes
from tests.inspector.test_chain_tamper import LIBRARY, _result


@pytest.fixture()
def station(tmp_path: Path):
    """Two inspections recorded before `cutoff`, one after."""
    db = tmp_path / "station" / "s.db"
    with DecisionLog.open(db) as log:
        log.users.create_first_admin("admin", "admin-pass-1")
        admin = log.login("admin", "admin-pass-1")
        log.users.add_user("qa1", "qa", "qa-pass-123", admin, temporary=False)
        qa = log.login("qa1", "qa-pass-123")
        version = log.library.import_library(LIBRARY, qa, "seed")
        old = [log.record_inspection(_result(version, i), qa) for i in range(2)]
        time.sleep(0.01)
        cutoff = datetime.now(UTC).isoformat()
        time.sleep(0.01)
        new = log.record_inspection(_result(version, 2), qa)
        paths = [log.image_path(log.inspection(i)["image_sha256"]) for i in [*old, new]]
    return db, cutoff, paths


def _cli(args: list[str], password: str, monkeypatch) -> int:
    monkeypatch.setenv("INSPECTOR_PASSWORD", password)
    return main(args)


def test_archive_moves_old_images_and_verify_tells_archived_from_missing(station, tmp_path, monkeypatch, capsys):
    db, cutoff, paths = station
    archive = tmp_path / "archive"
    args = ["log", "archive", "--db", str(db), "--user", "admin", "--before", cutoff, "--to", str(archive)]
    assert _cli([*args, "--reason", "retention: 90 days"], "admin-pass-1", monkeypatch) == 0
    assert "archived 2 images" in capsys.readouterr().out
    assert not paths[0].exists() and not paths[1].exists() and paths[2].exists()
    for p in paths[:2]:  # content-addressed in the archive, same bytes
        assert image_file(archive / "images" / "sha256", p.stem).is_file()
    with DecisionLog.open(db, create=False) as log:
        assert log.verify().ok  # the inspections keep their hashes: the chain is untouched
        assert set(archived_hashes(log.sdb.conn)) == {paths[0].stem, paths[1].stem}
        event = log.sdb.conn.execute("SELECT user, detail FROM events WHERE kind = 'images_archived'").fetchone()
        assert event[0] == "admin" and "retention: 90 days" in event[1]
    verify = ["log", "verify", "--db", str(db), "--images"]
    assert main(verify) == 0
    assert "1 present, 2 archived, 0 missing" in capsys.readouterr().out
    assert main([*verify, "--archive", str(archive)]) == 0
    assert "2 archived (2 found in the archive, hash OK)" in capsys.readouterr().out
    # An archived copy lost from the archive is reported when the archive is checked.
    image_file(archive / "images" / "sha256", paths[0].stem).unlink()
    assert main([*verify, "--archive", str(archive)]) == 1
    assert "archived but not in the archive folder" in capsys.readouterr().out
    # An image removed from the station WITHOUT an archive event is missing, not archived: exit 1.
    paths[2].unlink()
    assert main(verify) == 1
    assert "1 missing" in capsys.readouterr().out


def test_only_an_admin_with_a_reason_archives_and_never_into_the_store(station, tmp_path) -> None:
    db, cutoff, paths = station
    with DecisionLog.open(db, create=False) as log:
        qa, admin = log.login("qa1", "qa-pass-123"), log.login("admin", "admin-pass-1")
        with pytest.raises(AccessDenied):
            archive_images(log, cutoff, tmp_path / "a", qa, "disk full")
        with pytest.raises(InspectorError, match="reason"):
            archive_images(log, cutoff, tmp_path / "a", admin, "  ")
        for inside in (db.parent, db.parent / "images" / "x"):  # the copy would be the original
            with pytest.raises(InspectorError, match="inside the station's image store"):
                archive_images(log, cutoff, inside, admin, "disk full")
        with pytest.raises(InspectorError, match="future"):
            archive_images(log, "2999-01-01", tmp_path / "a", admin, "disk full")
    assert all(p.exists() for p in paths)


def test_a_failed_archive_copy_removes_nothing(station, tmp_path, monkeypatch) -> None:
    db, cutoff, paths = station
    real_replace = os.replace

    def failing(src, dst):
        if "archive" in str(dst):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with DecisionLog.open(db, create=False) as log:
        admin = log.login("admin", "admin-pass-1")
        with pytest.raises(InspectorError, match="No space left.*nothing was removed"):
            archive_images(log, cutoff, tmp_path / "archive", admin, "disk full")
        assert not archived_hashes(log.sdb.conn) and log.verify().ok
    assert all(p.exists() for p in paths)


def test_archived_images_are_still_read_and_exported_from_the_archive(station, tmp_path) -> None:
    from inspector.store.decision_log import read_evidence_image
    from inspector.store.export import verify_export

    db, cutoff, paths = station
    archive = tmp_path / "archive"
    with DecisionLog.open(db, create=False) as log:
        archive_images(log, cutoff, archive, log.login("admin", "admin-pass-1"), "retention")
        where = log.image_path(paths[0].stem)
        assert archive in where.parents and read_evidence_image(where).shape == (3, 3, 3)  # hash-checked read
        qa = log.login("qa1", "qa-pass-123")
        summary = log.export("2000-01-01", "2100-01-01", tmp_path / "bundle", qa)
        assert summary.images == 3 and not summary.warnings
        assert verify_export(tmp_path / "bundle", log.sdb.key).ok
