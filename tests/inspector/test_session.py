"""The composition root: library seeding, embedding cache, live library edits, recording."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from fakes import HashScorer
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.errors import InspectorError
from inspector.frame.records import Frame
from inspector.frame.scorer import Scorer
from inspector.library.labels import seed_library_dir
from inspector.station import Station, frame_sha256
from inspector.store.decision_log import DecisionLog

DIM = 512  # random unit vectors this long are nearly orthogonal (cosine ~ +-0.04)


def _scorer() -> HashScorer:
    """An image's colour picks the text it resembles: tests fill `target` (red value -> text)."""
    return HashScorer("fake-model", dim=DIM, image_size=32)


def _config(tmp_path: Path) -> StationConfig:
    return StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "station.db")),
    )


def _frame(red: int, seq: int = 0) -> Frame:
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = red
    return Frame(rgb, datetime.now(UTC), "test", seq)


def test_fake_scorer_satisfies_the_protocol() -> None:
    assert isinstance(_scorer(), Scorer)


def test_first_open_seeds_the_library_and_ranks(tmp_path: Path) -> None:
    scorer = _scorer()
    scorer.target[200] = "a jagged crack running through the material"
    with Station.open(_config(tmp_path), scorer=scorer) as station:
        assert station.index.library_version == 1
        result = station.inspect(_frame(200))
        assert result.ranking.top.label_id == "crack"
        assert result.ranking.top.description == "a jagged crack running through the material"
        assert result.ranking.library_version == 1 and result.ranking.model_id == "fake-model"
        assert set(result.timings_ms) == {"encode", "rank"}
        assert result.image_sha256 == frame_sha256(_frame(200))
        assert any(e["kind"] == "library_seeded" for e in station.log.events())


def test_embeddings_are_cached_per_model_and_text(tmp_path: Path) -> None:
    first = _scorer()
    with Station.open(_config(tmp_path), scorer=first):
        pass
    n_descriptions = len(first.embedded_texts)
    assert n_descriptions > 0
    second = _scorer()
    with Station.open(_config(tmp_path), scorer=second):
        pass
    assert second.embedded_texts == []  # all came from the database cache

    other_model = _scorer()
    other_model.model_id = "another-model"
    with Station.open(_config(tmp_path), scorer=other_model):
        pass
    assert len(other_model.embedded_texts) == n_descriptions  # a new model recomputes them


def test_a_new_description_is_live_on_the_next_frame(tmp_path: Path) -> None:
    scorer = _scorer()
    new_text = "a long gouge dragged across the part"
    scorer.target[100] = new_text
    with Station.open(_config(tmp_path), scorer=scorer) as station:
        log = station.log
        log.users.create_first_admin("admin", "Admin-pass-1234")
        admin = log.login("admin", "Admin-pass-1234")
        log.users.add_user("qa", "qa", "Qa-pass-123456", admin, temporary=False)
        qa = log.login("qa", "Qa-pass-123456")
        before = station.inspect(_frame(100))
        assert before.ranking.top.description != new_text
        scorer.embedded_texts.clear()
        log.library.add_description("scratch", new_text, qa, "operators call it a gouge")
        assert station.refresh_library() is True
        assert scorer.embedded_texts == [new_text]  # only the new text was embedded
        after = station.inspect(_frame(100))
        assert after.ranking.library_version == 2
        assert after.ranking.top.label_id == "scratch" and after.ranking.top.description == new_text
        assert station.refresh_library() is False


def test_record_commits_and_returns_the_id(tmp_path: Path) -> None:
    scorer = _scorer()
    scorer.target[50] = "a dent pressed into the surface"
    with Station.open(_config(tmp_path), scorer=scorer) as station:
        station.log.users.create_first_admin("admin", "Admin-pass-1234")
        admin = station.log.login("admin", "Admin-pass-1234")
        station.log.users.add_user("op", "operator", "Op-pass-1234567", admin, temporary=False)
        op = station.log.login("op", "Op-pass-1234567")
        result = station.record(station.inspect(_frame(50)), op)
        assert result.inspection_id is not None
        stored = station.log.inspections()
        assert [row["id"] for row in stored] == [result.inspection_id]
        assert station.log.has_frame(result.image_sha256)
        assert not station.log.has_frame("0" * 64)
    with DecisionLog.open(tmp_path / "station.db", create=False) as log:
        assert log.verify().ok


def test_record_without_database_is_refused(tmp_path: Path) -> None:
    scorer = _scorer()
    scorer.target[10] = "a dent pressed into the surface"
    station = Station.open(_config(tmp_path), with_log=False, scorer=scorer)
    with pytest.raises(InspectorError, match="without a database"):
        station.record(station.inspect(_frame(10)), None)  # type: ignore[arg-type]
