"""`inspector report --versus MODEL`: the same answered parts re-ranked by another registered model,
the paired difference with its interval (checked against a by-hand re-ranking)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from inspector.capture.samples import sample_parts
from inspector.cli import main
from inspector.config import LibraryConfig
from inspector.frame.answers import record_answer
from inspector.frame.records import Frame
from inspector.frame.scorer import load_scorer
from inspector.learning.registry import ModelRegistry
from inspector.library.labels import load_library
from inspector.report.kpi import DEFAULT_COSTS, period_rows
from inspector.report.versus import load_registered, paired_versus
from inspector.station import Station
from inspector.store.decision_log import DecisionLog


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    path = tmp_path_factory.mktemp("versus") / "s.db"
    log = DecisionLog.open(path)
    log.users.create_first_admin("admin", "admin-pass-1")
    admin = log.login("admin", "admin-pass-1")
    log.users.add_user("qa1", "qa", "qa-pass-123", admin, temporary=False)
    log.users.add_user("op1", "operator", "op-pass-123", admin, temporary=False)
    qa, op = log.login("qa1", "qa-pass-123"), log.login("op1", "op-pass-123")
    log.library.import_library(load_library(LibraryConfig().path), qa, "seed")
    tiny, other = load_scorer("inspector-tiny", "cpu"), load_scorer("inspector-default-v1", "cpu")
    registry = ModelRegistry(log)
    common = {"parent_id": None, "data_hash": "", "recipe": {}, "figures": {}}
    registry.register(tiny.model_id, "inspector-tiny", qa, state="active", reason="in use", **common)
    registry.register(other.model_id, "inspector-default-v1", qa, **common)
    version, library = log.library.in_force()
    station = Station(tiny, library, version, log)
    for i, part in enumerate(sample_parts(14, size=96, seed=4)):
        result = station.record(station.inspect(Frame(part.rgb, datetime.now(UTC), "cam", i)), op)
        labels = [c.label_id for c in result.ranking.candidates]
        if part.defect in labels:  # the operator names the generated defect type: confirm or pick it
            record_answer(log, result, op, "pick", labels.index(part.defect) + 1)
        elif i % 2:
            record_answer(log, result, op, "none_of_these", typed="something else")
    yield log, path, tiny, other, library, version
    log.close()


def test_paired_difference_matches_a_by_hand_rerank(logged) -> None:
    log, _, tiny, other, library, version = logged
    inspections, decisions = period_rows(log, "2000-01-01", "2100-01-01")
    p = paired_versus(log, inspections, decisions, DEFAULT_COSTS, None, other, boot=300)
    # by hand: every answered part re-ranked by the other model, against the operator's label
    by_hand = Station(other, library, version)
    answers = {int(d["inspection_id"]): d for d in decisions}
    a_hits, b_hits = [], []
    from inspector.frame.imageio import read_image_file

    for row in inspections:
        d = answers.get(int(row["id"]))
        if d is None or d["kind"] not in ("confirm", "pick"):
            continue
        rgb = read_image_file(log.image_path(row["image_sha256"]))
        b_top = by_hand.inspect(Frame(rgb, datetime.now(UTC), "cam", 0)).ranking.top.label_id
        a_hits.append(row["top_label_id"] == d["label_id"])
        b_hits.append(b_top == d["label_id"])
    assert p.parts == len(answers) and p.reranked == len(answers) and len(a_hits) >= 5
    assert p.top1_a == pytest.approx(np.mean(a_hits)) and p.top1_b == pytest.approx(np.mean(b_hits))
    lo, hi = p.top1_diff_ci
    assert lo <= p.top1_b - p.top1_a <= hi
    assert p.cost_diff_ci[0] <= p.cost_b - p.cost_a <= p.cost_diff_ci[1]
    # the logged model against itself: nothing re-ranked, no difference
    same = paired_versus(log, inspections, decisions, DEFAULT_COSTS, load_registered(log, tiny.model_id), tiny)
    assert (same.reranked, same.top1_diff_ci, same.cost_diff_ci) == (0, (0.0, 0.0), (0.0, 0.0))
    print("versus:", p)


def test_cli_report_versus(logged, tmp_path) -> None:
    _, path, tiny, other, *_ = logged
    out = tmp_path / "r.html"
    args = ["report", "--from", "2000-01-01", "--to", "2100-01-01", "--db", str(path), "--out", str(out)]
    assert main([*args, "--model", tiny.model_id[:10], "--versus", other.model_id[:10]]) == 0
    text = out.read_text()
    assert "Same parts, two models" in text and f"B {other.model_id[:12]}" in text
    assert main([*args, "--versus", "0" * 10]) == 2  # not registered: a one-line error
