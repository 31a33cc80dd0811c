"""Issue 14/15: a decision made while the operator's password was still the one an admin set is flagged
in the audit detail and in the export bundle (decision_flags.csv), not only in the database query."""

from __future__ import annotations

import csv
from pathlib import Path

from inspector.frame.records import Decision
from inspector.store.audit import inspection_record
from inspector.store.decision_log import DecisionLog
from inspector.store.export import verify_export
from tests.inspector.test_decision_log import LIBRARY, make_result


def test_admin_set_decisions_are_flagged_in_the_detail_and_the_export(tmp_path: Path) -> None:
    with DecisionLog.open(tmp_path / "s.db") as log:
        log.users.create_first_admin("admin", "admin-secret-1")
        admin = log.login("admin", "admin-secret-1")
        log.users.add_user("op", "operator", "typed-by-admin", admin, temporary=False)
        log.users.add_user("qa", "qa", "qa-engineer-pw", admin, temporary=False)
        log.users.add_user("aud", "auditor", "auditor-pw-1", admin, temporary=False)
        qa = log.login("qa", "qa-engineer-pw")
        version = log.library.import_library(LIBRARY, qa, "seed")
        op = log.login("op", "typed-by-admin")
        first_inspection = log.record_inspection(make_result(version), op)
        first = log.record_decision(Decision(first_inspection, "confirm", "op", "scratch", 1), op)
        log.users.change_own_password("op", "typed-by-admin", "ops-own-choice")
        second_inspection = log.record_inspection(make_result(version), op)
        second = log.record_decision(Decision(second_inspection, "confirm", "op", "scratch", 1), op)
        detail = inspection_record(log, first_inspection)
        assert "ADMIN-SET PASSWORD" in detail.describe_decision(detail.decisions[0])
        later = inspection_record(log, second_inspection)
        assert "ADMIN-SET" not in later.describe_decision(later.decisions[0])
        summary = log.export("2000-01-01", "2100-01-01", tmp_path / "bundle", log.login("aud", "auditor-pw-1"))
        key = log.sdb.key
    with open(summary.out_dir / "decision_flags.csv", newline="", encoding="utf-8") as f:
        flags = {int(r["decision_id"]): r["admin_set_password"] for r in csv.DictReader(f)}
    assert flags == {first: "1", second: "0"}
    assert verify_export(summary.out_dir, key).ok  # the new file is listed in the signed manifest
