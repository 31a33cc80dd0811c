"""Legacy model ids (weights only) bound to the ids that cover weights and configuration (issue 14, finding 8).

Records and registry rows written before the upgrade name a model by its weights' SHA-256. At the
upgrade each such id the database names is bound, once, to the new id of the checkpoint as it is
then (a chained `model_id_aliased` event), so old records keep naming their model and can still be
explained by it. A sidecar edited AFTER the upgrade gives another new id, which no alias points to:
the old id is never silently reused. What cannot be bound (a checkpoint file missing or altered at
the upgrade, a model built from an architecture name) gets a `model_id_unbound` event saying why.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from models.errors import CheckpointError
from models.model_id import SHIPPED_MODELS, checkpoint_ids

ALIASED, UNBOUND = "model_id_aliased", "model_id_unbound"
MIGRATION = "0011_model_config_ids"
_HEX = frozenset("0123456789abcdef")


def _is_sha(value: str) -> bool:
    return len(value) == 64 and set(value) <= _HEX


def alias_map(conn: sqlite3.Connection) -> dict[str, str]:
    """{legacy id: model id} as bound at the upgrade (the first binding of an id counts)."""
    found: dict[str, str] = {}
    for subject, detail in conn.execute("SELECT subject, detail FROM events WHERE kind = ? ORDER BY id", (ALIASED,)):
        found.setdefault(subject, json.loads(detail)["model_id"])
    return found


def resolve(conn: sqlite3.Connection, model_id: str) -> str:
    """The id a model has now: the bound new id of a legacy id, else the id itself."""
    row = conn.execute(
        "SELECT detail FROM events WHERE kind = ? AND subject = ? ORDER BY id LIMIT 1", (ALIASED, model_id)
    ).fetchone()
    return json.loads(row[0])["model_id"] if row else model_id


def legacy_ids(conn: sqlite3.Connection, model_id: str) -> frozenset[str]:
    """The legacy ids bound to `model_id` (records ranked under them were ranked by this model)."""
    return frozenset(old for old, new in alias_map(conn).items() if new == model_id)


def legacy_bindings(conn: sqlite3.Connection) -> list[tuple[str, str, dict[str, Any]]]:
    """The (kind, legacy id, detail) events that bind every legacy id the registry or the records name.

    Registry rows name their checkpoint; records made with a shipped model are bound through the
    shipped files. open_database chains them inside the upgrade's transaction.
    """
    wanted: dict[str, list[str]] = {}
    for model_id, ref in conn.execute("SELECT model_id, checkpoint FROM model_registry ORDER BY id"):
        if _is_sha(model_id):
            wanted.setdefault(model_id, []).append(ref)
    used = {r[0] for r in conn.execute("SELECT DISTINCT model_id FROM inspections")}
    for name in sorted(set(SHIPPED_MODELS.values())):
        try:
            legacy = checkpoint_ids(name)[1]
        except CheckpointError:
            continue
        if legacy in used:
            wanted.setdefault(legacy, []).append(name)
    events = []
    for legacy, refs in wanted.items():
        problems = []
        for ref in refs:
            try:
                new, weights = checkpoint_ids(ref)
            except CheckpointError as exc:
                problems.append(str(exc))
                continue
            if weights != legacy:
                problems.append(f"{ref} now holds other weights ({weights[:12]})")
                continue
            detail = {"model_id": new, "checkpoint": ref, "reason": "bound at the upgrade to ids over weights + config"}
            events.append((ALIASED, legacy, detail))
            break
        else:
            events.append((UNBOUND, legacy, {"checkpoints": refs, "problems": problems}))
    return events
