"""Heatmaps of logged inspections, as an auditor asks for them: from the stored image, with the
model and the library version that ranked it; refused plainly when nothing records that model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.config import DatabaseConfig, LibraryConfig, ModelConfig, StationConfig
from inspector.errors import InspectorError
from inspector.frame.explain import explain_candidate, explain_record
from inspector.frame.records import Frame
from inspector.library.labels import seed_library_dir
from inspector.station import Station
from inspector.store.audit import inspection_record

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _config(root: Path) -> StationConfig:
    return StationConfig(
        model=ModelConfig("inspector-tiny"),
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(root / "s.db")),
    )


def _part(seed: int) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    rgb[10:20, 5:60] = 255  # a bright streak, so the map has something to find
    return rgb


@pytest.fixture()
def logged(tmp_path: Path, add_accounts):
    station = Station.open(_config(tmp_path))
    log = station.log
    add_accounts(log, {"qa1": "qa"})
    qa = log.login("qa1", "qa1-pass-1")
    rgb = _part(1)
    result = station.record(station.inspect(Frame(rgb, datetime.now(UTC), "cam", 1)), qa)
    yield station, inspection_record(log, result.inspection_id), rgb, qa
    station.close()


def test_heatmap_of_a_logged_inspection_matches_the_live_one(logged) -> None:
    station, record, rgb, _ = logged
    heat = explain_record(station, record, 1)
    assert heat.heatmap.shape == rgb.shape[:2] and heat.overlay.shape == rgb.shape
    assert heat.label_id == record.candidates[0].label_id
    live_result = station.inspect(Frame(rgb, datetime.now(UTC), "cam", 2))
    assert live_result.ranking.candidates[0].label_id == heat.label_id
    live = explain_candidate(station, live_result, 1)
    # The stored PNG is lossless, so the audit map is the map the operator could have seen.
    np.testing.assert_allclose(heat.heatmap, live.heatmap, atol=1e-5)


def test_an_older_library_version_is_explained_with_that_version(logged) -> None:
    station, record, _, qa = logged
    top = record.candidates[0].label_id
    station.log.library.add_description(top, "a completely different wording of this defect", qa, "test")
    assert station.refresh_library() and station.index.library_version != record.library_version
    heat = explain_record(station, record, 1)
    station.log.library.retire_label(top, qa, "label withdrawn")
    station.refresh_library()
    # The label left the library in force, yet the inspection is still explained as it was ranked;
    # from a worker thread, as the audit view asks (the station's connection belongs to this one).
    with ThreadPoolExecutor(1) as pool:
        again = pool.submit(explain_record, station, record, 1).result()
    np.testing.assert_allclose(again.heatmap, heat.heatmap, atol=1e-5)


def test_a_model_nothing_records_is_refused_plainly(logged) -> None:
    station, record, _, _ = logged  # an earlier model is loaded again (tests/inspector/test_past_models.py)
    moved = type(record)(**{**record.__dict__, "model_id": "f" * 64})
    with pytest.raises(InspectorError, match="ranked this inspection .ffffffffffff. is not in the model registry"):
        explain_record(station, moved, 1)


def test_missing_image_and_bad_rank_are_refused(logged) -> None:
    station, record, _, _ = logged
    with pytest.raises(InspectorError, match="no image was stored"):
        explain_record(station, type(record)(**{**record.__dict__, "image_path": None}), 1)
    with pytest.raises(InspectorError, match="ranks run from 1"):
        explain_record(station, record, len(record.candidates) + 1)
