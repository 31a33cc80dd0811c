"""The operator's queue, as a line works: trouble parts oldest first, a review lane as reject bin.

Calm parts (accepted, no review flag) flow past and need no answer. Trouble parts wait in
arrival order; the oldest is on screen. A part stays on screen at most `max_wait_s` (then it
moves to the review lane), and at most `max_waiting` parts wait behind it (beyond that the oldest
of those moves there: the part being answered stays, so an operator who cannot keep up still
answers parts in order while the lane takes the overflow). A move to the review lane is a
chained `part_to_review` event (the part's state is then pending_review, see
inspector.store.states); parts there are answered later from the review list by an operator or
QA. At sign-out
every waiting part moves there too: nothing leaves the queue without a record. An answer counts
only once the part has been on screen `min_on_screen_s`, so a double tap cannot answer the next
part. Time comes from an injectable clock: tests need no sleeps.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inspector.config import QueueConfig
from inspector.errors import InspectorError
from inspector.frame.answers import decision_for, record_answer
from inspector.frame.records import InspectionResult
from inspector.store.decision_log import DecisionLog
from inspector.store.states import TO_REVIEW, pending_review_ids
from inspector.store.users import Session


class TooSoon(InspectorError):
    """The part has not been on screen long enough for an answer to refer to it."""


def needs_attention(result: InspectionResult) -> bool:
    """Whether a part is trouble: it waits for an answer (or goes to the review lane)."""
    v = result.verdict
    return v.disposition != "accept" or v.needs_review or v.open_set


@dataclass(frozen=True)
class QueuePolicy:
    """The limits of the operator's queue ([queue] in the station TOML)."""

    max_wait_s: float = 20.0  # T: a part on screen longer than this goes to the review lane
    max_waiting: int = 5  # K: parts waiting behind the one on screen
    min_on_screen_s: float = 0.3  # an answer needs the part on screen at least this long

    def __post_init__(self) -> None:
        if not (self.max_wait_s > 0 and self.max_waiting >= 0 and self.min_on_screen_s >= 0):
            raise InspectorError(f"queue limits must be positive: {self}")


@dataclass
class _Entry:
    result: InspectionResult
    shown_at: float | None = None  # clock time it reached the screen


@dataclass
class OperatorQueue:
    """Trouble parts in arrival order; `current` is on screen. Call `tick()` regularly (and it is
    called by every other method) so the time limit applies while nobody presses a key."""

    log: DecisionLog | None
    user: Session | None
    policy: QueuePolicy = field(default_factory=QueuePolicy)
    clock: Callable[[], float] = time.monotonic
    moved: int = 0  # parts this queue sent to the review lane
    _parts: deque[_Entry] = field(default_factory=deque)

    @property
    def current(self) -> InspectionResult | None:
        """The part on screen (the oldest waiting trouble part), or None."""
        return self._parts[0].result if self._parts else None

    @property
    def waiting(self) -> int:
        """Parts waiting behind the one on screen."""
        return max(0, len(self._parts) - 1)

    def offer(self, result: InspectionResult) -> bool:
        """A new part from the camera: True if it joined the queue (trouble and recorded)."""
        self.tick()
        if not needs_attention(result) or result.inspection_id is None:
            return False
        self._parts.append(_Entry(result))
        self._show_head()
        while self.waiting > self.policy.max_waiting:
            self._to_review("queue_full", 1)  # the oldest behind the screen: the one on it is being answered
        return True

    def tick(self) -> list[int]:
        """Apply the time limit; the ids moved to the review lane."""
        moved = []
        now = self.clock()
        while (
            self._parts
            and self._parts[0].shown_at is not None
            and now - self._parts[0].shown_at > self.policy.max_wait_s
        ):
            moved.append(self._to_review("timeout"))
        return moved

    def answer(self, kind: str, rank: int | None = None, typed: str = "") -> tuple[int, InspectionResult]:
        """Record the answer to the part on screen; (decision id, that part). TooSoon if it has not
        been on screen `min_on_screen_s`; DecisionError / AccessDenied as record_answer raises them."""
        self.tick()
        if not self._parts:
            raise InspectorError("no part is waiting for an answer")
        head = self._parts[0]
        now = self.clock()
        on_screen = now - (now if head.shown_at is None else head.shown_at)
        if on_screen < self.policy.min_on_screen_s:
            raise TooSoon(
                f"part {head.result.inspection_id} has been on screen only {on_screen * 1000:.0f} ms;"
                f" an answer needs {self.policy.min_on_screen_s * 1000:.0f} ms (a double tap?)"
            )
        if self.log is None or self.user is None:
            raise InspectorError("no database or nobody signed in: the answer cannot be recorded")
        decision_id = record_answer(self.log, head.result, self.user, kind, rank, typed)
        self._parts.popleft()
        self._show_head()
        return decision_id, head.result

    def sign_out(self) -> list[int]:
        """Move every waiting part to the review lane (the operator leaves); the ids moved."""
        return [self._to_review("sign_out") for _ in range(len(self._parts))]

    def _show_head(self) -> None:
        if self._parts and self._parts[0].shown_at is None:
            self._parts[0].shown_at = self.clock()

    def _to_review(self, reason: str, index: int = 0) -> int:
        entry = self._parts[index]
        del self._parts[index]
        inspection_id = int(entry.result.inspection_id or 0)
        waited = None if entry.shown_at is None else round(self.clock() - entry.shown_at, 3)
        if self.log is not None:
            # Recorded before the part leaves the screen for good; a refused write propagates (the
            # part is then back at the head, so nothing is lost silently).
            try:
                self.log.record_event(
                    TO_REVIEW,
                    {
                        "reason": reason,
                        "on_screen_s": waited,
                        "waiting": self.waiting,
                        "max_wait_s": self.policy.max_wait_s,
                        "max_waiting": self.policy.max_waiting,
                    },
                    self.user,
                    subject=str(inspection_id),
                )
            except InspectorError:
                self._parts.insert(index, entry)
                raise
        self.moved += 1
        self._show_head()
        return inspection_id


def policy_from(config: QueueConfig) -> QueuePolicy:
    """The queue policy of the station configuration's [queue] section."""
    return QueuePolicy(config.max_wait_s, config.max_waiting, config.min_on_screen_ms / 1000.0)


def review_lane(log: DecisionLog, limit: int = 1000) -> list[dict[str, Any]]:
    """The inspections waiting in the review lane (unanswered), oldest first, as stored rows."""
    ids = pending_review_ids(log.sdb.conn, limit)
    return [row for row in (log.inspection(i) for i in ids) if row is not None]


def answer_review(
    log: DecisionLog, user: Session, inspection_id: int, kind: str, rank: int | None = None, typed: str = ""
) -> int:
    """Answer a part from the review lane (an operator or QA); the decision id."""
    if inspection_id not in pending_review_ids(log.sdb.conn, 1_000_000):
        raise InspectorError(
            f"inspection {inspection_id} is not in the review lane (answered already, or never moved there)"
        )
    row = log.inspection(inspection_id)
    assert row is not None
    labels = [c["label_id"] for c in sorted(json.loads(row["candidates"]), key=lambda c: c["rank"])]
    return log.record_decision(decision_for(inspection_id, labels, user, kind, rank, typed), user)
