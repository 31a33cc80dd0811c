"""The drift monitor on a running station: told of each committed inspection (Station.recorded_listeners),
it records alarms and reference restarts as chained events and holds the banner state for QA."""

from __future__ import annotations

import threading
from pathlib import Path

from inspector.drift.monitor import DriftAlarm, DriftMonitor, DriftSettings
from inspector.drift.stats import part_stats
from inspector.frame.records import InspectionResult
from inspector.store.decision_log import DecisionLog


class DriftWatch:
    """Callable listener; events go through a connection of the calling thread (sqlite's rule)."""

    def __init__(self, db_path: str | Path | None, settings: DriftSettings | None = None) -> None:
        self.db_path = None if db_path is None else Path(db_path)
        self.monitor = DriftMonitor(settings or DriftSettings(), on_alarm=self._alarm, on_restart=self._restart)
        self._local = threading.local()
        self._opened: list[DecisionLog] = []

    def __call__(self, result: InspectionResult) -> None:
        self.monitor.add(part_stats(result))

    def banner(self) -> str | None:
        """The text for QA's non-blocking banner, or None."""
        return self.monitor.banner()

    def _log(self) -> DecisionLog | None:
        if self.db_path is None:
            return None
        log = getattr(self._local, "log", None)
        if log is None:
            log = self._local.log = DecisionLog.open(self.db_path, create=False)
            self._opened.append(log)
        return log

    def _alarm(self, alarm: DriftAlarm) -> None:
        log = self._log()
        if log is not None:
            log.record_event(
                "drift_alarm",
                {
                    "moved": alarm.metrics,
                    "psi": alarm.psi,
                    "parts_seen": alarm.parts_seen,
                    "library_version": alarm.library_version,
                    "test": "PSI",
                    "threshold": self.monitor.settings.psi_alarm,
                },
                None,
                subject=alarm.model_id,
            )

    def _restart(self, reason: str, _: int) -> None:
        log = self._log()
        if log is not None:
            log.record_event("drift_reference_restarted", {"reason": reason}, None, subject="drift")

    def close(self) -> None:
        """Close the connections this watch opened (call when the station stops)."""
        for log in self._opened:
            log.close()
        self._opened.clear()
