"""Ranking with example images: the blend, what carried each candidate, live on the next part, on the record."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakes import HashScorer, text_vector
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.frame.example_cache import BlendParams, blend, calibrate, soft_nearest
from inspector.frame.example_probe import METHOD, PRIOR_MIN_DECISIONS, ProbeParams, plant_prior
from inspector.frame.records import Decision, Frame
from inspector.frame.scoring import ScoringSettings
from inspector.library.examples import example_set, example_set_hash
from inspector.library.labels import Example, load_library, seed_library_dir
from inspector.station import Station
from inspector.store.audit import inspection_record
from inspector.store.decision_log import store_image

DIM = 512  # random unit vectors this long are nearly orthogonal (cosine ~ +-0.04)
LOOK = "what a pitted part looks like"  # the image embedding of red=90 frames (no description says it)


def _scorer() -> HashScorer:
    scorer = HashScorer("fake-model", dim=DIM, image_size=32)
    scorer.target.update({90: LOOK, 0: "a plain part", 30: "something else"})
    return scorer


def _rgb(red: int) -> np.ndarray:
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = red
    return rgb


def _frame(red: int, seq: int = 0) -> Frame:
    return Frame(_rgb(red), datetime.now(UTC), "test", seq)


@pytest.fixture()
def station(tmp_path: Path, request):
    config = StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "station.db")),
        scoring=ScoringSettings(example_prior=getattr(request, "param", True)),  # [scoring] example_prior
    )
    with Station.open(config, scorer=_scorer()) as station:
        log = station.log
        log.users.create_first_admin("admin", "Admin-pass-1234")
        admin = log.login("admin", "Admin-pass-1234")
        log.users.add_user("qa", "qa", "Qa-pass-123456", admin, temporary=False)
        log.users.add_user("op", "operator", "Op-pass-1234567", admin, temporary=False)
        yield station, log.login("qa", "Qa-pass-123456"), log.login("op", "Op-pass-1234567")


def test_soft_nearest_runs_from_the_mean_to_the_nearest_example() -> None:
    sims = np.array([[0.2, 0.8, 0.5]])
    label_of = np.array([0, 0, 1])
    assert soft_nearest(sims, label_of, 3, 1e-4)[0, 0] == pytest.approx(0.5, abs=1e-4)
    assert soft_nearest(sims, label_of, 3, 1e4)[0, 0] == pytest.approx(0.8, abs=1e-3)
    assert soft_nearest(sims, label_of, 3, 10.0)[0, 1] == pytest.approx(0.5)
    assert np.isnan(soft_nearest(sims, label_of, 3, 10.0)[0, 2])  # a label without examples


def test_blend_uses_what_each_label_has() -> None:
    words = np.array([[0.3, np.nan, 0.2]])
    examples = np.array([[np.nan, 0.9, 0.7]])
    score, carried = blend(words, examples, scale=0.5, shift=-0.2, weight=0.25)
    assert score[0].tolist() == pytest.approx([0.3, 0.25, 0.75 * 0.2 + 0.25 * 0.15])
    assert carried.tolist() == [0, 1, 2]  # words, examples, both


def _clusters(spread: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.repeat(np.eye(16, dtype=np.float32)[:2], 4, axis=0)
    keys = centres + spread * rng.normal(size=(8, 16)).astype(np.float32)
    return keys / np.linalg.norm(keys, axis=1, keepdims=True)


LABEL_OF = np.array([0, 0, 0, 0, 1, 1, 1, 1])


def test_calibration_maps_example_scores_onto_the_words_scale() -> None:
    keys = _clusters(0.1)
    words = np.random.default_rng(1).normal(0.25, 0.05, size=(8, 2))
    scale, shift, _ = calibrate(keys, LABEL_OF, 2, words, BlendParams(auto_weight=False))
    sims = keys @ keys.T
    np.fill_diagonal(sims, -1e9)
    mapped = scale * soft_nearest(sims, LABEL_OF, 2, BlendParams().sharpness) + shift
    assert (mapped.mean(), mapped.std()) == pytest.approx((words.mean(), words.std()), rel=1e-6)
    bp = BlendParams()
    assert calibrate(keys[:1], LABEL_OF[:1], 2, words[:1], bp) == (
        bp.fallback_scale,
        bp.fallback_shift,
        bp.weight,
    )  # too few: fallback


def test_the_examples_vote_for_the_weight() -> None:
    misleading = np.where(np.eye(2, dtype=bool)[LABEL_OF], 0.1, 0.4)  # the words favour the wrong label
    assert calibrate(_clusters(0.1), LABEL_OF, 2, misleading, BlendParams(auto_weight=True))[2] >= 0.85
    telling = np.where(np.eye(2, dtype=bool)[LABEL_OF], 0.4, 0.1)  # the words are right; the images say nothing
    assert calibrate(_clusters(100.0), LABEL_OF, 2, telling, BlendParams(auto_weight=True))[2] < 0.5


def test_an_example_only_label_ranks_the_part_it_shows(station, tmp_path: Path) -> None:
    station, qa, _ = station
    assert station.inspect(_frame(90)).ranking.top.label_id != "pits"
    Image.fromarray(_rgb(90)).save(tmp_path / "pit.png")
    library = load_library(seed_library_dir() / "generic_surfaces.yaml")
    from dataclasses import replace

    from inspector.library.labels import Label

    pitted = Label(
        "pits", "Pits", "scrap", 3, (), examples=(Example(path=str(tmp_path / "pit.png"), reason="pits from line 2"),)
    )
    station.log.library.import_library(replace(library, labels=(*library.labels, pitted)), qa, "pitting by example")
    assert station.refresh_library()
    ranking = station.inspect(_frame(90)).ranking
    top = ranking.top
    assert (top.label_id, top.carried_by, top.description) == ("pits", "examples", "like example: pits from line 2")
    assert {c.carried_by for c in ranking.candidates if c.label_id != "pits"} == {"words"}
    assert station.inspect(_frame(0)).ranking.top.label_id != "pits"  # only parts that look like it


def test_an_added_example_takes_effect_on_the_next_part_and_is_on_the_record(station) -> None:
    station, qa, op = station
    log = station.log
    first = station.record(station.inspect(_frame(90)), op)
    assert first.ranking.top.label_id != "dent"
    embedded = len(station.scorer.embedded_texts)
    sha = store_image(log.sdb.image_root, _rgb(90))
    version = log.library.add_example("dent", Example(sha256=sha, reason="seen on line 2"), qa, "dent photo")
    assert station.refresh_library()
    second = station.record(station.inspect(_frame(90), image_sha256="1" * 64), op)
    assert len(station.scorer.embedded_texts) == embedded  # no description re-embedded, no training step
    top = second.ranking.top
    assert (top.label_id, top.carried_by) == ("dent", "both")
    # The record names the example set it was ranked against: its library version, whose examples are stored.
    record = inspection_record(log, second.inspection_id)
    assert record.library_version == version != inspection_record(log, first.inspection_id).library_version
    assert example_set(log.library.library(record.library_version)) == (("dent", sha),)
    assert station.index.examples.set_hash == example_set_hash(log.library.library(version))
    assert record.candidates[0].carried_by == "both"
    assert json.loads(log.inspection(second.inspection_id)["candidates"])[0]["carried_by"] == "both"
    # ... and its scoring configuration names how the examples entered the scores (method, parameters, set)
    assert "examples" not in json.loads(log.scoring_config(first.inspection_id))
    examples = json.loads(log.scoring_config(second.inspection_id))["examples"]
    assert examples["method"] == METHOD and examples["example_set"] == station.index.examples.set_hash
    assert examples["anchor"] == ProbeParams().anchor and examples["cache_weight"] == ProbeParams().cache_weight


def test_example_embeddings_are_cached_like_descriptions(station) -> None:
    station, qa, _ = station
    log = station.log
    sha = store_image(log.sdb.image_root, _rgb(90))
    log.library.add_example("dent", Example(sha256=sha), qa, "dent photo")
    calls = []
    embed = station.scorer.embed_images
    station.scorer.embed_images = lambda images: calls.append(len(images)) or embed(images)
    station.refresh_library()
    log.library.add_example("scratch", Example(sha256=store_image(log.sdb.image_root, _rgb(30))), qa, "scratch")
    station.refresh_library()
    assert calls == [1, 1]  # each recompile embedded only the new example
    cache = station.index.examples
    dent = station.index.library.label_ids.index("dent")
    assert np.allclose(cache.keys[cache.label_of == dent][0], text_vector(LOOK, DIM))


@pytest.mark.parametrize("station", [True, False], indirect=True, ids=["prior", "example_prior=false"])
def test_the_plant_mix_from_the_decision_log_is_the_probes_prior_and_on_the_record(station) -> None:
    """The decided mix becomes the probe's prior, on the record; [scoring] example_prior = false keeps
    the probe unshifted (a plant that would rather review than pass a rare defect)."""
    station, qa, op = station
    use_prior = station.scoring.example_prior
    log = station.log
    sha = store_image(log.sdb.image_root, _rgb(90))
    log.library.add_example("dent", Example(sha256=sha, reason="seen on line 2"), qa, "dent photo")
    station.refresh_library()
    first = station.record(station.inspect(_frame(90)), op)
    assert json.loads(log.scoring_config(first.inspection_id))["examples"]["prior"] is None  # no decisions yet
    decided = Counter()
    for seq in range(PRIOR_MIN_DECISIONS + 5):
        result = station.record(station.inspect(_frame(0 if seq % 5 else 30, seq), image_sha256=f"{seq:064x}"), op)
        top = result.ranking.top.label_id
        log.record_decision(Decision(result.inspection_id, "confirm", "op", top, 1), op)
        decided[top] += 1
    # the log's mix is read when the library is next compiled (here: another example added)
    log.library.add_example("scratch", Example(sha256=store_image(log.sdb.image_root, _rgb(30))), qa, "scratch")
    station.refresh_library()
    ids = station.index.library.label_ids
    expected = plant_prior([decided[label] for label in ids])
    assert expected is not None and max(expected) > 2 * min(expected)  # a skewed plant
    later = station.record(station.inspect(_frame(90), image_sha256="2" * 64), op)
    examples = json.loads(log.scoring_config(later.inspection_id))["examples"]
    if not use_prior:
        assert examples["prior"] is None and station.index.examples.probe.prior is None
        return
    assert examples["prior"] == list(expected) and examples["prior_strength"] == ProbeParams().prior_strength
    assert station.index.examples.probe.prior == expected
