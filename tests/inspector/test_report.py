"""The PoC report: figures counted by hand on a small log, the cost interval, the HTML file."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from inspector.cli import main
from inspector.errors import DataError
from inspector.frame.records import (
    Candidate,
    Decision,
    Frame,
    InspectionResult,
    Ranking,
    Verdict,
)
from inspector.library.labels import library_from_dict
from inspector.report.kpi import DEFAULT_COSTS, kpi, load_costs, period_rows
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
S, O, C, T = "scratch", "ok", "crack", "stain"
CASES = [
    ([S, O, C, T], ("confirm", S, 1)),
    ([S, C, O, T], ("pick", C, 2)),
    ([O, S, C, T], ("confirm", O, 1)),
    ([C, S, O, T], ("pick", T, 4)),
    ([S, O, C, T], ("none_of_these", None, None)),
    ([O, S, C, T], ("reject_image", None, None)),
    ([O, S, C, T], None),
    ([C, S, O, T], ("confirm", C, 1)),
]


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


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "s.db"
    log = DecisionLog.open(path)
    log.users.create_first_admin("admin", "admin-pass-1")
    admin = log.login("admin", "admin-pass-1")
    log.users.add_user("qa1", "qa", "qa-pass-123", admin, temporary=False)
    log.users.add_user("op1", "operator", "op-pass-123", admin, temporary=False)
    qa, op = log.login("qa1", "qa-pass-123"), log.login("op1", "op-pass-123")
    log.library.import_library(LIBRARY, qa, "seed")
    for i, (order, answer) in enumerate(CASES, start=1):
        inspection = log.record_inspection(_result(order, i), op)
        if answer is not None:
            kind, label, rank = answer
            log.record_decision(Decision(inspection, kind, "op1", label, rank, typed_description="x"), op)
    yield log, path
    log.close()


def test_kpi_counts_and_cost(db) -> None:
    log, _ = db
    inspections, decisions = period_rows(log, "2000-01-01", "2100-01-01")
    k = kpi("all", inspections, decisions, DEFAULT_COSTS, boot=200)
    # answered 1,2,3,4,5,8 (6 rejected, 7 unanswered); top-1: 1,3,8; none of these: 5
    assert (k.parts, k.agreement.answered, k.agreement.top1) == (8, 6, 3)
    assert k.none_rate == pytest.approx(1 / 6) and k.review_rate == 0
    # true -> proposed (dispositions: scratch rework, ok accept, crack scrap, stain rework):
    # 1 rework->rework 0; 2 scrap->rework 20; 3 accept->accept 0; 4 rework->scrap 15; 5 review->rework 10; 8 scrap->scrap 0
    assert k.cost_cells == {
        ("rework", "rework"): 1,
        ("scrap", "rework"): 1,
        ("accept", "accept"): 1,
        ("rework", "scrap"): 1,
        ("review", "rework"): 1,
        ("scrap", "scrap"): 1,
    }
    assert k.cost_per_1000 == pytest.approx(1000 * 45 / 6)
    assert k.cost_ci[0] <= k.cost_per_1000 <= k.cost_ci[1] and k.cost_ci[0] < k.cost_ci[1]
    assert k.seconds_per_part is not None and k.seconds_per_part >= 0


def test_cost_matrix_file(tmp_path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"scrap": {"accept": 999}}))
    assert load_costs(tmp_path / "c.json")["scrap"]["accept"] == 999
    assert load_costs(tmp_path / "c.json")["accept"] == DEFAULT_COSTS["accept"]
    (tmp_path / "bad.json").write_text(json.dumps({"scrap": {"accept": -1}}))
    with pytest.raises(DataError):
        load_costs(tmp_path / "bad.json")


def test_cli_writes_one_self_contained_html(db, tmp_path, capsys) -> None:
    _, path = db
    out = tmp_path / "r.html"
    assert main(["report", "--from", "2000-01-01", "--to", "2100-01-01", "--db", str(path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "<svg" in text and "Cost / 1000 parts" in text and "7500.0" in text
    # nothing to fetch: no external href or src (XML namespace URIs are names, not fetched)
    assert 'href="http' not in text and "src=" not in text and "<link" not in text
    assert (
        main(
            [
                "report",
                "--from",
                "2000-01-01",
                "--to",
                "2100-01-01",
                "--db",
                str(path),
                "--out",
                str(out),
                "--model",
                "nosuch",
            ]
        )
        == 2
    )
