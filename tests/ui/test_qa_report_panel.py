"""QA's report tab: the export runs in a worker and writes the HTML; the drift banner shows an
alarm until acknowledged."""

from __future__ import annotations

from pathlib import Path

from inspector.drift.monitor import DriftMonitor, DriftSettings
from inspector.drift.stats import PartStats
from inspector.store.decision_log import DecisionLog
from ui.qa.report_panel import ReportPanel


def test_export_in_a_worker_and_the_drift_banner(qtbot, tmp_path: Path) -> None:
    from inspector.config import LibraryConfig
    from inspector.library.labels import load_library

    db = tmp_path / "s.db"
    with DecisionLog.open(db) as log:
        log.library.seed_if_empty(load_library(LibraryConfig().path), "seed")
    monitor = DriftMonitor(DriftSettings(reference_parts=20, window_parts=20, check_every=10))
    panel = ReportPanel(db, monitor.banner, monitor.acknowledge)
    qtbot.addWidget(panel)
    panel.show()
    assert panel.banner.isHidden()
    for i in range(20):
        monitor.add(PartStats(0.3 + 0.01 * (i % 5), 0.2, "ok", False, 120.0 + i % 7, 2.0, "m", 1))
    for _ in range(40):
        monitor.add(PartStats(0.3, 0.2, "crack", False, 220.0, 0.5, "m", 1))  # a different camera and mix
    panel.refresh_banner()
    assert not panel.banner.isHidden() and "Drift" in panel.banner.text() and "brightness" in panel.banner.text()
    panel.ack_button.click()
    assert panel.banner.isHidden()
    out = tmp_path / "r.html"
    panel.choose_file = lambda: str(out)
    panel.from_box.setText("2000-01-01")
    panel.export()
    assert not panel.export_button.isEnabled()  # returned at once: the work is in the Task
    qtbot.waitUntil(lambda: panel.export_button.isEnabled(), timeout=20_000)
    assert "Report written" in panel.status.text() and "<html>" in out.read_text()
