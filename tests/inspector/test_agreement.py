"""Agreement figures from a hand-built decision log; every expected number is counted by hand below."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.frame.records import Candidate, Decision, Frame, InspectionResult, Ranking, Verdict
from inspector.learning.agreement import NONE_OF_THESE, agreement_from_rows, compute_agreement
from inspector.library.labels import library_from_dict
from inspector.store.database import utc_stamp
from inspector.store.decision_log import DecisionLog

LIBRARY = library_from_dict(
    {
        "format": 1,
        "name": "t",
        "labels": [
            {"id": "ok", "name": "No defect", "disposition": "accept", "descriptions": ["a clean surface"]},
            {
                "id": "scratch",
                "name": "Scratch",
                "disposition": "rework",
                "severity": 2,
                "descriptions": ["a thin scratch"],
            },
            {"id": "crack", "name": "Crack", "disposition": "scrap", "severity": 5, "descriptions": ["a crack"]},
            {"id": "stain", "name": "Stain", "disposition": "rework", "severity": 1, "descriptions": ["a stain"]},
        ],
    }
)
DISPOSITION = {label.id: label.disposition for label in LIBRARY.labels}


def _result(order: list[str], seq: int) -> InspectionResult:
    probs = [0.4, 0.3, 0.2, 0.1]
    ranking = Ranking(
        tuple(
            Candidate(label, label.title(), DISPOSITION[label], "d", 0.3 - 0.05 * i, probs[i], i + 1)
            for i, label in enumerate(order)
        ),
        "model",
        1,
    )
    frame = Frame(np.full((4, 4, 3), seq, np.uint8), datetime.now(UTC), "cam", seq)
    return InspectionResult(frame, ranking, Verdict(DISPOSITION[order[0]], False, False, "top"), "0" * 64)


# (model's ranking, the operator's answer) per inspection, in recording order.
S, O, C, T = "scratch", "ok", "crack", "stain"
CASES = [
    ([S, O, C, T], ("confirm", S, 1)),  # 1: agrees
    ([S, C, O, T], ("pick", C, 2)),  # 2: operator's label at #2
    ([O, S, C, T], ("confirm", O, 1)),  # 3: agrees
    ([C, S, O, T], ("pick", T, 4)),  # 4: at #4: outside the top 3
    # -- the time window used below starts here --
    ([S, O, C, T], ("none_of_these", None, None)),  # 5: none of these
    ([O, S, C, T], ("reject_image", None, None)),  # 6: rejected: excluded
    ([O, S, C, T], None),  # 7: no answer
    ([C, S, O, T], ("confirm", C, 1)),  # 8: confirmed, then QA corrects it to scratch (#2)
]


@pytest.fixture(scope="module")
def log_and_middle(tmp_path_factory: pytest.TempPathFactory, add_accounts):
    path: Path = tmp_path_factory.mktemp("agreement") / "s.db"
    log = DecisionLog.open(path)
    add_accounts(log, {"qa1": "qa", "op1": "operator"}, passwords={"qa1": "qa-pass-123", "op1": "op-pass-123"})
    qa, op = log.login("qa1", "qa-pass-123"), log.login("op1", "op-pass-123")
    log.library.import_library(LIBRARY, qa, "seed")
    middle = None
    for i, (order, answer) in enumerate(CASES, start=1):
        if i == 5:
            time.sleep(0.01)  # stamps have millisecond resolution: keep the window edge strict
            middle = utc_stamp()
            time.sleep(0.01)
        inspection = log.record_inspection(_result(order, i), op)
        if answer is None:
            continue
        kind, label, rank = answer
        typed = "a dent" if kind == "none_of_these" else ""
        first = log.record_decision(Decision(inspection, kind, "op1", label, rank, typed_description=typed), op)
        if i == 8:
            log.correct_decision(first, Decision(inspection, "pick", "qa1", S, 2), "it is a scratch", qa)
    yield log, middle
    log.close()


def test_whole_log(log_and_middle) -> None:
    log, _ = log_and_middle
    report = compute_agreement(log, library=LIBRARY)
    # answered: 1, 2, 3, 4, 5, 8 (6 rejected, 7 unanswered)
    assert (report.answered, report.rejected, report.unanswered, report.none_of_these) == (6, 1, 1, 1)
    # rank 1: inspections 1 and 3; rank <= 3: 1, 2, 3 and 8 (the correction's rank 2 counts, not the confirm)
    assert (report.top1, report.top3) == (2, 4)
    assert report.top1_rate == pytest.approx(2 / 6) and report.top3_rate == pytest.approx(4 / 6)
    by_id = {row.label_id: row for row in report.labels}
    assert [row.label_id for row in report.labels] == ["ok", "scratch", "crack", "stain"]  # library order
    # (answered, top1, top3, proposed): proposed = model #1 among answered inspections
    assert (by_id[S].answered, by_id[S].top1, by_id[S].top3, by_id[S].proposed) == (2, 1, 2, 3)  # 1, 8 / 1,2,5
    assert (by_id[C].answered, by_id[C].top1, by_id[C].top3, by_id[C].proposed) == (1, 0, 1, 2)  # 2 / 4, 8
    assert (by_id[O].answered, by_id[O].top1, by_id[O].top3, by_id[O].proposed) == (1, 1, 1, 1)  # 3 / 3
    assert (by_id[T].answered, by_id[T].top1, by_id[T].top3, by_id[T].proposed) == (1, 0, 0, 0)  # 4 / -
    assert by_id[S].top1_rate == 0.5 and by_id[S].precision == pytest.approx(1 / 3)
    assert by_id[T].precision is None and report.names[S] == "Scratch"
    table = report.confusion
    assert table.columns[-1] == NONE_OF_THESE and T not in table.rows  # stain was never the model's #1
    expected = {(S, S): 1, (S, C): 1, (O, O): 1, (C, T): 1, (S, NONE_OF_THESE): 1, (C, S): 1}
    for r in table.rows:
        for c in table.columns:
            assert table.count(r, c) == expected.get((r, c), 0), (r, c)
    assert sum(map(sum, table.counts)) == report.answered


def test_time_window(log_and_middle) -> None:
    log, middle = log_and_middle
    report = compute_agreement(log, from_ts=middle, library=LIBRARY)
    # inspections 5-8: answered 5 and 8; 6 rejected; 7 unanswered; only 8 (corrected: rank 2) in the top 3
    assert (report.answered, report.rejected, report.unanswered, report.top1, report.top3) == (2, 1, 1, 0, 1)
    assert report.confusion.count(S, NONE_OF_THESE) == 1 and report.confusion.count(C, S) == 1
    before = compute_agreement(log, to_ts=middle, library=LIBRARY)
    assert (before.answered, before.top1, before.top3, before.none_of_these) == (4, 2, 3, 0)
    assert NONE_OF_THESE not in before.confusion.columns
    assert before.from_ts is None and before.to_ts == middle


def test_empty_window_has_no_rates(log_and_middle) -> None:
    log, _ = log_and_middle
    report = compute_agreement(log, from_ts="2999-01-01")
    assert report.answered == 0 and report.top1_rate is None and report.labels == ()
    assert report.confusion.rows == () and report.confusion.count(S, S) == 0


def test_labels_only_older_versions_knew_keep_their_recorded_names() -> None:
    inspections = [
        {
            "id": 1,
            "top_label_id": "dent",
            "candidates": '[{"label_id": "dent", "label_name": "Dent (retired)", "rank": 1}]',
        }
    ]
    decisions = [
        {"id": 1, "inspection_id": 1, "kind": "confirm", "label_id": "dent", "picked_rank": 1, "corrected_by": None}
    ]
    report = agreement_from_rows(inspections, decisions, label_order=("ok",), names={"ok": "No defect"})
    assert [(row.label_id, row.label_name, row.top1) for row in report.labels] == [("dent", "Dent (retired)", 1)]
