"""Impact preview: what an unpublished library edit would change on recently inspected parts.

The last N logged inspections are re-ranked twice from their stored images, with the library in
force and with the draft; each image is embedded once, and both rankings use that embedding. The
comparison is between those two rankings, not against the ranking recorded at the time: the
recorded one may come from an older library version or another model, and the preview must show
the effect of this edit alone.

Two steps, because a sqlite connection belongs to the thread that opened it:
`plan_impact` reads the log and compiles the draft (on the thread that owns the station);
`run_impact` touches no database, so a worker thread may run it with progress and cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inspector.errors import InspectorError
from inspector.frame.ranking import RankingIndex, rank
from inspector.frame.scorer import Scorer
from inspector.learning.agreement import NONE_OF_THESE, answers_in_force
from inspector.library.labels import Library
from inspector.station import Station
from inspector.store.decision_log import read_evidence_image

Progress = Callable[[int, int, str], None]
Cancelled = Callable[[], bool]
# Images per scorer call: large enough to use the model's batching, small enough that cancel
# and the progress bar respond within a second on a CPU.
BATCH_SIZE = 16


@dataclass(frozen=True)
class ImpactRow:
    """One inspection whose top-1 label the draft would change."""

    inspection_id: int
    recorded_at: str
    old_label: str
    old_name: str
    old_probability: float
    new_label: str
    new_name: str
    new_probability: float
    answer: str | None  # the operator's answer in force (a label id or none_of_these), None if unanswered

    @property
    def effect(self) -> str:
        """'fixes' when the draft's #1 now matches the answer, 'breaks' when it no longer does, else ''."""
        if self.answer is None:
            return ""
        if self.new_label == self.answer:
            return "fixes"
        return "breaks" if self.old_label == self.answer else ""


@dataclass(frozen=True)
class ImpactPlan:
    """Everything run_impact needs, read from the log in advance."""

    items: tuple[tuple[int, str, Path], ...]  # (inspection id, recorded_at, image file), oldest first
    answers: dict[int, str]
    current: RankingIndex
    draft: RankingIndex
    logit_scale: float
    notes: tuple[str, ...] = ()  # inspections left out before ranking, and why


@dataclass(frozen=True)
class ImpactReport:
    """The outcome: the rows that change, and how much was checked."""

    checked: int
    total: int
    changed: tuple[ImpactRow, ...]
    complete: bool  # False when cancelled part-way: `changed` covers the `checked` inspections only
    notes: tuple[str, ...] = field(default=())

    @property
    def fixes(self) -> int:
        return sum(row.effect == "fixes" for row in self.changed)

    @property
    def breaks(self) -> int:
        return sum(row.effect == "breaks" for row in self.changed)


def plan_impact(station: Station, draft: Library, last_n: int = 200) -> ImpactPlan:
    """Read the last `last_n` inspections and compile both libraries (uses the station's database)."""
    if station.log is None:
        raise InspectorError("this station was opened without a database; there are no logged inspections")
    if last_n < 1:
        raise InspectorError(f"preview at least one inspection (asked for {last_n})")
    rows = list(reversed(station.log.inspections(limit=last_n, newest_first=True)))
    items, notes = [], []
    for row in rows:
        if row["image_sha256"] is None:
            notes.append(f"inspection {row['id']}: no image was stored; left out")
        else:
            items.append((int(row["id"]), str(row["recorded_at"]), station.log.image_path(row["image_sha256"])))
    answers: dict[int, str] = {}
    if rows:
        wanted = {int(row["id"]) for row in rows}
        decisions = [
            d
            for d in station.log.decisions(from_ts=rows[0]["recorded_at"], limit=20 * last_n)
            if int(d["inspection_id"]) in wanted
        ]
        for inspection_id, d in answers_in_force(decisions).items():
            if d["kind"] in ("confirm", "pick"):
                answers[inspection_id] = str(d["label_id"])
            elif d["kind"] == "none_of_these":
                answers[inspection_id] = NONE_OF_THESE
    # The draft's descriptions go through the station's embedding cache: only new texts are embedded.
    return ImpactPlan(
        tuple(items), answers, station.index, station.index_for(draft), float(station.scorer.logit_scale), tuple(notes)
    )


def run_impact(
    plan: ImpactPlan,
    scorer: Scorer,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImpactReport:
    """Embed the stored images in batches and compare both rankings (no database: thread-safe)."""
    total = len(plan.items)
    changed: list[ImpactRow] = []
    notes = list(plan.notes)
    checked = 0
    if progress:
        progress(0, total, f"re-ranking {total} inspections")
    for start in range(0, total, batch_size):
        if cancelled and cancelled():
            return ImpactReport(checked, total, tuple(changed), False, tuple(notes))
        batch, images = [], []
        for inspection_id, recorded_at, path in plan.items[start : start + batch_size]:
            try:
                images.append(read_evidence_image(path))
                batch.append((inspection_id, recorded_at))
            except InspectorError as exc:  # a missing or damaged file must not hide the other results
                notes.append(f"inspection {inspection_id}: {exc}")
        if images:
            embeddings = np.asarray(scorer.embed_images(images), dtype=np.float32)
            for (inspection_id, recorded_at), embedding in zip(batch, embeddings):
                row = _compare(plan, inspection_id, recorded_at, embedding)
                if row is not None:
                    changed.append(row)
        checked = min(start + batch_size, total)
        if progress:
            progress(checked, total, f"re-ranked {checked} of {total} inspections; {len(changed)} change")
    return ImpactReport(checked, total, tuple(changed), True, tuple(notes))


def _compare(plan: ImpactPlan, inspection_id: int, recorded_at: str, embedding: np.ndarray) -> ImpactRow | None:
    old = rank(embedding, plan.current, plan.logit_scale, top_k=1).top
    new = rank(embedding, plan.draft, plan.logit_scale, top_k=1).top
    if old.label_id == new.label_id:
        return None
    return ImpactRow(
        inspection_id,
        recorded_at,
        old.label_id,
        old.label_name,
        old.probability,
        new.label_id,
        new.label_name,
        new.probability,
        plan.answers.get(inspection_id),
    )
