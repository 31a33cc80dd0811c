"""Build the PoC report of a period (and optionally model A versus model B) from the decision log."""

from __future__ import annotations

from pathlib import Path

from inspector.errors import DataError
from inspector.report.costs import costs_in_force
from inspector.report.html import render, write_report
from inspector.report.kpi import groups, kpi, load_costs, period_rows
from inspector.report.versus import load_registered, paired_rows, paired_versus
from inspector.store.decision_log import DecisionLog


def build_report(
    log: DecisionLog,
    from_ts: str,
    to_ts: str,
    out: str | Path,
    *,
    model: str | None = None,
    versus: str | None = None,
    costs_path: str | Path | None = None,
) -> Path:
    """Write the report to `out`; the path. Models are matched by id prefix (as `inspector model list` shows)."""
    if costs_path is not None:
        costs, where = load_costs(costs_path), f"file {costs_path}"
    else:
        version, costs, event = costs_in_force(log)
        where = (
            f"version {version} in the database, set by {event['user']} at {event['recorded_at']}"
            if event is not None
            else "the defaults (inspector/report/kpi.py; none stored: `inspector costs set`)"
        )
    inspections, decisions = period_rows(log, from_ts, to_ts)
    _, library = log.library.in_force()
    order = library.label_ids
    notes = [
        f"Period [{from_ts}, {to_ts}) UTC; {len(inspections)} inspections; cost matrix: {where}.",
        "Product: the line trigger's product id, else the station's [camera] product_id; '(none)' where"
        " neither was set.",
    ]
    by_model = groups(inspections, decisions, "model_id")
    main = [kpi("All parts", inspections, decisions, costs, order)]
    paired = None
    if versus:  # the same answered parts re-ranked by each model (inspector.report.versus)
        scorer_b = load_registered(log, versus)
        scorer_a = load_registered(log, model) if model else None
        p = paired_versus(log, inspections, decisions, costs, scorer_a, scorer_b)
        paired = paired_rows(p)
        notes.append(
            f"Model B {p.model_b[:12]} against A {p.model_a[:12]} on the same {p.parts} answered parts, each stored"
            " image re-ranked with the library version it was ranked with; B - A with a paired bootstrap interval."
        )
    elif model:
        found = [m for m in by_model if m.startswith(model)]
        if len(found) != 1:
            raise DataError(
                f"model {model!r} matches {len(found)} models that ranked parts in the period;"
                f" give a longer id prefix (models in the period: {', '.join(m[:12] for m in by_model)})"
            )
        main = [kpi(f"Model {found[0][:12]}", *by_model[found[0]], costs, order)]
    spreads = {
        "station (source)": [kpi(k, *v, costs, order) for k, v in groups(inspections, decisions, "source_id").items()],
        "model": [kpi(k[:12], *v, costs, order) for k, v in by_model.items()],
        "product": [
            kpi(k or "(none)", *v, costs, order) for k, v in groups(inspections, decisions, "product_id").items()
        ],
    }
    return write_report(out, render("PoC / KPI report", main, spreads, costs, notes, paired))
