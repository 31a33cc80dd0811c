"""The QA cost matrix in the database: versioned chained events set by QA with a reason; the report uses it."""

from __future__ import annotations

import json

import pytest

from inspector.cli import main
from inspector.errors import DataError
from inspector.report.costs import costs_in_force, set_costs
from inspector.report.kpi import DEFAULT_COSTS
from inspector.store.users import AccessDenied
from tests.inspector.test_report import db  # noqa: F401  (the small hand-counted log fixture)


def test_set_show_and_report_use_the_stored_matrix(db, tmp_path, capsys, monkeypatch) -> None:  # noqa: F811
    log, path = db
    assert costs_in_force(log)[:2] == (0, DEFAULT_COSTS)
    qa, op = log.login("qa1", "qa-pass-123"), log.login("op1", "op-pass-123")
    with pytest.raises(AccessDenied):
        set_costs(log, {"scrap": {"rework": 100}}, "operators may not", op)
    with pytest.raises(DataError, match="reason"):
        set_costs(log, {"scrap": {"rework": 100}}, " ", qa)
    with pytest.raises(DataError):
        set_costs(log, {"scrap": {"rework": -3}}, "negative", qa)
    assert set_costs(log, {"scrap": {"rework": 100}}, "a missed crack costs a recall", qa) == 1
    version, costs, event = costs_in_force(log)
    assert (version, costs["scrap"]["rework"], costs["accept"], event["user"]) == (
        1,
        100.0,
        DEFAULT_COSTS["accept"],
        "qa1",
    )
    assert log.verify().ok  # a chained event

    (tmp_path / "c.json").write_text(json.dumps({"review": {"rework": 0}}))
    monkeypatch.setenv("INSPECTOR_PASSWORD", "qa-pass-123")
    args = ["costs", "set", str(tmp_path / "c.json"), "--reason", "unknowns are cheap here", "--db", str(path)]
    assert main([*args, "--user", "qa1"]) == 0
    assert main(["costs", "show", "--db", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert shown["version"] == 2 and shown["costs"]["review"]["rework"] == 0 and shown["costs"]["scrap"]["rework"] == 20
    # by hand (test_report): per-part costs 0, 20, 0, 15, review->rework, 0 -> with review->rework 0: 35/6
    out = tmp_path / "r.html"
    assert main(["report", "--from", "2000-01-01", "--to", "2100-01-01", "--db", str(path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "version 2 in the database" in text and f"{1000 * 35 / 6:.1f}" in text
    (tmp_path / "bad.json").write_text("{")
    assert main(["costs", "set", str(tmp_path / "bad.json"), "--reason", "x", "--db", str(path), "--user", "qa1"]) == 2
