"""The filter columns of every inspection, read from the station database into numpy arrays.

A query filters one million inspections in milliseconds this way; a SQL query returning the
allowed ids would take longer than the vector search itself. New inspections and decisions are
read incrementally (by id) before each query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from inspector.store.database import parse_time
from inspector.store.decision_log import DecisionLog

# Decision states a search can filter on; "decided" is any answer.
STATES = ("undecided", "agreed", "overridden", "none_of_these", "rejected")
STATE_FILTERS = (*STATES, "decided")


@dataclass(frozen=True)
class SearchFilter:
    """Conditions on the inspections a search may return; None means no condition.

    since/until: capture time (UTC, [since, until)); station: the source (camera) id that recorded it;
    label: the logged #1 label; verdict: the proposed disposition; state: see STATE_FILTERS.
    """

    since: str | None = None
    until: str | None = None
    station: str | None = None
    label: str | None = None
    verdict: str | None = None
    state: str | None = None


def _ms(stamp: str) -> int:
    # Stored stamps are UTC ISO with 'Z'; numpy parses them without the zone letter.
    return int(np.datetime64(stamp.rstrip("Z"), "ms").astype(np.int64))


class Codes:
    """Strings as small integers (a column of codes filters with one comparison)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def code(self, value: str | None) -> int:
        if value is None:
            return -1
        return self.index.setdefault(value, len(self.index))

    def find(self, value: str) -> int:
        return self.index.get(value, -2)  # -2 matches nothing


class InspectionColumns:
    """id, capture time, source, #1 label, verdict, decision state and decided label per inspection."""

    def __init__(self) -> None:
        self.ids = np.zeros(0, np.int64)
        self.time_ms = np.zeros(0, np.int64)
        self.source = np.zeros(0, np.int32)
        self.label = np.zeros(0, np.int32)
        self.verdict = np.zeros(0, np.int32)
        self.state = np.zeros(0, np.int8)
        self.codes = {"source": Codes(), "label": Codes(), "verdict": Codes()}
        self.last_decision = 0

    def __len__(self) -> int:
        return len(self.ids)

    def refresh(self, log: DecisionLog, batch: int = 200_000) -> int:
        """Read inspections and decisions recorded since the last refresh; how many inspections were new."""
        added = 0
        while True:
            after = int(self.ids[-1]) if len(self.ids) else 0
            rows = list(
                log.sdb.db.query(
                    "SELECT id, captured_at, source_id, top_label_id, disposition FROM inspections"
                    " WHERE id > ? ORDER BY id LIMIT ?",
                    [after, batch],
                )
            )
            if not rows:
                break
            self._append(rows)
            added += len(rows)
        decisions = list(
            log.sdb.db.query(
                "SELECT id, inspection_id, kind, picked_rank FROM decisions WHERE id > ? ORDER BY id",
                [self.last_decision],
            )
        )
        if decisions:
            # The newest decision of an inspection is the answer in force: a correction always follows
            # the row it corrects (inspector.learning.agreement.answers_in_force reads it the same way).
            pos = np.searchsorted(self.ids, [int(d["inspection_id"]) for d in decisions])
            for p, d in zip(pos.tolist(), decisions):
                self.state[p] = STATES.index(_state(d))
            self.last_decision = int(decisions[-1]["id"])
        return added

    def _append(self, rows: list[dict[str, Any]]) -> None:
        c = self.codes
        self.ids = np.concatenate([self.ids, np.fromiter((r["id"] for r in rows), np.int64, len(rows))])
        self.time_ms = np.concatenate([self.time_ms, np.array([_ms(r["captured_at"]) for r in rows], np.int64)])
        self.source = np.concatenate(
            [self.source, np.array([c["source"].code(r["source_id"]) for r in rows], np.int32)]
        )
        self.label = np.concatenate(
            [self.label, np.array([c["label"].code(r["top_label_id"]) for r in rows], np.int32)]
        )
        self.verdict = np.concatenate(
            [self.verdict, np.array([c["verdict"].code(r["disposition"]) for r in rows], np.int32)]
        )
        self.state = np.concatenate([self.state, np.zeros(len(rows), np.int8)])

    def mask(self, f: SearchFilter) -> np.ndarray | None:
        """Which inspections pass the filter (None: all of them)."""
        m = np.ones(len(self.ids), bool)
        if f.since:
            m &= self.time_ms >= _ms(parse_time(f.since))
        if f.until:
            m &= self.time_ms < _ms(parse_time(f.until))
        for name, value in (("source", f.station), ("label", f.label), ("verdict", f.verdict)):
            if value is not None:
                m &= getattr(self, name) == self.codes[name].find(value)
        if f.state == "decided":
            m &= self.state != 0
        elif f.state is not None:
            m &= self.state == STATES.index(f.state)
        return None if m.all() else m


def _state(decision: dict[str, Any]) -> str:
    kind = decision["kind"]
    if kind in ("confirm", "pick"):
        return "agreed" if int(decision["picked_rank"] or 0) == 1 else "overridden"
    return "none_of_these" if kind == "none_of_these" else "rejected"
