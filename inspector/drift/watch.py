"""The drift monitor on a running station: told of each committed inspection (Station.recorded_listeners)
and of each committed decision (DecisionLog.decision_listeners: agreement and "none of these" rates),
it records alarms and reference restarts as chained events and holds the banner state for QA.

Parts are watched per product (each against its own reference window: a product mix that changes
is not a camera that drifted, and a shift on one product is not diluted by the others); answers
are watched over the whole station."""

from __future__ import annotations

import threading
from pathlib import Path

from inspector.drift.monitor import DECISION_METRICS, DriftAlarm, DriftMonitor, DriftSettings
from inspector.drift.stats import decision_stats, part_stats
from inspector.frame.records import DecisionCommitted, InspectionResult
from inspector.store.decision_log import DecisionLog

# Products beyond this many share the station-wide monitor ("" ): memory stays bounded.
MAX_PRODUCTS = 50


class DriftWatch:
    """Callable listener; events go through a connection of the calling thread (sqlite's rule)."""

    def __init__(self, db_path: str | Path | None, settings: DriftSettings | None = None) -> None:
        self.db_path = None if db_path is None else Path(db_path)
        self.settings = settings or DriftSettings()
        self.monitors: dict[str, DriftMonitor] = {}  # product id -> its parts' monitor
        self.monitor = self.for_product("")  # parts with no product id
        # Same windows and test, counted in answers instead of parts (answers come later, one each).
        self.decisions = DriftMonitor(
            self.settings,
            on_alarm=lambda a: self._alarm(a, "", "answers"),
            on_restart=lambda reason, _: self._restart(reason, "operator answers"),
            metrics=DECISION_METRICS,
        )
        self._local = threading.local()
        self._opened: list[DecisionLog] = []

    def for_product(self, product_id: str) -> DriftMonitor:
        """The monitor of one product's parts (created on its first part)."""
        if product_id not in self.monitors and len(self.monitors) >= MAX_PRODUCTS:
            product_id = ""
        if product_id not in self.monitors:
            self.monitors[product_id] = DriftMonitor(
                self.settings,
                on_alarm=lambda a: self._alarm(a, product_id, "parts"),
                on_restart=lambda reason, _: self._restart(reason, f"parts of product {product_id!r}"),
            )
        return self.monitors[product_id]

    def __call__(self, result: InspectionResult) -> None:
        stats = part_stats(result)
        self.for_product(stats.product_id).add(stats)

    def decided(self, done: DecisionCommitted) -> None:
        """A decision was committed (add to DecisionLog.decision_listeners)."""
        stats = decision_stats(done)
        if stats is not None:
            self.decisions.add(stats)

    def banner(self) -> str | None:
        """The text for QA's non-blocking banner, or None."""
        texts = [(f"Product {p}: " if p else "") + t for p, m in self.monitors.items() if (t := m.banner())]
        if (t := self.decisions.banner()) is not None:
            texts.append("Operator answers: " + t)
        return "\n".join(texts) if texts else None  # one line per product and one for answers

    def acknowledge(self) -> None:
        """QA saw the banner."""
        for m in (*self.monitors.values(), self.decisions):
            m.acknowledge()

    def _log(self) -> DecisionLog | None:
        if self.db_path is None:
            return None
        log = getattr(self._local, "log", None)
        if log is None:
            log = self._local.log = DecisionLog.open(self.db_path, create=False)
            self._opened.append(log)
        return log

    def _alarm(self, alarm: DriftAlarm, product_id: str, counted: str) -> None:
        log = self._log()
        if log is not None:
            log.record_event(
                "drift_alarm",
                {
                    "moved": alarm.metrics,
                    "words": alarm.words,
                    "psi": alarm.psi,
                    "parts_seen": alarm.parts_seen,
                    "library_version": alarm.library_version,
                    "test": "PSI, small-sample corrected" if self.settings.small_sample_correction else "PSI",
                    "threshold": self.settings.psi_alarm,
                    "counted": counted,
                    "product_id": product_id,
                },
                None,
                subject=alarm.model_id,
            )

    def _restart(self, reason: str, scope: str) -> None:
        log = self._log()
        if log is not None:
            log.record_event("drift_reference_restarted", {"reason": reason, "scope": scope}, None, subject="drift")

    def close(self) -> None:
        """Close the connections this watch opened (call when the station stops)."""
        for log in self._opened:
            log.close()
        self._opened.clear()
