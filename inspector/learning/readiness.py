"""Whether the station has enough confirmed answers for a fine-tuning run, and what is missing.

One rule, used before a run (the QA panel disables Start and says why; `inspector finetune --dry-run`
prints it) and by the engine itself, which refuses a run that would not meet it. The held-out share
is fixed per image (its content hash), so the only remedy offered is the one an operator or QA
engineer can follow: confirm more parts, or learn from other stations' export bundles too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from inspector.learning.pairs import TrainingSet
from inspector.store.users import Session

MIN_LABELS = 2  # a ranking loss needs at least two labels to rank against each other
MIN_HELDOUT = 1  # figures need a held-out image; few of them are flagged (inspector.learning.reliability)


@dataclass(frozen=True)
class DataNeeds:
    """What a run needs and what the station has: per label (train, held-out), with display names."""

    min_train: int
    heldout_fraction: float
    per_label: Mapping[str, tuple[int, int]]
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def train(self) -> int:
        return sum(t for t, _ in self.per_label.values())

    @property
    def heldout(self) -> int:
        return sum(h for _, h in self.per_label.values())

    @property
    def trained_labels(self) -> int:
        """Labels with at least one training image."""
        return sum(1 for t, _ in self.per_label.values() if t)

    @property
    def ready(self) -> bool:
        return self.train >= self.min_train and self.trained_labels >= MIN_LABELS and self.heldout >= MIN_HELDOUT

    def name(self, label_id: str) -> str:
        """'Scratch (scratch)', or the id alone when the library names it so (or no longer has it)."""
        name = self.names.get(label_id, label_id)
        return label_id if name == label_id else f"{name} ({label_id})"

    def requirement(self) -> str:
        """The rule in one sentence."""
        return (
            f"A run needs at least {self.min_train} confirmed images for training, over at least {MIN_LABELS}"
            f" labels, and at least {MIN_HELDOUT} held-out image; {100 * self.heldout_fraction:.0f} % of the confirmed"
            " images are held out (always the same ones, chosen by image content) to measure the result."
        )

    def have(self) -> str:
        """What the station has now, in one sentence."""
        labels = ", ".join(f"{self.name(k)} {t}+{h}" for k, (t, h) in self.per_label.items()) or "none yet"
        return (
            f"This station has {self.train + self.heldout} usable confirmations: {self.train} for training"
            f" over {self.trained_labels} label{'s' if self.trained_labels != 1 else ''} and {self.heldout}"
            f" held out (per label, training+held-out: {labels})."
        )

    def shortfall(self) -> str:
        """What is missing and what to do about it; '' when ready."""
        missing = []
        if self.train < self.min_train:
            more = math.ceil((self.min_train - self.train) / max(1e-9, 1 - self.heldout_fraction))
            missing.append(f"{self.min_train - self.train} more training images (confirm about {more} more parts)")
        if self.trained_labels < MIN_LABELS:
            missing.append(f"confirmed parts of {MIN_LABELS - self.trained_labels} more label(s)")
        if self.heldout < MIN_HELDOUT:
            missing.append(
                "a held-out image (none of the confirmed images falls in the held-out share yet;"
                f" about 1 in {round(1 / self.heldout_fraction)} does)"
                if self.heldout_fraction > 0
                else "a held-out image (the held-out fraction is 0)"
            )
        if not missing:
            return ""
        return (
            f"{self.train} training images over {self.trained_labels} label(s) and {self.heldout} held out;"
            f" still needed: {'; '.join(missing)}. Confirm more parts on the line."
        )

    def as_dict(self) -> dict:
        """For `inspector finetune --dry-run --json`."""
        return {
            "ready": self.ready,
            "needs": {"train": self.min_train, "labels": MIN_LABELS, "heldout": MIN_HELDOUT},
            "has": {"train": self.train, "labels": self.trained_labels, "heldout": self.heldout},
            "heldout_fraction": self.heldout_fraction,
            "per_label": {
                k: {"name": self.names.get(k, k), "train": t, "heldout": h} for k, (t, h) in self.per_label.items()
            },
            "shortfall": self.shortfall(),
        }


def data_needs(ts: TrainingSet, min_train: int, names: Mapping[str, str] | None = None) -> DataNeeds:
    """The rule applied to a training set."""
    return DataNeeds(min_train, ts.heldout_fraction, ts.label_counts(), dict(names or {}))


def station_data_needs(db_path: str | Path, config, user: Session) -> DataNeeds:
    """Open the station's database (call it off the GUI thread) and apply the rule to its decisions
    with the run's held-out fraction and split seed; label names from the library in force."""
    from inspector.learning.sources import training_set_from
    from inspector.store.decision_log import DecisionLog
    from inspector.store.users import authorize

    with DecisionLog.open(db_path, create=False) as log:
        authorize(log.sdb, user, "view", "finetune_readiness")
        ts = training_set_from(log, heldout_fraction=config.heldout_fraction, seed=config.split_seed)
        version, library = log.library.in_force()
        names = {label.id: label.name for label in library.labels} if version else {}
    return data_needs(ts, config.min_train_pairs, names)
