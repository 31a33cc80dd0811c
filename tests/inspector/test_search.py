"""Search by text and by example over a real decision log, with a fake scorer whose image
embeddings are known (an image embeds as the vector of the text its red value names)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from fakes import HashScorer
from inspector.cli import main
from inspector.errors import DataError
from inspector.frame.records import Decision, Frame
from inspector.library.labels import library_from_dict
from inspector.search.embed import search_vectors, tiles
from inspector.search.indexer import SearchIndexer, backfill, pending_ids
from inspector.search.meta import SearchFilter
from inspector.search.service import JSON_KEYS, SearchService
from inspector.search.vectors import VectorStore
from inspector.station import Station
from inspector.store.decision_log import DecisionLog

LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "t",
        "labels": [
            {"id": "ok", "name": "No defect", "disposition": "accept", "descriptions": ["a clean surface"]},
            {"id": "crack", "name": "Crack", "disposition": "scrap", "severity": 5, "descriptions": ["a crack"]},
            {"id": "stain", "name": "Stain", "disposition": "rework", "descriptions": ["a stain"]},
        ],
    }
)
RED = {10: "a clean surface", 20: "a crack", 30: "a stain", 40: "a burn mark"}
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _image(red: int) -> np.ndarray:
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = red
    return img


@pytest.fixture()
def station(tmp_path):
    log = DecisionLog.open(tmp_path / "s.db")
    log.users.create_first_admin("admin", "admin-pass-1")
    admin = log.login("admin", "admin-pass-1")
    log.users.add_user("qa1", "qa", "qa-pass-123", admin, temporary=False)
    log.users.add_user("op1", "operator", "op-pass-123", admin, temporary=False)
    log.library.import_library(LIBRARY, log.login("qa1", "qa-pass-123"), "seed")
    version, library = log.library.in_force()
    st = Station(HashScorer(by_red=RED), library, version, log)
    st.op = log.login("op1", "op-pass-123")
    yield st
    st.close()


def _record(st: Station, reds: list[int], day0: int = 0) -> list[int]:
    ids = []
    for i, red in enumerate(reds):
        frame = Frame(_image(red), T0 + timedelta(days=day0 + i), "cam-a" if i % 2 == 0 else "cam-b", i)
        ids.append(st.record(st.inspect(frame), st.op).inspection_id)
    return ids


def test_tiles_and_strongest_locals_keep_the_distinct_tile() -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    assert [t.shape[:2] for t in tiles(img)] == [(40, 40)] * 4 + [(32, 32)]
    img[0, 24, 0] = 20  # only the top-right tile (x from 64 - 40) starts on a red value that embeds as "a crack"
    vecs = search_vectors(HashScorer(by_red={0: "a clean surface", 20: "a crack"}), img, n_local=1)
    assert vecs.shape == (2, 32)
    assert np.allclose(vecs[1], HashScorer().embed_texts(["a crack"])[0])


def test_text_search_ranks_matching_inspections_and_filters(station: Station) -> None:
    ids = _record(station, [10, 20, 30, 20, 10, 40])
    store = VectorStore(station.log.sdb.path)
    assert backfill(station.log, store, station.scorer) == 6
    assert pending_ids(station.log, store, station.model_id) == []
    service = SearchService(station.log, store)
    answer = service.text(station.scorer, "a crack", station.model_id, k=2)
    assert {h.inspection_id for h in answer.hits} == {ids[1], ids[3]}
    assert answer.hits[0].score == pytest.approx(1.0, abs=1e-3) and not answer.stale
    assert answer.embedded == answer.total == 6
    # the burn was never in the library: text finds it, the logged #1 label cannot
    assert service.text(station.scorer, "a burn mark", station.model_id, k=1).hits[0].inspection_id == ids[5]
    # filters: capture time, station (source), logged #1 label, verdict, decision state
    since = SearchFilter(since=(T0 + timedelta(days=2)).isoformat())
    assert [h.inspection_id for h in service.text(station.scorer, "a crack", station.model_id, since, 1).hits] == [
        ids[3]
    ]
    only_b = service.text(station.scorer, "a crack", station.model_id, SearchFilter(station="cam-b"), 10)
    assert {h.inspection_id for h in only_b.hits} == {ids[1], ids[3], ids[5]}
    by_label = service.text(station.scorer, "a crack", station.model_id, SearchFilter(label="stain"), 10)
    assert [h.inspection_id for h in by_label.hits] == [ids[2]]
    assert (
        service.text(station.scorer, "a crack", station.model_id, SearchFilter(verdict="scrap"), 10).hits[0].label
        == "crack"
    )
    station.log.record_decision(Decision(ids[3], "none_of_these", "op1", typed_description="odd"), station.op)
    decided = service.text(station.scorer, "a crack", station.model_id, SearchFilter(state="decided"), 10)
    assert [(h.inspection_id, h.decided_label) for h in decided.hits] == [(ids[3], "none_of_these")]
    undecided = service.text(station.scorer, "a crack", station.model_id, SearchFilter(state="undecided"), 1)
    assert undecided.hits[0].inspection_id == ids[1] and undecided.hits[0].decided_label is None
    with pytest.raises(DataError):
        service.text(station.scorer, "a crack", station.model_id, SearchFilter(state="maybe"))
    with pytest.raises(DataError):
        service.text(station.scorer, "  ", station.model_id)


def test_like_search_by_inspection_and_file_excludes_itself(station: Station, tmp_path) -> None:
    ids = _record(station, [20, 10, 20, 30])
    store = VectorStore(station.log.sdb.path)
    backfill(station.log, store, station.scorer)
    service = SearchService(station.log, store)
    hits = service.like(station.scorer, str(ids[0]), station.model_id, k=1).hits
    assert [h.inspection_id for h in hits] == [ids[2]]
    from inspector.frame.imageio import cv2

    cv2.imwrite(str(tmp_path / "q.png"), _image(30)[..., ::-1])
    assert service.like(station.scorer, str(tmp_path / "q.png"), station.model_id, k=1).hits[0].inspection_id == ids[3]
    with pytest.raises(DataError):
        service.like(station.scorer, "no-such-file.png", station.model_id)


def test_indexer_hook_embeds_new_inspections_and_reembeds_after_a_model_change(station: Station) -> None:
    current = {"scorer": station.scorer}
    indexer = SearchIndexer(station.log.sdb.path, lambda: current["scorer"], pause_s=0.0)
    station.recorded_listeners.append(
        lambda r: indexer.submit(r.inspection_id, r.frame.rgb, r.embedding, r.ranking.model_id)
    )
    indexer.start()
    try:
        _record(station, [20, 10, 30])
        store = VectorStore(station.log.sdb.path)
        _wait(lambda: store.counts().get(station.model_id) == 3)
        # a new model: the backfill re-embeds; until done, the old model's vectors answer, labelled stale
        service = SearchService(station.log, store)
        new = HashScorer("model-2", by_red=RED)
        assert service.answering_model("model-2") == station.model_id
        answer = service.text(station.scorer, "a crack", "model-2", k=1)
        assert answer.stale and "re-embeds" in answer.note()
        current["scorer"] = new
        _wait(lambda: store.counts().get("model-2") == 3)
        assert service.answering_model("model-2") == "model-2"
        assert not service.text(new, "a crack", "model-2", k=1).stale
    finally:
        indexer.stop()
    assert not indexer.errors


def _wait(condition, timeout: float = 20.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "the indexer did not catch up"
        time.sleep(0.05)


def test_cli_json_lines_have_exactly_the_keys(tmp_path, capsys) -> None:
    from inspector.frame.scorer import load_scorer

    scorer = load_scorer("inspector-tiny", "cpu")
    log = DecisionLog.open(tmp_path / "s.db")
    log.users.create_first_admin("admin", "admin-pass-1")
    admin = log.login("admin", "admin-pass-1")
    log.users.add_user("qa1", "qa", "qa-pass-123", admin, temporary=False)
    qa = log.login("qa1", "qa-pass-123")
    log.library.import_library(LIBRARY, qa, "seed")
    version, library = log.library.in_force()
    st = Station(scorer, library, version, log)
    rng = np.random.default_rng(0)
    for i in range(5):
        st.record(st.inspect(Frame(rng.integers(0, 255, (32, 32, 3), np.uint8), T0, "cam", i)), qa)
    st.close()
    db = str(tmp_path / "s.db")
    assert main(["search-index", "--db", db, "--model", "inspector-tiny"]) == 0
    assert json.loads(capsys.readouterr().out)["embedded"] == 5
    assert main(["search", "a crack", "--db", db, "--model", "inspector-tiny", "--top", "3", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and all(tuple(x) == JSON_KEYS for x in lines)
    assert lines[0]["decided_label"] is None and lines[0]["score"] >= lines[-1]["score"]
    assert (
        main(["search", "--like", "2", "--db", db, "--model", "inspector-tiny", "--json", "--since", "2026-04-30"]) == 0
    )
    assert 2 not in [json.loads(x)["inspection_id"] for x in capsys.readouterr().out.splitlines()]
    assert main(["search", "--db", db, "--model", "inspector-tiny"]) == 2  # neither text nor --like
    assert main(["search", "x", "--db", db, "--model", "inspector-tiny", "--since", "yesterday"]) == 2
