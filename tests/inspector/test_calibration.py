"""Verdict thresholds measured per model, and hand-set thresholds flagged when the model changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from inspector.cli import main
from inspector.frame.calibration import Calibration, calibrate, calibration_from, policy_for
from inspector.frame.ranking import VerdictPolicy, build_index, decide
from inspector.frame.records import Candidate, Ranking
from inspector.library.labels import library_from_dict
from inspector.library.threshold_review import record_review, station_flags, thresholds_to_review
from inspector.store.access import AccessDenied

V1 = "a" * 64
V2 = "b" * 64
LIB = {
    "name": "t",
    "labels": [
        {"id": "ok", "disposition": "accept", "descriptions": ["fine"]},
        {"id": "scratch", "disposition": "rework", "descriptions": ["a scratch"]},
        {"id": "crack", "disposition": "scrap", "threshold": 0.9, "descriptions": ["a crack"]},
    ],
}


def _ranking(top: str, p1: float, second: str = "ok", p2: float = 0.0, score: float = 0.3) -> Ranking:
    cands = (
        Candidate(top, top, "rework", top, score, p1, 1),
        Candidate(second, second, "accept", second, score - 0.1, p2, 2),
    )
    return Ranking(cands, "m", 1)


def test_calibrate_finds_the_lowest_threshold_that_meets_the_precision() -> None:
    # scratch is #1 in five frames: wrong at p 0.30 and 0.50, right at 0.55, 0.70, 0.90.
    # p >= 0.51..0.55 keeps the three right ones (precision 1.0); p >= 0.31..0.50 keeps 3 of 4 (0.75).
    rankings = [_ranking("scratch", p) for p in (0.30, 0.50, 0.55, 0.70, 0.90)]
    truths = ["ok", "crack", "scratch", "scratch", "scratch"]
    cal = calibrate(rankings, truths, precision=0.9)
    assert cal.per_label["scratch"] == pytest.approx(0.51)
    assert cal.evidence["coverage"]["scratch"] == pytest.approx(0.6)
    assert cal.default_threshold == pytest.approx(0.51)
    # at precision 0.75 the frame at 0.50 may pass too
    assert calibrate(rankings, truths, precision=0.75).per_label["scratch"] == pytest.approx(0.31)
    # a label never right asks a person always
    assert calibrate([_ranking("crack", 0.99)], ["ok"]).per_label["crack"] == 1.0


def test_open_set_floor_is_the_false_open_quantile_of_known_parts() -> None:
    scores = np.linspace(0.10, 0.40, 101)
    rankings = [_ranking("ok", 0.9, score=float(s)) for s in scores]
    cal = calibrate(rankings, ["ok"] * len(rankings), false_open=0.02)
    assert cal.open_set_floor == pytest.approx(float(np.quantile(scores, 0.02)), abs=1e-4)
    assert (scores < cal.open_set_floor).mean() <= 0.02


def test_policy_uses_measured_thresholds_but_a_hand_set_one_wins() -> None:
    library = library_from_dict(LIB)
    axes = {"fine": [1, 0, 0], "a scratch": [0, 1, 0], "a crack": [0, 0, 1]}
    index = build_index(library, lambda texts: np.array([axes[t] for t in texts], np.float32), "m")
    cal = Calibration(0.2, 0.0, -1.0, {"scratch": 0.95, "crack": 0.1})
    policy = policy_for(cal)
    assert policy_for(None) == VerdictPolicy()
    scratch = _ranking("scratch", 0.9, p2=0.1)
    assert decide(scratch, index, VerdictPolicy(min_margin=0.0)).needs_review is False  # default 0.35
    verdict = decide(scratch, index, policy)
    assert verdict.needs_review and "below its threshold 95 %" in verdict.reason
    crack = _ranking("crack", 0.5, p2=0.1)
    assert "below its threshold 90 %" in decide(crack, index, policy).reason  # the label's own 0.9, not 0.1


def test_calibration_round_trips_through_a_sidecar_and_rejects_garbage() -> None:
    cal = calibrate([_ranking("scratch", 0.8)], ["scratch"])
    again = calibration_from(json.loads(json.dumps({"calibration": cal.as_dict()})))
    assert again == cal
    assert calibration_from({}) is None
    with pytest.raises(ValueError, match="malformed"):
        calibration_from({"calibration": {"min_margin": 0.1}})


def test_hand_set_thresholds_are_flagged_when_the_model_changes() -> None:
    library = library_from_dict({**LIB, "thresholds_model": V1[:12]})
    assert thresholds_to_review(library, V1) == []
    flags = thresholds_to_review(library, V2)
    assert [f.label_id for f in flags] == ["crack"]  # the only hand-set one
    assert f"set for model {V1[:12]}" in flags[0].reason and V2[:12] in flags[0].reason
    unknown = thresholds_to_review(library_from_dict(LIB), V1)
    assert "an unrecorded model" in unknown[0].reason
    no_thresholds = library_from_dict({**LIB, "labels": LIB["labels"][:2]})
    assert thresholds_to_review(no_thresholds, V2) == []


def test_library_check_prints_the_review_and_stays_valid(tmp_path: Path, capsys) -> None:
    lib = tmp_path / "lib.yaml"
    lib.write_text(yaml.safe_dump({**LIB, "thresholds_model": V1[:16]}))
    sidecar = tmp_path / "m2.json"
    sidecar.write_text(json.dumps({"weights_sha256": V2}))
    assert main(["library", "check", str(lib), "--model", str(sidecar)]) == 0
    out = capsys.readouterr().out
    assert "ok: library 't'" in out and "review: label 'crack'" in out
    sidecar.write_text(json.dumps({"weights_sha256": V1}))
    assert main(["library", "check", str(lib), "--model", str(sidecar)]) == 0
    assert "review" not in capsys.readouterr().out
    lib.write_text(yaml.safe_dump({**LIB, "thresholds_model": "v1"}))
    assert main(["library", "check", str(lib), "--model", str(sidecar)]) == 2  # not a model id


def test_a_review_recorded_by_qa_clears_the_flag_for_that_model_only(tmp_path: Path, add_accounts) -> None:
    from inspector.store.decision_log import DecisionLog

    log = DecisionLog.open(tmp_path / "s.db")
    try:
        users = add_accounts(log, {"qa1": "qa", "op1": "operator"}, sign_in=True)
        library = library_from_dict(LIB)
        assert [f.label_id for f in station_flags(log, library, V2)] == ["crack"]
        with pytest.raises(AccessDenied):
            record_review(log, users["op1"], V2, 1, "checked")
        record_review(log, users["qa1"], V2, 1, "checked 50 parts under v2")
        assert station_flags(log, library, V2) == []
        assert [f.label_id for f in station_flags(log, library, V1)] == ["crack"]
    finally:
        log.close()
