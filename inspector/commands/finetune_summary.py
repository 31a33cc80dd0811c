"""`inspector finetune --dry-run`: the training set in words (or one JSON object with --json)."""

from __future__ import annotations

from typing import Any

from inspector.learning.pairs import TrainingSet
from inspector.learning.readiness import DataNeeds
from inspector.learning.reliability import SMALL_SET

# Why a decision is not a training pair, in the words QA uses (pairs.build_training_set's keys).
LEFT_OUT = {
    "superseded": "answers corrected later (the correction counts)",
    "inspection_missing": "decisions whose inspection is outside the export window",
    "no_image": "inspections without a stored image",
    "duplicate": "repeat answers about the same image (the latest counts)",
    "rejected": "images rejected by the operator (retake)",
    "none_of_these": "'none of these' answers (proposals for QA, listed below)",
    "reject_image": "images rejected by the operator (retake)",
}
KEPT_NOTES = {"relabelled": "images answered with different labels over time (kept with the latest label)"}


def training_set_text(ts: TrainingSet, needs: DataNeeds) -> str:
    """The dry run's readable report: per-label counts with names, what was left out and why, whether
    a run can start (and what is missing), a small held-out set, and the proposals."""
    lines = [
        f"Training set: {len(ts.train)} training / {len(ts.heldout)} held-out confirmations"
        f" (held-out fraction {100 * ts.heldout_fraction:.0f} %, split seed {ts.seed})",
        f"  {'label':<32}{'training':>9}{'held out':>10}",
    ]
    for label, (n_train, n_held) in needs.per_label.items():
        lines.append(f"  {needs.name(label):<32}{n_train:>9}{n_held:>10}")
    lines.append(f"  {'total':<32}{len(ts.train):>9}{len(ts.heldout):>10}")
    left = {k: v for k, v in ts.excluded.items() if k not in KEPT_NOTES}
    if left:
        lines.append("Left out:")
        lines += [f"  {n:>5} {LEFT_OUT.get(k, k.replace('_', ' '))}" for k, n in left.items()]
    lines += [f"Note: {n} {KEPT_NOTES[k]}" for k, n in ts.excluded.items() if k in KEPT_NOTES]
    if needs.ready:
        lines.append("Ready: a run can start.")
    else:
        lines.append(f"Not ready: {needs.shortfall()} Other stations' export bundles can add data (--bundle).")
        lines.append(f"  ({needs.requirement()})")
    if 0 < len(ts.heldout) < SMALL_SET:
        lines.append(
            f"Small held-out set: {len(ts.heldout)} image{'s' if len(ts.heldout) != 1 else ''} (fewer than"
            f" {SMALL_SET}); the run's figures on it"
            " will be flagged as unreliable and shown with 95 % intervals."
        )
    if ts.proposals:
        lines.append(f"'None of these' descriptions awaiting QA ({len(ts.proposals)}):")
        lines += [
            f"  {p.text!r} by {p.operator} on {p.decided_at} (model said {p.model_top_label})" for p in ts.proposals
        ]
    return "\n".join(lines)


def training_set_json(ts: TrainingSet, needs: DataNeeds) -> dict[str, Any]:
    """The same as one JSON object, for scripts."""
    return {
        "train": len(ts.train),
        "heldout": len(ts.heldout),
        "heldout_fraction": ts.heldout_fraction,
        "split_seed": ts.seed,
        "excluded": dict(ts.excluded),
        "readiness": needs.as_dict(),
        "small_heldout": 0 < len(ts.heldout) < SMALL_SET,
        "proposals": [
            {
                "text": p.text,
                "operator": p.operator,
                "decided_at": p.decided_at,
                "model_top_label": p.model_top_label,
                "inspection_id": p.inspection_id,
            }
            for p in ts.proposals
        ],
    }
