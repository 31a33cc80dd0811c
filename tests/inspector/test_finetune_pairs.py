"""Training pairs from decisions: corrections supersede, rejects and 'none of these' stay out of
training (the latter become proposals), images count once, and the held-out split is stratified,
stable as data grows, and disjoint from training; the same rules read a real log and export bundles."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.errors import DataError
from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.learning.pairs import (
    DecisionSource,
    build_training_set,
    read_pairs_jsonl,
    split_pairs,
    write_pairs_jsonl,
)
from inspector.learning.sources import source_from_bundle, training_set_from
from inspector.library.labels import library_from_dict
from inspector.store.decision_log import DecisionLog
from inspector.witness.note import signer_verifier, station_origin

LABELS = ("ok", "scratch", "dent")


def sha(n: int) -> str:
    return hashlib.sha256(f"image {n}".encode()).hexdigest()


def inspection(i: int, image: str | None, order: tuple[str, ...] = LABELS, version: int = 1) -> dict:
    candidates = [{"rank": r + 1, "label_id": lab, "description": f"best text of {lab}"} for r, lab in enumerate(order)]
    return {
        "id": i,
        "image_sha256": image,
        "candidates": json.dumps(candidates),
        "library_version": version,
        "top_label_id": order[0],
    }


def decision(
    i: int,
    inspection_id: int,
    kind: str,
    label: str | None = None,
    rank: int | None = None,
    corrects: int | None = None,
    text: str = "",
) -> dict:
    return {
        "id": i,
        "inspection_id": inspection_id,
        "kind": kind,
        "label_id": label,
        "picked_rank": rank,
        "corrects_id": corrects,
        "typed_description": text,
        "operator": "op",
        "decided_at": f"2026-01-01T00:{i:02d}:00Z",
    }


def source(inspections: list[dict], decisions: list[dict], name: str = "s1") -> DecisionSource:
    texts = {(1, lab): (f"{lab} v1",) for lab in LABELS} | {(2, lab): (f"{lab} v1", f"{lab} v2") for lab in LABELS}
    return DecisionSource(name, inspections, decisions, texts, lambda s: Path("/images") / f"{s}.png")


def everything(ts) -> list:
    return [*ts.train, *ts.heldout]


def test_confirm_and_pick_carry_descriptions_of_their_version_and_the_outranked_labels() -> None:
    rows = [inspection(1, sha(1)), inspection(2, sha(2), ("dent", "ok", "scratch"), version=2)]
    ts = build_training_set(
        [source(rows, [decision(1, 1, "confirm", "ok", 1), decision(2, 2, "pick", "scratch", 3)])], heldout_fraction=0.0
    )
    pairs = {p.image_sha256: p for p in everything(ts)}
    assert pairs[sha(1)].descriptions == ("ok v1",) and pairs[sha(1)].outranked == ()
    assert pairs[sha(2)].descriptions == ("scratch v1", "scratch v2")
    assert pairs[sha(2)].outranked == ("dent", "ok")
    assert pairs[sha(2)].image_path.endswith(f"{sha(2)}.png")


def test_a_correction_supersedes_the_decision_it_corrects() -> None:
    rows = [inspection(1, sha(1)), inspection(2, sha(2))]
    decisions = [
        decision(1, 1, "confirm", "ok", 1),
        decision(2, 1, "pick", "dent", 3, corrects=1),
        decision(3, 2, "reject_image"),
        decision(4, 2, "pick", "scratch", 2, corrects=3),
    ]
    ts = build_training_set([source(rows, decisions)], heldout_fraction=0.0)
    labels = {p.image_sha256: (p.label_id, p.outranked) for p in everything(ts)}
    assert labels == {sha(1): ("dent", ("ok", "scratch")), sha(2): ("scratch", ("ok",))}
    assert ts.excluded["superseded"] == 2


def test_rejected_images_are_excluded_even_when_confirmed_elsewhere() -> None:
    rows = [inspection(1, sha(1)), inspection(2, sha(1)), inspection(3, sha(2))]
    decisions = [decision(1, 1, "confirm", "ok", 1), decision(2, 2, "reject_image"), decision(3, 3, "confirm", "ok", 1)]
    ts = build_training_set([source(rows, decisions)], heldout_fraction=0.0)
    assert [p.image_sha256 for p in everything(ts)] == [sha(2)]
    assert ts.excluded["rejected"] == 1


def test_an_image_counts_once_and_its_latest_decision_decides() -> None:
    rows = [inspection(1, sha(1)), inspection(2, sha(1)), inspection(3, sha(1))]
    decisions = [
        decision(1, 1, "confirm", "ok", 1),
        decision(2, 2, "pick", "dent", 3),
        decision(3, 3, "pick", "dent", 3),
    ]
    ts = build_training_set([source(rows, decisions)], heldout_fraction=0.0)
    assert [(p.image_sha256, p.label_id) for p in everything(ts)] == [(sha(1), "dent")]
    assert ts.excluded["duplicate"] == 2 and ts.excluded["relabelled"] == 1


def test_none_of_these_becomes_a_proposal_not_a_pair() -> None:
    rows = [inspection(1, sha(1)), inspection(2, sha(2)), inspection(3, None), inspection(4, sha(4))]
    decisions = [
        decision(1, 1, "none_of_these", text="  a burr on the rim "),
        decision(2, 2, "confirm", "ok", 1),
        decision(3, 3, "none_of_these", text="oil film"),
        decision(4, 4, "none_of_these", text="x"),
        decision(5, 4, "reject_image", corrects=4),
    ]
    ts = build_training_set([source(rows, decisions)], heldout_fraction=0.0)
    assert [p.image_sha256 for p in everything(ts)] == [sha(2)]
    assert {(p.text, p.image_sha256, p.model_top_label) for p in ts.proposals} == {
        ("a burr on the rim", sha(1), "ok"),
        ("oil film", None, "ok"),
    }


def _many(n_per_label: int, start: int = 0) -> DecisionSource:
    rows, decisions = [], []
    for k in range(start, start + n_per_label * len(LABELS)):
        rows.append(inspection(k + 1, sha(k)))
        decisions.append(decision(k + 1, k + 1, "pick", LABELS[k % len(LABELS)], 1 + k % len(LABELS)))
    return source(rows, decisions)


def test_split_is_stratified_by_label_and_disjoint() -> None:
    ts = build_training_set([_many(200)], heldout_fraction=0.25, seed=3)
    train, held = {p.image_sha256 for p in ts.train}, {p.image_sha256 for p in ts.heldout}
    assert not train & held and len(train | held) == 600
    for label, (n_train, n_held) in ts.label_counts().items():
        assert abs(n_held / (n_train + n_held) - 0.25) < 0.1, label


def test_split_is_stable_as_data_grows_and_depends_on_the_seed() -> None:
    small = build_training_set([_many(20)], heldout_fraction=0.3, seed=1)
    large = build_training_set([_many(60)], heldout_fraction=0.3, seed=1)
    held_small, held_large = {p.image_sha256 for p in small.heldout}, {p.image_sha256 for p in large.heldout}
    seen = {p.image_sha256 for p in everything(small)}
    assert held_small == held_large & seen
    other = build_training_set([_many(20)], heldout_fraction=0.3, seed=2)
    assert {p.image_sha256 for p in other.heldout} != held_small
    with pytest.raises(DataError):
        split_pairs(small.train, 1.0, 0)


def test_data_hash_follows_the_training_pairs_only() -> None:
    base = build_training_set([_many(10)], heldout_fraction=0.2)
    again = build_training_set([_many(10)], heldout_fraction=0.2)
    assert base.data_hash == again.data_hash
    relabelled = _many(10)
    moved = next(p for p in base.train)
    idx = next(i for i, r in enumerate(relabelled.inspections) if r["image_sha256"] == moved.image_sha256)
    new_label = next(lab for lab in LABELS if lab != moved.label_id)
    rank = 1 + json.loads(relabelled.inspections[idx]["candidates"]).index(
        next(c for c in json.loads(relabelled.inspections[idx]["candidates"]) if c["label_id"] == new_label)
    )
    decisions = [*relabelled.decisions, decision(99, idx + 1, "pick", new_label, rank, corrects=idx + 1)]
    changed = build_training_set([source(relabelled.inspections, decisions)], heldout_fraction=0.2)
    assert changed.data_hash != base.data_hash


def test_pairs_jsonl_round_trip_keeps_the_split(tmp_path: Path) -> None:
    ts = build_training_set([_many(10)], heldout_fraction=0.3, seed=4)
    path = write_pairs_jsonl(ts, tmp_path / "pairs.jsonl")
    back = read_pairs_jsonl([path, path], heldout_fraction=0.3, seed=4)
    assert back.train == ts.train and back.heldout == ts.heldout
    assert back.excluded["duplicate"] == len(ts.train) + len(ts.heldout)
    with pytest.raises(DataError, match="never overwritten"):
        write_pairs_jsonl(ts, path)


# ---------------------------------------------------------------- the same rules over a real log and a bundle

LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "t",
        "labels": [
            {"id": "ok", "disposition": "accept", "descriptions": ["a clean surface"]},
            {"id": "scratch", "disposition": "rework", "severity": 2, "descriptions": ["a thin scratch"]},
            {"id": "dent", "disposition": "scrap", "severity": 4, "descriptions": ["a dent in the sheet"]},
        ],
    }
)


def _record(log: DecisionLog, user, version: int, seed: int) -> int:
    order = LABELS[seed % 3 :] + LABELS[: seed % 3]
    ranking = Ranking(
        tuple(Candidate(lab, lab, "rework", f"best {lab}", 0.1, 1 / 3, r + 1) for r, lab in enumerate(order)),
        "model-x",
        version,
    )
    rgb = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    frame = Frame(rgb, datetime.now(UTC), "cam", seed)
    return log.record_inspection(InspectionResult(frame, ranking, Verdict("rework", False, False, "t"), "0" * 64), user)


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory, add_accounts):
    root = tmp_path_factory.mktemp("pairs")
    log = DecisionLog.open(root / "station" / "s.db")
    add_accounts(log, {"qa1": "qa", "op1": "operator"}, passwords="{name}-password")
    qa, op = log.login("qa1", "qa1-password"), log.login("op1", "op1-password")
    v1 = log.library.import_library(LIBRARY, qa, "seed")
    first = [_record(log, op, v1, s) for s in range(3)]
    log.library.add_description("ok", "no visible defect", qa, "operators use it")
    ids = {"confirmed": log.record_decision(Decision(first[0], "confirm", "op1", "ok", 1), op)}
    ids["corrected"] = log.record_decision(Decision(first[1], "confirm", "op1", "scratch", 1), op)
    log.correct_decision(ids["corrected"], Decision(first[1], "pick", "qa1", "ok", 3), "it was a reflection", qa)
    log.record_decision(Decision(first[2], "reject_image", "op1"), op)
    later = _record(log, op, log.library.current_version(), 4)
    log.record_decision(Decision(later, "none_of_these", "op1", typed_description="a burr"), op)
    yield log, qa, root
    log.close()


def test_the_log_source_applies_corrections_versions_rejects_and_proposals(real_log) -> None:
    log, _, _ = real_log
    ts = training_set_from(log, heldout_fraction=0.0)
    pairs = sorted(everything(ts), key=lambda p: p.inspection_id)
    assert [(p.label_id, p.outranked, p.descriptions) for p in pairs] == [
        ("ok", (), ("a clean surface",)),
        ("ok", ("scratch", "dent"), ("a clean surface",)),
    ]
    assert [p.text for p in ts.proposals] == ["a burr"]
    assert all(Path(p.image_path).is_file() for p in pairs)


def test_bundles_train_like_the_log_and_a_changed_bundle_is_refused(real_log) -> None:
    log, qa, root = real_log
    bundle = root / "line-1"
    log.export("2000-01-01", "2100-01-01", bundle, qa)
    with pytest.raises(DataError, match="not authenticated"):  # issue 14: an unsigned-for bundle trains nothing
        training_set_from(None, [bundle], heldout_fraction=0.0)
    station = [str(signer_verifier(log.identity(), station_origin(log.identity())))]
    from_bundle = training_set_from(None, [bundle], heldout_fraction=0.0, station_keys=station)
    from_log = training_set_from(log, heldout_fraction=0.0)
    assert [(p.image_sha256, p.label_id, p.descriptions) for p in everything(from_bundle)] == [
        (p.image_sha256, p.label_id, p.descriptions) for p in everything(from_log)
    ]
    paths = [Path(p.image_path) for p in everything(from_bundle)]
    assert paths and all(p.is_relative_to(bundle) and p.is_file() for p in paths)
    assert training_set_from(None, [bundle], keys=[log.sdb.key], heldout_fraction=0.0).train == from_bundle.train
    with pytest.raises(DataError, match="HMAC"):
        training_set_from(None, [bundle], keys=[bytes(32)])
    decisions = bundle / "decisions.jsonl"
    decisions.write_text(decisions.read_text().replace('"kind":"reject_image"', '"kind":"confirm"'))
    with pytest.raises(DataError, match="not intact"):
        source_from_bundle(bundle, station_key=station[0])
