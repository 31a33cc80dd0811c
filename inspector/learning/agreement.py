"""Agreement between the model's ranking and the operators' answers, read from the decision log.

For each answered inspection the answer in force counts: the operator's decision, or the last QA
correction of it. Rejected images (retakes) are left out: they say nothing about the ranking.
"None of these" counts as an answer the model missed, and is its own column in the confusion
table. The rank of the operator's label is the rank the decision stored (checked against the
ranking when the decision was written), so top-1 / top-3 need no re-ranking.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inspector.library.labels import Library
from inspector.store.database import parse_time
from inspector.store.decision_log import DecisionLog
from inspector.store.queries import TimeArg

NONE_OF_THESE = "none_of_these"
# Decision kinds whose answer names a label (by its rank in the stored ranking).
_LABELLED = ("confirm", "pick")


@dataclass(frozen=True)
class LabelAgreement:
    """How often the model agreed with the operators about one label."""

    label_id: str
    label_name: str
    answered: int  # inspections whose answer in force is this label
    top1: int  # ... of which the model had ranked it #1
    top3: int  # ... of which the model had ranked it within its top 3
    proposed: int  # answered inspections where the model ranked this label #1 (whatever the answer)

    @property
    def top1_rate(self) -> float | None:
        """Top-1 agreement (None without answers)."""
        return self.top1 / self.answered if self.answered else None

    @property
    def top3_rate(self) -> float | None:
        return self.top3 / self.answered if self.answered else None

    @property
    def precision(self) -> float | None:
        """Of the parts the model called this label, the share the operators confirmed."""
        return self.top1 / self.proposed if self.proposed else None


@dataclass(frozen=True)
class ConfusionTable:
    """Counts of (model's #1 label, operator's answer); the answer columns end with none_of_these."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def count(self, model_label: str, answer: str) -> int:
        """How often the model ranked `model_label` #1 and the answer was `answer` (0 if never)."""
        if model_label not in self.rows or answer not in self.columns:
            return 0
        return self.counts[self.rows.index(model_label)][self.columns.index(answer)]


@dataclass(frozen=True)
class AgreementReport:
    """Agreement figures over the inspections recorded in [from_ts, to_ts)."""

    from_ts: str | None
    to_ts: str | None
    answered: int  # inspections with an answer in force, rejected images excluded
    top1: int
    top3: int
    none_of_these: int
    rejected: int  # answered "reject image": excluded from every figure
    unanswered: int
    labels: tuple[LabelAgreement, ...]
    confusion: ConfusionTable
    names: Mapping[str, str]  # label id -> display name, retired labels included
    truncated: bool = False  # the window held more inspections than were read

    @property
    def top1_rate(self) -> float | None:
        return self.top1 / self.answered if self.answered else None

    @property
    def top3_rate(self) -> float | None:
        return self.top3 / self.answered if self.answered else None


def answers_in_force(decisions: Iterable[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """{inspection id: the decision row in force}: a correction replaces the row it corrects."""
    found: dict[int, Mapping[str, Any]] = {}
    for row in decisions:
        if row.get("corrected_by") is not None:
            continue  # a later correction holds the answer
        key = int(row["inspection_id"])
        if key not in found or int(row["id"]) > int(found[key]["id"]):
            found[key] = row
    return found


def agreement_from_rows(
    inspections: Sequence[Mapping[str, Any]],
    decisions: Iterable[Mapping[str, Any]],
    label_order: Sequence[str] = (),
    names: Mapping[str, str] | None = None,
    window: tuple[str | None, str | None] = (None, None),
    truncated: bool = False,
) -> AgreementReport:
    """The figures from inspection and decision rows as DecisionLog returns them (pure)."""
    answers = answers_in_force(decisions)
    all_names = dict(names or {})
    counts: dict[str, list[int]] = {}  # label -> [answered, top1, top3, proposed]
    pairs: dict[tuple[str, str], int] = {}
    answered = top1 = top3 = none = rejected = unanswered = 0
    for inspection in inspections:
        for c in json.loads(inspection["candidates"]):
            all_names.setdefault(c["label_id"], c["label_name"])
        answer = answers.get(int(inspection["id"]))
        if answer is None:
            unanswered += 1
            continue
        if answer["kind"] == "reject_image":
            rejected += 1
            continue
        model = str(inspection["top_label_id"])
        answered += 1
        counts.setdefault(model, [0, 0, 0, 0])[3] += 1
        if answer["kind"] in _LABELLED:
            label, rank = str(answer["label_id"]), int(answer["picked_rank"])
            stats = counts.setdefault(label, [0, 0, 0, 0])
            stats[0] += 1
            stats[1] += rank == 1
            stats[2] += rank <= 3
            top1 += rank == 1
            top3 += rank <= 3
        else:
            label = NONE_OF_THESE
            none += 1
        pairs[(model, label)] = pairs.get((model, label), 0) + 1
    order = [i for i in label_order if i in counts] + sorted(set(counts) - set(label_order))
    labels = tuple(LabelAgreement(i, all_names.get(i, i), *counts[i]) for i in order)
    rows = tuple(i for i in order if counts[i][3])
    columns = tuple(i for i in order if counts[i][0]) + ((NONE_OF_THESE,) if none else ())
    table = tuple(tuple(pairs.get((r, c), 0) for c in columns) for r in rows)
    all_names.setdefault(NONE_OF_THESE, "None of these")
    return AgreementReport(
        window[0],
        window[1],
        answered,
        top1,
        top3,
        none,
        rejected,
        unanswered,
        labels,
        ConfusionTable(rows, columns, table),
        all_names,
        truncated,
    )


def compute_agreement(
    log: DecisionLog,
    from_ts: TimeArg = None,
    to_ts: TimeArg = None,
    library: Library | None = None,
    max_inspections: int = 100_000,
) -> AgreementReport:
    """Agreement over the inspections recorded in [from_ts, to_ts) (None: open-ended).

    `library` (normally the one in force) gives the row order and display names; labels that
    only older versions had follow, named as their rankings named them.
    """
    lo = None if from_ts is None else parse_time(from_ts)
    hi = None if to_ts is None else parse_time(to_ts)
    inspections = log.inspections(from_ts=lo, to_ts=hi, limit=max_inspections)
    decisions: list[dict[str, Any]] = []
    if inspections:
        # A decision is recorded after its inspection: reading from the first inspection's time is enough.
        wanted = {int(row["id"]) for row in inspections}
        rows = log.decisions(from_ts=inspections[0]["recorded_at"], limit=20 * max_inspections)
        decisions = [row for row in rows if int(row["inspection_id"]) in wanted]
    order = library.label_ids if library is not None else ()
    names = {label.id: label.name for label in library.labels} if library is not None else {}
    return agreement_from_rows(
        inspections, decisions, order, names, (lo, hi), truncated=len(inspections) >= max_inspections
    )
