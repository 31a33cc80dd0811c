"""[scoring] keys, the hashed scoring configuration, ROI masks and the local-evidence blend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakes import HashScorer, text_vector
from inspector.config import load_config
from inspector.errors import ConfigError
from inspector.frame.ranking import blended_similarities, build_index, rank
from inspector.frame.records import Frame, utc_now
from inspector.frame.scorer import score_frame, scoring_config
from inspector.frame.scoring import CameraRoi, ScoringSettings, roi_mask
from inspector.library.labels import Label, Library
from inspector.station import Station


def test_scoring_defaults_and_toml(tmp_path: Path) -> None:
    assert load_config(None).scoring == ScoringSettings()
    path = tmp_path / "station.toml"
    path.write_text(
        '[scoring]\ninput_size = 512\ntiling = "on"\ntile_size = 384\ntile_overlap = 32\n'
        'local_weight = 0.25\nflips = "h"\ncaption_templates = ["close-up of {}"]\n'
        "roi = [[0, 0, 100, 50]]\n[scoring.cameras.cam1]\nroi = [[10, 10, 20, 20]]\n"
    )
    s = load_config(path).scoring
    assert (s.input_size, s.tiling, s.tile_size, s.tile_overlap, s.local_weight, s.flips) == (
        512,
        "on",
        384,
        32,
        0.25,
        "h",
    )
    assert s.caption_templates == ("close-up of {}",)
    assert s.roi_for("cam0").rects == ((0, 0, 100, 50),) and s.roi_for("cam1").rects == ((10, 10, 20, 20),)
    path.write_text("[scoring]\nexample_prior = false\n")
    assert load_config(path).scoring.example_prior is False and ScoringSettings().example_prior is True
    path.write_text('[scoring.cameras.cam2]\nroi_mask = "masks/cam2.png"\n')
    assert load_config(path).scoring.roi_for("cam2").mask == str(tmp_path / "masks" / "cam2.png")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[scoring]\ntiling = 'maybe'\n", "tiling"),
        ("[scoring]\ntile_size = '448'\n", "wrong type"),
        ("[scoring]\ntile_overlap = 448\n", "tile_overlap"),
        ("[scoring]\nroi = [[5, 5, 1, 1]]\n", "x0 < x1"),
        ("[scoring]\ncaption_templates = ['no slot']\n", "caption_templates"),
        ("[scoring]\nzoom = 2\n", "unknown keys"),
        ("[scoring]\nlocal_weight = 1.5\n", "local_weight"),
        ("[scoring]\nzoom_pick = 'best'\n", "zoom_pick"),
        ("[scoring]\nzoom_windows = -1\n", "zoom_windows"),
        ("[scoring]\nexample_prior = 'no'\n", "example_prior must be true or false"),
    ],
)
def test_bad_scoring_keys_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "station.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_config_id_is_canonical_and_changes_with_each_option() -> None:
    scorer = HashScorer()
    base = scoring_config(scorer, ScoringSettings())
    assert base.id == scoring_config(HashScorer(), ScoringSettings()).id and len(base.id) == 64
    assert base.as_dict()["model_id"] == "fake-model"
    others = [ScoringSettings(caption_templates=("a {}",)), ScoringSettings(roi=CameraRoi(((0, 0, 4, 4),)))]
    assert len({base.id} | {scoring_config(scorer, s).id for s in others}) == 3


def test_roi_mask_from_rects_and_image(tmp_path: Path) -> None:
    from PIL import Image

    assert roi_mask(CameraRoi(), 4, 6) is None
    mask = roi_mask(CameraRoi(((1, 1, 3, 2),)), 4, 6)
    assert mask.sum() == 2 and mask[1, 1] and mask[1, 2]
    img = np.zeros((4, 6), np.uint8)
    img[3, 5] = 255
    Image.fromarray(img).save(tmp_path / "m.png")
    assert roi_mask(CameraRoi(mask=str(tmp_path / "m.png")), 4, 6).sum() == 1
    with pytest.raises(Exception, match="6x4"):
        roi_mask(CameraRoi(mask=str(tmp_path / "m.png")), 8, 8)


def _library() -> Library:
    return Library(
        "t",
        (
            Label("ok", "OK", "accept", 0, ("a clean part",)),
            Label("scratch", "Scratch", "rework", 2, ("a small scratch",)),
        ),
    )


def test_local_evidence_lifts_a_small_defect() -> None:
    index = build_index(_library(), lambda texts: np.stack([text_vector(t) for t in texts]), "m")
    ok, scratch = text_vector("a clean part"), text_vector("a small scratch")
    globe = ok / np.linalg.norm(ok)  # the mean sees only the clean part
    # Clean locations resemble "a clean part" only partly (cos 0.79); one location sees the scratch.
    clean = ok + text_vector("texture")
    clean /= np.linalg.norm(clean)
    local = np.stack([clean, clean, scratch])
    assert rank(globe, index, 30.0).top.label_id == "ok"
    assert rank(globe, index, 30.0, local=local, local_weight=0.2).top.label_id == "ok"
    assert rank(globe, index, 30.0, local=local, local_weight=0.9).top.label_id == "scratch"
    np.testing.assert_allclose(blended_similarities(globe, local, index, 0.0), index.embeddings @ globe, atol=1e-6)


def test_station_records_scoring_config_in_ranking() -> None:
    station = Station(HashScorer(image_text="a clean part"), _library())
    frame = Frame(np.zeros((8, 8, 3), np.uint8), utc_now(), "cam0", 0)
    ranking = station.inspect(frame).ranking
    assert ranking.scoring_config_id == scoring_config(station.scorer, ScoringSettings()).id
    assert '"model_id":"fake-model"' in ranking.scoring_config_json
    assert score_frame(station.scorer, frame.rgb, ScoringSettings()).local.shape == (1, 32)


def test_recorded_inspection_keeps_its_scoring_config(tmp_path: Path) -> None:
    from inspector.config import DatabaseConfig, StationConfig
    from inspector.store.decision_log import DecisionLog

    config = StationConfig(database=DatabaseConfig(str(tmp_path / "station.db")))
    with Station.open(config, scorer=HashScorer()) as station:
        station.log.users.create_first_admin("admin", "Admin-pass-1234")
        admin = station.log.login("admin", "Admin-pass-1234")
        station.log.users.add_user("op", "operator", "Op-pass-1234567", admin, temporary=False)
        op = station.log.login("op", "Op-pass-1234567")
        first = station.record(station.inspect(Frame(np.zeros((8, 8, 3), np.uint8), utc_now(), "cam0", 0)), op)
        second = station.record(station.inspect(Frame(np.ones((8, 8, 3), np.uint8), utc_now(), "cam0", 1)), op)
        expected = scoring_config(station.scorer, ScoringSettings())
        assert station.log.scoring_config(first.inspection_id) == expected.json
        assert station.log.scoring_config(second.inspection_id) == expected.json
        assert station.log.scoring_config(10_000) is None
    with DecisionLog.open(tmp_path / "station.db", create=False) as log:
        assert log.verify().ok
        rows = list(log.sdb.db.query("SELECT id, json FROM scoring_configs"))
        assert [r["id"] for r in rows] == [expected.id]
