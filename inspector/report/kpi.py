"""KPI figures of a period from the decision log: agreement (inspector.learning.agreement), review
and "none of these" rates, operator seconds per part, and the cost-weighted error.

Cost: cost[true disposition][proposed disposition] per part, edited by QA (a JSON file; defaults
below). The true disposition is that of the operator's answer in force; "none of these" counts
as "review" (an unknown defect should have gone to a person). The proposed one is the station's
verdict ("review" when it asked a person). Cost per 1,000 parts with a 95 % bootstrap interval.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import DataError
from inspector.learning.agreement import (
    AgreementReport,
    agreement_from_rows,
    answers_in_force,
)
from inspector.library.labels import DISPOSITIONS
from inspector.report.intervals import bootstrap_interval
from inspector.store.database import parse_time
from inspector.store.decision_log import DecisionLog

# Default cost per part (currency units), true disposition -> proposed: a scrap part passed as
# accept is the expensive error; sending a good part to review costs a person's minute.
DEFAULT_COSTS: dict[str, dict[str, float]] = {
    "accept": {"accept": 0.0, "rework": 5.0, "scrap": 20.0, "review": 1.0},
    "rework": {"accept": 30.0, "rework": 0.0, "scrap": 15.0, "review": 1.0},
    "scrap": {"accept": 200.0, "rework": 20.0, "scrap": 0.0, "review": 1.0},
    "review": {"accept": 50.0, "rework": 10.0, "scrap": 10.0, "review": 1.0},
}


def load_costs(path: str | Path | None) -> dict[str, dict[str, float]]:
    """The QA cost matrix from a JSON file ({true: {proposed: cost}}; missing cells keep the defaults)."""
    if path is None:
        return parse_costs({})
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cost matrix {path}: {exc}") from None
    return parse_costs(data, f"cost matrix {path}")


def parse_costs(data: Any, where: str = "cost matrix") -> dict[str, dict[str, float]]:
    """The full matrix from {true: {proposed: cost}} (missing cells keep the defaults); DataError if bad."""
    costs = {t: dict(row) for t, row in DEFAULT_COSTS.items()}
    for true, row in data.items() if isinstance(data, dict) else [(None, None)]:
        if true not in DISPOSITIONS or not isinstance(row, dict):
            raise DataError(f"{where}: rows must be dispositions {DISPOSITIONS} mapping to objects")
        for proposed, cost in row.items():
            if proposed not in DISPOSITIONS or isinstance(cost, bool) or not isinstance(cost, int | float):
                raise DataError(f"{where}: {true}->{proposed} must be a disposition and a cost >= 0")
            if not 0 <= cost < float("inf"):
                raise DataError(f"{where}: {true}->{proposed} must be a disposition and a cost >= 0")
            costs[true][proposed] = float(cost)
    return costs


@dataclass(frozen=True)
class KPI:
    """The figures of one group of inspections (a period, a model, a station)."""

    name: str
    parts: int
    agreement: AgreementReport
    review_rate: float | None
    none_rate: float | None
    seconds_per_part: float | None
    cost_per_1000: float | None
    cost_ci: tuple[float, float] | None
    cost_cells: dict[tuple[str, str], int] = field(default_factory=dict)


def _seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def kpi(
    name: str,
    inspections: Sequence[Mapping[str, Any]],
    decisions: Sequence[Mapping[str, Any]],
    costs: Mapping[str, Mapping[str, float]],
    label_order: Sequence[str] = (),
    boot: int = 1000,
    seed: int = 0,
) -> KPI:
    """The figures of these inspections (pure: rows as DecisionLog returns them)."""
    agreement = agreement_from_rows(inspections, decisions, label_order)
    answers = answers_in_force(decisions)
    first = {}
    for d in decisions:
        if d["corrects_id"] is None:
            first[int(d["inspection_id"])] = d
    per_part, cells, seconds = [], {}, []
    for row in inspections:
        a = answers.get(int(row["id"]))
        if int(row["id"]) in first:
            seconds.append(_seconds(row["recorded_at"], first[int(row["id"])]["decided_at"]))
        if a is None or a["kind"] == "reject_image":
            continue
        dispositions = {c["label_id"]: c["disposition"] for c in json.loads(row["candidates"])}
        true = dispositions.get(a["label_id"], "review") if a["kind"] in ("confirm", "pick") else "review"
        proposed = "review" if row["needs_review"] else row["disposition"]
        cells[(true, proposed)] = cells.get((true, proposed), 0) + 1
        per_part.append(costs[true][proposed])
    n = len(inspections)
    cost = ci = None
    if per_part:
        values = np.asarray(per_part)
        cost = 1000 * float(values.mean())
        ci = bootstrap_interval(lambda rows: values[rows].mean(axis=1) * 1000, [np.arange(len(values))], boot, seed)
    return KPI(
        name,
        n,
        agreement,
        sum(int(r["needs_review"]) for r in inspections) / n if n else None,
        agreement.none_of_these / agreement.answered if agreement.answered else None,
        float(np.median(seconds)) if seconds else None,
        cost,
        ci,
        cells,
    )


def period_rows(
    log: DecisionLog, from_ts: str, to_ts: str, limit: int = 500_000
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inspections recorded in [from, to) and every decision about them."""
    lo, hi = parse_time(from_ts), parse_time(to_ts)
    inspections = log.inspections(from_ts=lo, to_ts=hi, limit=limit)
    if not inspections:
        return [], []
    wanted = {int(r["id"]) for r in inspections}
    products = {
        int(r["inspection_id"]): r["product_id"]
        for r in log.sdb.db.query(
            "SELECT inspection_id, product_id FROM inspection_products WHERE inspection_id BETWEEN ? AND ?",
            [int(inspections[0]["id"]), int(inspections[-1]["id"])],
        )
    }
    # The product of each part (migration 0010); "" when none was configured or triggered.
    inspections = [{**r, "product_id": products.get(int(r["id"]), "")} for r in inspections]
    decisions = [
        d
        for d in log.decisions(from_ts=inspections[0]["recorded_at"], limit=20 * limit)
        if int(d["inspection_id"]) in wanted
    ]
    return inspections, decisions


def groups(
    inspections: Sequence[Mapping[str, Any]], decisions: Sequence[Mapping[str, Any]], key: str
) -> dict[str, tuple[list, list]]:
    """The rows split by an inspection column (source_id, model_id ...)."""
    out: dict[str, tuple[list, list]] = {}
    owner = {}
    for r in inspections:
        out.setdefault(str(r[key]), ([], []))[0].append(r)
        owner[int(r["id"])] = str(r[key])
    for d in decisions:
        out[owner[int(d["inspection_id"])]][1].append(d)
    return out
