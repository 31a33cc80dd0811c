"""The drift monitor: the last `window_parts` parts against a reference window, by PSI.

Test: the population stability index, PSI = sum over bins of (w - r) * ln(w / r), where r and w
are the reference's and the window's shares per bin. Continuous statistics (score, margin,
brightness, sharpness) use `bins` bins cut at the reference's quantiles; the #1 label mix uses
one bin per label; rates (review lane, open set, none of these, agreement) use two bins. Shares are
smoothed by half a part per bin so an empty bin is finite. With `small_sample_correction` (the
default) the PSI that sampling alone gives samples of these sizes, (bins - 1) x (1/reference + 1/window),
about 0.06 for 10 bins, 500 and 200 parts, is subtracted first, so the threshold means a change of the
distribution, not of the window size. An alarm needs that PSI >= `psi_alarm` on `consecutive` checks
in a row (one check every `check_every` parts). Chosen on validation seeds in bench/drift_novelty.py:
no alarm on 50,000 parts of another pool of the same line, every shift there within 500 parts.

The reference is the first `reference_parts` parts after a (re)start; it restarts by itself when
a part was ranked by another model or library version (a promotion, a library edit).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from inspector.drift.stats import DecisionStats, PartStats
from inspector.drift.words import describe

CONTINUOUS = ("score", "margin", "brightness", "sharpness")
CATEGORICAL = ("label",)
RATES = ("review", "open_set", "none_of_these", "agreed")
ALL_METRICS = (*CONTINUOUS, *CATEGORICAL, *RATES)
# The operator's answers arrive later than the parts, one per decision (DriftWatch.decided).
DECISION_METRICS = ("agreed", "none_of_these")


@dataclass(frozen=True)
class DriftSettings:
    """[drift] in the station config."""

    enabled: bool = True
    reference_parts: int = 500
    window_parts: int = 200
    check_every: int = 50
    psi_alarm: float = 0.3
    consecutive: int = 2
    bins: int = 10
    # Subtract the PSI that sampling alone gives two same-distribution samples of these sizes,
    # (bins - 1) * (1 / reference_parts + 1 / window_parts), before comparing with psi_alarm.
    small_sample_correction: bool = True


@dataclass(frozen=True)
class DriftAlarm:
    """Which statistics moved, by how much, after how many parts since the reference was complete."""

    metrics: dict[str, float]  # metric -> PSI, those at or over the threshold
    parts_seen: int  # parts since the reference window was full
    model_id: str
    library_version: int
    psi: dict[str, float] = field(default_factory=dict)  # every metric's PSI at the alarm
    words: dict[str, str] = field(default_factory=dict)  # metric -> what moved, in plain words

    def text(self) -> str:
        order = sorted(self.metrics.items(), key=lambda t: -t[1])
        said = [(self.words.get(m, m), f"PSI {v:.2f}") for m, v in order]
        # "... (reference 89 %, PSI 0.76)": one parenthesis per metric.
        moved = "; ".join(w[:-1] + f", {p})" if w.endswith(")") else f"{w} ({p})" for w, p in said)
        if set(self.metrics) <= set(DECISION_METRICS):  # the answers moved, not the images
            advice = "Check recent library edits, new part types and how operators answer."
        else:
            advice = "Check the camera, lighting and parts."
        return f"Drift against the reference window: {moved}. {advice}"


def psi(reference: np.ndarray, window: np.ndarray) -> float:
    """PSI of two count vectors over the same bins (half-part smoothing)."""
    r = (reference + 0.5) / (reference.sum() + 0.5 * len(reference))
    w = (window + 0.5) / (window.sum() + 0.5 * len(window))
    return float(np.sum((w - r) * np.log(w / r)))


def null_psi(reference: np.ndarray, window: np.ndarray) -> float:
    """The PSI two samples of these sizes from one distribution show on average (PSI is about
    chi-square(bins - 1) times 1/n_ref + 1/n_window); bins empty in both do not count."""
    used = int(np.count_nonzero((reference + window) > 0))
    return max(used - 1, 0) * (1.0 / max(float(reference.sum()), 1.0) + 1.0 / max(float(window.sum()), 1.0))


class DriftMonitor:
    """Feed it one PartStats per part (add); it returns a DriftAlarm when one is raised."""

    def __init__(
        self,
        settings: DriftSettings = DriftSettings(),
        *,
        on_alarm: Callable[[DriftAlarm], None] | None = None,
        on_restart: Callable[[str, int], None] | None = None,
        metrics: tuple[str, ...] = ALL_METRICS,
    ) -> None:
        self.settings = settings
        self.metrics = metrics  # which fields of the fed items are compared (PartStats or DecisionStats)
        self.on_alarm, self.on_restart = on_alarm, on_restart
        self.alarm: DriftAlarm | None = None  # the banner state: set until acknowledged
        self.last_psi: dict[str, float] = {}
        self._restart("start", 0)

    def _restart(self, model_id: str, library_version: int) -> None:
        self._reference: list[PartStats] = []
        self._window: deque[PartStats] = deque(maxlen=self.settings.window_parts)
        self._key = (model_id, library_version)
        self._edges: dict[str, np.ndarray] = {}
        self._ref_counts: dict[str, np.ndarray] = {}
        self._labels: list[str] = []
        self._since_ref = 0
        self._streak = 0

    def restart(self, reason: str, model_id: str = "", library_version: int = 0) -> None:
        """Start a new reference window (a model promotion, a library change, QA's request)."""
        self._restart(model_id, library_version)
        self.alarm = None
        if self.on_restart is not None:
            self.on_restart(reason, len(self._reference))

    def acknowledge(self) -> None:
        """QA saw the banner: clear it (the next alarm raises it again)."""
        self.alarm = None

    def banner(self) -> str | None:
        """The non-blocking banner text for QA, or None."""
        return None if self.alarm is None else self.alarm.text()

    def add(self, part: PartStats | DecisionStats) -> DriftAlarm | None:
        """Count one part; a DriftAlarm when this part completes an alarming check."""
        s = self.settings
        if not s.enabled:
            return None
        key = (part.model_id, part.library_version)
        if key != self._key and self._key != ("start", 0):
            self.restart("the model or library version changed", *key)
        self._key = key
        if len(self._reference) < s.reference_parts:
            self._reference.append(part)
            if len(self._reference) == s.reference_parts:
                self._freeze()
            return None
        self._window.append(part)
        self._since_ref += 1
        if len(self._window) < s.window_parts or self._since_ref % s.check_every:
            return None
        self.last_psi = self._check()
        moved = {m: v for m, v in self.last_psi.items() if v >= s.psi_alarm}
        self._streak = self._streak + 1 if moved else 0
        if self._streak >= s.consecutive and self.alarm is None:
            words = {m: describe(m, self._reference, self._window) for m in moved}
            self.alarm = DriftAlarm(
                moved, self._since_ref, part.model_id, part.library_version, dict(self.last_psi), words
            )
            if self.on_alarm is not None:
                self.on_alarm(self.alarm)
            return self.alarm
        return None

    def _freeze(self) -> None:
        bins = self.settings.bins
        for m in (m for m in self.metrics if m in CONTINUOUS):
            values = np.array([getattr(p, m) for p in self._reference], np.float64)
            edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
            self._edges[m] = edges
            self._ref_counts[m] = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        if "label" in self.metrics:
            self._labels = sorted({p.label for p in self._reference})

    def _counts(self, parts, metric: str) -> np.ndarray | None:
        if metric in CONTINUOUS:
            values = np.array([getattr(p, metric) for p in parts], np.float64)
            edges = self._edges[metric]
            return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        if metric == "label":
            index = {lab: i for i, lab in enumerate(self._labels)}
            return np.bincount([index.get(p.label, len(self._labels)) for p in parts], minlength=len(self._labels) + 1)
        flags = [getattr(p, metric) for p in parts]
        known = [bool(f) for f in flags if f is not None]
        if len(known) < 30:  # too few answers to compare a rate
            return None
        return np.array([len(known) - sum(known), sum(known)])

    def _check(self) -> dict[str, float]:
        out = {}
        for m in self.metrics:
            window = self._counts(self._window, m)
            ref = self._ref_counts[m] if m in CONTINUOUS else self._counts(self._reference, m)
            if window is not None and ref is not None:
                r, w = ref.astype(np.float64), window.astype(np.float64)
                value = psi(r, w)
                if self.settings.small_sample_correction:
                    value = max(0.0, value - null_psi(r, w))
                out[m] = value
        return out
