"""Signed export bundles carry the library's example images, and the verifier misses none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inspector.library.labels import Example, library_from_dict
from inspector.store.decision_log import DecisionLog, store_image
from inspector.store.export import verify_export
from inspector.witness.note import signer_verifier, station_origin

LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "t",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["a clean surface"]},
            {"id": "scratch", "disposition": "rework", "descriptions": ["a thin scratch"]},
        ],
    }
)


def test_bundle_holds_example_images_and_verifies(tmp_path: Path, add_accounts) -> None:
    with DecisionLog.open(tmp_path / "db" / "s.db") as log:
        add_accounts(log, {"qa1": "qa"}, passwords="{name}-password")
        qa = log.login("qa1", "qa1-password")
        log.library.import_library(LIBRARY, qa, "seed")
        sha = store_image(log.sdb.image_root, np.full((6, 7, 3), 99, np.uint8))
        log.library.add_example("scratch", Example(sha256=sha, reason="line 2"), qa, "a real scratch")
        out = tmp_path / "bundle"
        summary = log.export("2000-01-01", "2100-01-01", out, qa)
        public = str(signer_verifier(log.identity(), station_origin(log.identity())))
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"images/{sha}.png" in manifest["files"] and summary.images == 1
    signed = verify_export(out, station_key=public)
    assert signed.ok and signed.authenticated  # the example image is under the station's signature
    (out / "images" / f"{sha}.png").unlink()
    report = verify_export(out)
    assert not report.ok and any("library example row" in p and "missing" in p for p in report.problems)
