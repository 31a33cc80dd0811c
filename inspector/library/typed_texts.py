"""Operators' "none of these" texts for QA: listed, adopted into the library draft, or dismissed.

An operator who answers "none of these" types what the part shows. QA sees each such answer in
force (not corrected since), grouped with the answers that say the same (case, spacing and
punctuation aside), until it is settled:
- adopted: QA turns the text into a draft edit (a description of an existing label, or a new
  label); once that draft is published, the version's 'library_edit' event names the decisions
  it adopted (Edit.typed_from), so the text is versioned with the library like any other change;
- dismissed: with a reason, as a chained 'none_of_these_dismissed' event the audit shows.
Listing needs 'view' (QA, auditor); adopting and dismissing need 'edit_library' (QA).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from inspector.errors import LibraryError
from inspector.library.draft import Edit
from inspector.library.labels import NEW_LABEL_DISPOSITION, NEW_LABEL_SEVERITY, Label
from inspector.store.decision_log import DecisionLog
from inspector.store.users import Session, authorize

DISMISSED = "none_of_these_dismissed"
_ALL = 10**9  # every row: the list must not silently stop at a page size


@dataclass(frozen=True)
class TypedText:
    """One open text and the answers that say the same; the latest wording and time come first."""

    text: str
    decided_at: str  # the latest of the group
    inspection_ids: tuple[int, ...]  # newest first
    operators: tuple[str, ...]
    decision_ids: tuple[int, ...]

    @property
    def count(self) -> int:
        """How many answers said this (the one shown included)."""
        return len(self.decision_ids)


def normalized(text: str) -> str:
    """The words of a text in lower case: 'Oily  fingerprint!' and 'oily fingerprint' say the same."""
    return " ".join(re.findall(r"\w+", text.lower()))


def settled_decisions(log: DecisionLog) -> set[int]:
    """Decision ids already adopted (named by a published 'library_edit') or dismissed."""
    done: set[int] = set()
    for e in log.events(kind=DISMISSED, limit=_ALL):
        done.update(int(i) for i in json.loads(e["detail"]).get("decision_ids", ()))
    for e in log.events(kind="library_edit", limit=_ALL):
        for change in json.loads(e["detail"]).get("changes", ()):
            done.update(int(i) for i in change.get("typed_from", ()))
    return done


def open_texts(log: DecisionLog, user: Session) -> list[TypedText]:
    """The unsettled "none of these" texts, grouped; the most often said first, then the newest."""
    authorize(log.sdb, user, "view", "list_none_of_these")
    done = settled_decisions(log)
    groups: dict[str, list[dict]] = {}
    for d in log.decisions(kind="none_of_these", limit=_ALL):
        if d["corrected_by"] is None and int(d["id"]) not in done and str(d["typed_description"]).strip():
            groups.setdefault(normalized(d["typed_description"]), []).append(d)
    items = []
    for rows in groups.values():
        rows.sort(key=lambda d: (str(d["decided_at"]), int(d["id"])), reverse=True)
        items.append(
            TypedText(
                " ".join(str(rows[0]["typed_description"]).split()),
                str(rows[0]["decided_at"]),
                tuple(dict.fromkeys(int(d["inspection_id"]) for d in rows)),
                tuple(dict.fromkeys(str(d["operator"]) for d in rows)),
                tuple(int(d["id"]) for d in rows),
            )
        )
    return sorted(items, key=lambda t: (t.count, t.decided_at), reverse=True)


def adopt_as_description(log: DecisionLog, item: TypedText, label_id: str, reason: str, user: Session) -> Edit:
    """A draft edit adding the text as a description of an active label; stage it, then publish."""
    _check(log, item, user, "adopt_none_of_these")
    log.library.library().label(label_id)  # an active label of the library in force
    return Edit("add_description", label_id, reason, item.text, typed_from=item.decision_ids)


def adopt_as_new_label(log: DecisionLog, item: TypedText, label_id: str, name: str, reason: str, user: Session) -> Edit:
    """A draft edit adding a new label described by the text: review, NEW_LABEL_SEVERITY, until QA judges it."""
    _check(log, item, user, "adopt_none_of_these")
    label_id = label_id.strip()
    label = Label(label_id, name.strip() or label_id, NEW_LABEL_DISPOSITION, NEW_LABEL_SEVERITY, (item.text,))
    return Edit("add_label", label_id, reason, label=label, typed_from=item.decision_ids)


def dismiss(log: DecisionLog, item: TypedText, reason: str, user: Session) -> int:
    """Settle a text without changing the library (a chained event with the reason); the event id."""
    _check(log, item, user, "dismiss_none_of_these")
    if not reason.strip():
        raise LibraryError("say why the text is dismissed: the reason is kept in the audit trail")
    detail = {"text": item.text, "decision_ids": list(item.decision_ids), "reason": reason.strip()}
    return log.record_event(DISMISSED, detail, user, subject=f"none of these: {item.text}"[:200])


def _check(log: DecisionLog, item: TypedText, user: Session, action: str) -> None:
    authorize(log.sdb, user, "edit_library", action)
    if set(item.decision_ids) & settled_decisions(log):
        raise LibraryError(f"\u201c{item.text}\u201d was adopted or dismissed meanwhile; reload the list")
