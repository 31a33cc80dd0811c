"""The versioned library in the database: YAML in and out, every change a version with who,
when and why, retired never deleted, and the embedding cache per (model, text)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.errors import LibraryError
from inspector.library.labels import Label, library_from_dict, load_library, seed_library_dir
from inspector.store.decision_log import DecisionLog
from inspector.store.users import AccessDenied

SEED = seed_library_dir() / "generic_surfaces.yaml"


@pytest.fixture()
def station(tmp_path: Path, add_accounts):
    log = DecisionLog.open(tmp_path / "s.db")
    add_accounts(log, {"qa1": "qa", "op1": "operator"}, passwords="{name}-password")
    yield log, log.login("qa1", "qa1-password"), log.login("op1", "op1-password"), tmp_path
    log.close()


def test_import_makes_the_yaml_library_the_one_in_force(station) -> None:
    log, qa, _, _ = station
    assert log.library.current_version() == 0
    with pytest.raises(LibraryError, match="import"):
        log.library.library()
    version = log.library.import_library(load_library(SEED), qa, "seed library")
    assert log.library.in_force() == (version, load_library(SEED))
    history = log.library.history()
    assert [(h["version"], h["user"], h["reason"]) for h in history] == [(version, "qa1", "seed library")]
    assert history[0]["recorded_at"].endswith("Z")
    assert log.events(kind="library_edit")[-1]["user"] == "qa1"


def test_every_change_is_a_new_version_and_old_versions_stay(station) -> None:
    log, qa, _, _ = station
    v1 = log.library.import_library(load_library(SEED), qa, "seed")
    scratch_before = log.library.library(v1).label("scratch").descriptions
    v2 = log.library.add_description("scratch", "a long shallow groove", qa, "operators call it a groove")
    v3 = log.library.retire_description("scratch", scratch_before[0], qa, "too vague")
    v4 = log.library.retire_label("burn", qa, "no burns on this line")
    assert (v1, v2, v3, v4) == (v1, v1 + 1, v1 + 2, v1 + 3)
    now = log.library.library()
    assert scratch_before[0] not in now.label("scratch").descriptions
    assert "a long shallow groove" in now.label("scratch").descriptions and "burn" not in now.label_ids
    assert log.library.library(v1).label("scratch").descriptions == scratch_before  # history unchanged
    stored = {s.id: s for s in log.library.labels()}
    assert stored["burn"].retired and all(retired for _, retired in stored["burn"].descriptions)
    assert (scratch_before[0], True) in stored["scratch"].descriptions  # retired, not deleted
    assert [h["reason"] for h in log.library.history()] == [
        "seed",
        "operators call it a groove",
        "too vague",
        "no burns on this line",
    ]
    assert log.verify().ok


def test_reimport_retires_what_the_file_lacks_and_new_labels_join(station) -> None:
    log, qa, _, _ = station
    log.library.import_library(load_library(SEED), qa, "seed")
    smaller = library_from_dict(
        {
            "format": 1,
            "name": "generic",
            "labels": [
                {"id": "ok", "disposition": "accept", "descriptions": ["a clean surface"]},
                {"id": "oil", "disposition": "rework", "severity": 1, "descriptions": ["an oily film"]},
            ],
        }
    )
    log.library.import_library(smaller, qa, "trimmed")
    assert log.library.library() == smaller
    stored = {s.id: s for s in log.library.labels()}
    assert stored["scratch"].retired and not stored["oil"].retired
    assert set(load_library(SEED).label_ids) <= set(stored)


def test_edits_are_validated_and_need_reasons(station) -> None:
    log, qa, _, _ = station
    log.library.import_library(load_library(SEED), qa, "seed")
    with pytest.raises(LibraryError, match="reason"):
        log.library.add_description("scratch", "a nick", qa, "  ")
    with pytest.raises(LibraryError, match="no active label"):
        log.library.add_description("nonexistent", "a nick", qa, "why")
    with pytest.raises(LibraryError, match="200"):
        log.library.add_description("scratch", "x" * 250, qa, "why")
    with pytest.raises(LibraryError, match="exists"):
        log.library.add_label(Label("scratch", "S", "rework", 2, ("dup",)), qa, "why")
    with pytest.raises(LibraryError, match="nothing was recorded"):
        log.library.import_library(load_library(SEED), qa, "same again")
    only = log.library.library().label("dent").descriptions
    for text in only[:-1]:
        log.library.retire_description("dent", text, qa, "trim")
    with pytest.raises(LibraryError, match="retire the label instead"):
        log.library.retire_description("dent", only[-1], qa, "trim")
    v = log.library.add_label(Label("oil", "Oil film", "rework", 1, ("an oily film",), 0.4), qa, "new defect")
    assert log.library.library(v).label("oil").threshold == 0.4


def test_operator_cannot_edit_and_the_refusal_is_logged(station) -> None:
    log, qa, op, _ = station
    with pytest.raises(AccessDenied):
        log.library.import_library(load_library(SEED), op, "sneaky")
    assert log.library.current_version() == 0
    assert log.events(kind="denied")[-1]["user"] == "op1"


def test_export_yaml_round_trips_and_never_overwrites(station) -> None:
    log, qa, _, tmp = station
    log.library.import_library(load_library(SEED), qa, "seed")
    log.library.add_description("hole", "a round hole punched through", qa, "clearer")
    path = log.library.export_yaml(tmp / "out.yaml")
    assert load_library(path) == log.library.library()
    with pytest.raises(LibraryError, match="never overwrite"):
        log.library.export_yaml(tmp / "out.yaml", 1)
    assert load_library(log.library.export_yaml(tmp / "v1.yaml", 1)) == load_library(SEED)


def test_embedding_cache_per_model_and_text(station) -> None:
    log, _, _, _ = station
    texts = ["a thin scratch", "a clean surface", "'; DROP TABLE embeddings;--"]
    vectors = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    assert log.library.get_cached_embeddings("m1", texts) == {}
    log.library.put_embeddings("m1", texts, vectors)
    got = log.library.get_cached_embeddings("m1", texts + ["unknown"])
    assert set(got) == set(texts)
    for i, text in enumerate(texts):
        assert got[text].dtype == np.float32 and np.array_equal(got[text], vectors[i])
    assert log.library.get_cached_embeddings("m2", texts) == {}
    log.library.put_embeddings("m1", texts[:1], vectors[1:2] * 2)  # recomputed: replaced
    assert np.array_equal(log.library.get_cached_embeddings("m1", texts[:1])[texts[0]], vectors[1] * 2)
    many = [f"text {i}" for i in range(1200)]  # more than one IN (...) chunk
    log.library.put_embeddings("m3", many, np.ones((1200, 4), np.float32))
    assert len(log.library.get_cached_embeddings("m3", many)) == 1200
    with pytest.raises(LibraryError, match="finite"):
        log.library.put_embeddings("m1", texts, np.full((3, 8), np.nan, np.float32))
