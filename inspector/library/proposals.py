"""Examples from logged parts: an operator proposes "this part is an example of X", QA accepts.

A proposal is an event on the record (who, which inspection, which label, why); it changes
nothing. QA turns it (or any logged inspection) into an add_example draft edit, previewed and
published like every other library change, so the library is never changed by an operator alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from inspector.errors import LibraryError
from inspector.frame.imageio import read_image_file
from inspector.library.draft import Edit
from inspector.library.examples import read_example
from inspector.library.labels import Example
from inspector.store.decision_log import DecisionLog, store_image
from inspector.store.users import Session, authorize

PROPOSED, SETTLED = "example_proposed", "example_proposal_settled"


def propose_example(log: DecisionLog, inspection_id: int, label_id: str, reason: str, user: Session) -> int:
    """Record an operator's proposal that a logged part be an example of a label; the event id."""
    authorize(log.sdb, user, "decide", "propose_example")
    sha = _stored_image(log, inspection_id)
    log.library.library().label(label_id)  # an active label of the library in force
    if not reason.strip():
        raise LibraryError("say what the part shows: the reason is kept with the example")
    return log.record_event(
        PROPOSED,
        {"inspection_id": int(inspection_id), "label_id": label_id, "reason": reason.strip(), "image_sha256": sha},
        user,
        subject=f"inspection {inspection_id}",
    )


def open_proposals(log: DecisionLog) -> list[dict]:
    """Proposals QA has not yet accepted or dismissed (oldest first): event id, inspection, label, reason, who."""
    settled = {int(e["subject"]) for e in log.events(kind=SETTLED, limit=100_000)}
    out = []
    for e in log.events(kind=PROPOSED, limit=100_000):
        if int(e["id"]) not in settled:
            out.append({"id": int(e["id"]), "user": e["user"], **json.loads(e["detail"])})
    return out


def settle_proposal(log: DecisionLog, proposal_id: int, accepted: bool, user: Session) -> None:
    """QA closes a proposal (accepted: its draft edit was published; or dismissed)."""
    authorize(log.sdb, user, "edit_library", "settle_example_proposal")
    log.record_event(SETTLED, {"accepted": bool(accepted)}, user, subject=str(int(proposal_id)))


def example_from_inspection(
    log: DecisionLog, inspection_id: int, label_id: str, reason: str, box: tuple[int, int, int, int] | None = None
) -> Edit:
    """A draft edit making a logged part's image an example of a label (its image is already stored)."""
    example = Example(sha256=_stored_image(log, inspection_id), reason=reason.strip(), box=box)
    read_example(example, label_id, log.sdb.image_root)  # decodes, and the box fits
    return Edit("add_example", label_id, reason, example=example)


def example_from_file(
    log: DecisionLog, path: str | Path, label_id: str, reason: str, box: tuple[int, int, int, int] | None = None
) -> Edit:
    """A draft edit adding an image file as an example: decoded safely, then stored by hash."""
    rgb = read_example(Example(path=str(path), box=box), label_id)  # one-line LibraryError for a bad file
    example = Example(sha256=store_image(log.sdb.image_root, rgb), reason=reason.strip(), box=box)
    return Edit("add_example", label_id, reason, example=example)


def _stored_image(log: DecisionLog, inspection_id: int) -> str:
    row = log.inspection(int(inspection_id))
    if row is None:
        raise LibraryError(f"inspection {inspection_id} does not exist")
    if not row["image_sha256"] or not log.image_path(row["image_sha256"]).is_file():
        raise LibraryError(f"inspection {inspection_id} has no stored image; it cannot be an example")
    read_image_file(log.image_path(row["image_sha256"]))
    return str(row["image_sha256"])
