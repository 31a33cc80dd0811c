"""`inspector eval`'s readable report: the figures in words, "n/a (why)" instead of None, per-label
recall with the labels' names, and the confusion table (true label rows x predicted columns)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inspector.library.labels import Library

_FIGURES = (
    ("top1", "top-1 accuracy"),
    ("top3", "top-3 accuracy"),
    ("mrr", "mean reciprocal rank"),
    ("ndcg5", "nDCG@5"),
    ("auroc_defect_vs_ok", "AUROC defect vs ok"),
    ("modality_gap", "modality gap"),
)


def _auroc_missing(library: Library, counts: Mapping[str, int]) -> str:
    if not library.ok_label_ids:
        return "n/a (the library has no ok label: accept, severity 0)"
    ok = sum(counts.get(k, 0) for k in library.ok_label_ids)
    return f"n/a (needs both ok and defect images; the data has {ok} ok of {sum(counts.values())})"


def confusion_lines(confusion: Mapping[str, Any]) -> list[str]:
    """The confusion matrix as aligned text: one row per true label, one column per predicted label."""
    labels, matrix = list(confusion["labels"]), confusion["matrix"]
    width = max(16, *(len(x) for x in labels)) + 2
    cell = max(5, *(len(x) + 1 for x in labels))
    corner = "true \\ predicted"
    lines = [f"{corner:<{width}}" + "".join(f"{x:>{cell}}" for x in labels) + f"{'images':>{cell + 2}}"]
    for label, row in zip(labels, matrix):
        lines.append(f"{label:<{width}}" + "".join(f"{v:>{cell}}" for v in row) + f"{sum(row):>{cell + 2}}")
    return lines


def eval_text(metrics: Mapping[str, Any], library: Library) -> str:
    """The readable report of models.evaluate / evaluate_with_examples output."""
    confusion = metrics.get("confusion")
    counts = dict(zip(confusion["labels"], (sum(r) for r in confusion["matrix"]))) if confusion else {}
    model = str(metrics.get("model_id") or "")[:12]
    lines = [
        f"model {model} on {metrics['n']} images"
        + (f" ({metrics['aggregate']} over descriptions)" if metrics.get("aggregate") else "")
    ]
    for key, name in _FIGURES:
        if key not in metrics:
            continue
        value = metrics[key]
        if value is None:
            text = _auroc_missing(library, counts) if key == "auroc_defect_vs_ok" else "n/a"
        else:
            text = f"{value:.3f}"
        lines.append(f"  {name:<22}{text}")
    lines.append("recall per label (share of its images ranked first):")
    for label_id, recall in metrics["per_label_recall"].items():
        name = library.label(label_id).name if label_id in library.label_ids else label_id
        shown = name if name == label_id else f"{name} ({label_id})"
        n = counts.get(label_id)
        text = "n/a (no images of this label in --data)" if recall is None else f"{recall:.3f}"
        lines.append(f"  {shown:<30}{text}" + (f"  of {n} images" if n else ""))
    if confusion:
        lines.append("confusion (rows: true label, columns: predicted label; image counts):")
        lines += [f"  {line}" for line in confusion_lines(confusion)]
    if "examples" in metrics:  # ranked with words and examples (library format 2 or --shots)
        per = ", ".join(f"{k} {v}" for k, v in metrics["examples"].items())
        how = f" (--shots {metrics['shots']} --seed {metrics['seed']})" if metrics.get("shots") else ""
        lines.append(f"examples per label{how}: {per}")
    return "\n".join(lines)
