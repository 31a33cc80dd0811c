"""How far a held-out figure can be trusted: its 95 % interval, and a flag when the set is small.

A run on a new station may hold out only a handful of images; "top-1 1.000" on 3 images says little
(its Wilson interval is 0.44-1.00). Figures from fewer than SMALL_SET images are flagged wherever
they are shown (the QA panel, `inspector finetune`), always with their interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from inspector.report.intervals import bootstrap_interval, wilson_interval

# Below 30 images the 95 % Wilson interval of a perfect score reaches below 0.89 (0.44 at n=3), wider
# than the differences a promotion decides on (a 0.02 drop): such a figure cannot tell models apart.
SMALL_SET = 30
BOOT = 1000
_PROPORTIONS = ("top1", "top3")


def figure_intervals(result: Mapping[str, Any], boot: int = BOOT, seed: int = 0) -> dict[str, list[float]]:
    """95 % intervals from models.evaluate(..., per_image=True): Wilson for top-1/top-3, bootstrap
    for MRR and (resampling ok and defect images apart) AUROC."""
    from models.metrics import auroc

    per = result.get("per_image") or {}
    ranks = np.asarray(per.get("rank") or [], dtype=np.float64)
    if not len(ranks):
        return {}
    out = {
        "top1": list(wilson_interval(int((ranks <= 1).sum()), len(ranks))),
        "top3": list(wilson_interval(int((ranks <= 3).sum()), len(ranks))),
    }
    every = [np.arange(len(ranks))]
    boots = {"mrr": bootstrap_interval(lambda rows: (1 / ranks[rows]).mean(axis=1), every, boot, seed)}
    if per.get("defect_score") is not None:
        score, defect = np.asarray(per["defect_score"]), np.asarray(per["is_defect"], dtype=bool)
        strata = [np.flatnonzero(defect), np.flatnonzero(~defect)]
        boots["auroc_defect_vs_ok"] = bootstrap_interval(
            lambda rows: np.array([auroc(score[r], defect[r]) for r in rows]), strata, boot, seed
        )
    # A resample can only repeat what the sample shows: when every image scored alike (all ranked
    # first, say) the bootstrap gives a zero-width interval, which would read as certainty. Left out.
    out.update({k: list(v) for k, v in boots.items() if v[1] > v[0]})
    return out


def interval(metrics: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    """The figure's 95 % interval: as stored by the run, else (figures recorded before intervals
    were) Wilson from n for a proportion; None when it cannot be known."""
    stored = (metrics.get("ci") or {}).get(metric)
    if stored is not None:
        return float(stored[0]), float(stored[1])
    n, value = metrics.get("n"), metrics.get(metric)
    if metric in _PROPORTIONS and n and value is not None:
        return wilson_interval(round(float(value) * int(n)), int(n))
    return None


def is_small(metrics: Mapping[str, Any] | None) -> bool:
    """Whether figures were measured on fewer than SMALL_SET images."""
    n = (metrics or {}).get("n")
    return n is not None and int(n) < SMALL_SET


def small_set_warning(n: int, advice: str = "") -> str:
    """One sentence for a held-out set of n < SMALL_SET images (the caller names the set)."""
    return (
        f"only {n} image{'s' if n != 1 else ''} (fewer than {SMALL_SET}), so these figures are unreliable;"
        f" the 95 % intervals show how far they may be off.{' ' + advice if advice else ''}"
    )


# What makes each held-out set bigger.
ADVICE = {
    "confirmations": "Confirm more parts for firmer figures.",
    "typed_defects": "Its size is the run's forgetting_n setting.",
}


def with_interval(value: float | None, ci: tuple[float, float] | None, digits: int = 3) -> str:
    """'0.850 (95 % CI 0.62–0.95)'; '-' for no value."""
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    return text if ci is None else f"{text} (95 % CI {ci[0]:.2f}–{ci[1]:.2f})"


SET_NAMES = {"confirmations": "held-out confirmations", "typed_defects": "typed defects (shipped)"}
METRICS = (("top1", "top-1"), ("top3", "top-3"), ("mrr", "MRR"), ("auroc_defect_vs_ok", "AUROC defect vs ok"))


def _flagged(metrics: Mapping[str, Any], metric: str) -> str:
    value, ci = metrics.get(metric), interval(metrics, metric)
    return with_interval(value, ci) + (
        " (95 % CI n/a: the images scored alike)" if value is not None and not ci else ""
    )


def figure_lines(name: str, base: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[str]:
    """Lines for the CLI: base -> candidate per metric on one held-out set; with the intervals and a
    warning when the set is small."""
    title = SET_NAMES.get(name, name)
    shown = [(m, label) for m, label in METRICS if candidate.get(m) is not None]
    if not is_small(candidate):
        figures = ", ".join(f"{label} {with_interval(base.get(m), None)} -> {candidate[m]:.3f}" for m, label in shown)
        return [f"  {title} (n={candidate.get('n')}): {figures}"]
    warning = small_set_warning(int(candidate["n"]), ADVICE.get(name, ""))
    lines = [f"  {title} (n={candidate.get('n')}): WARNING: {warning}"]
    for m, label in shown:
        lines.append(f"    {label:<19}{_flagged(base, m)} -> {_flagged(candidate, m)}")
    return lines
