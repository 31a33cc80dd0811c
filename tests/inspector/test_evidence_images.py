"""Issue 14 finding 5: a stored evidence image replaced on disk is refused before use and reported by
`log verify --images`; before, verify said intact and the audit view showed the substitute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from inspector.store.decision_log import DecisionLog, EvidenceError, encode_png, read_evidence_image
from tests.inspector.test_chain_tamper import LIBRARY, _result


@pytest.fixture()
def station(tmp_path: Path):
    db = tmp_path / "s.db"
    with DecisionLog.open(db) as log:
        log.users.create_first_admin("admin", "admin-pass-1")
        admin = log.login("admin", "admin-pass-1")
        log.users.add_user("qa1", "qa", "qa-pass-123", admin, temporary=False)
        qa = log.login("qa1", "qa-pass-123")
        version = log.library.import_library(LIBRARY, qa, "seed")
        ids = [log.record_inspection(_result(version, i), qa) for i in range(3)]
        paths = [log.image_path(log.inspection(i)["image_sha256"]) for i in ids]
    return db, paths


def test_replaced_image_is_refused_and_reported(station) -> None:
    db, paths = station
    assert read_evidence_image(paths[0]).shape == (3, 3, 3)
    assert main(["log", "verify", "--db", str(db), "--images"]) == 0
    paths[1].chmod(0o644)
    paths[1].write_bytes(encode_png(np.full((3, 3, 3), 200, np.uint8)))  # a different, valid picture
    with pytest.raises(EvidenceError, match="replaced"):
        read_evidence_image(paths[1])
    with DecisionLog.open(db, create=False) as log:
        report = log.verify_images()
    assert not report.ok and "inspection 2" in report.problem
    assert main(["log", "verify", "--db", str(db), "--images"]) == 1


def test_missing_image_is_reported(station) -> None:
    db, paths = station
    paths[2].unlink()
    with DecisionLog.open(db, create=False) as log:
        report = log.verify_images()
    assert not report.ok and "missing" in report.problem
