"""The QA cost matrix in the station database: each version a chained `cost_matrix_set` event
(the whole matrix, who, why); the latest is in force. Version 0 is the defaults (inspector.report.kpi).

Setting it needs QA's 'edit_library' permission: like the library's dispositions, it is QA's
statement of what a wrong verdict costs on this line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from inspector.errors import DataError
from inspector.report.kpi import parse_costs
from inspector.store.database import event_row
from inspector.store.decision_log import DecisionLog
from inspector.store.users import Session, authorize

COST_EVENT = "cost_matrix_set"


def costs_in_force(log: DecisionLog) -> tuple[int, dict[str, dict[str, float]], dict[str, Any] | None]:
    """(version, matrix, the event row that set it or None for the defaults)."""
    rows = list(log.sdb.db.query("SELECT * FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1", [COST_EVENT]))
    if not rows:
        return 0, parse_costs({}), None
    detail = json.loads(rows[0]["detail"])
    return int(detail["version"]), parse_costs(detail["costs"], "stored cost matrix"), rows[0]


def set_costs(log: DecisionLog, matrix: Mapping[str, Any], reason: str, user: Session) -> int:
    """Store a new version (cells not given keep the defaults); its version number."""
    authorize(log.sdb, user, "edit_library", "set_cost_matrix")
    if not reason.strip():
        raise DataError("a cost matrix change needs a reason; say why these costs are right")
    costs = parse_costs(matrix)
    with log.sdb.transaction() as db:  # version read and written in one write transaction: no two get the same
        found = list(db.query("SELECT detail FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1", [COST_EVENT]))
        version = int(json.loads(found[0]["detail"])["version"]) + 1 if found else 1
        detail = {"version": version, "costs": costs, "reason": reason.strip()}
        log.sdb.append("events", event_row(COST_EVENT, user.name, f"v{version}", detail))
    return version
