"""QA's report tab: the export runs in a worker and writes the HTML; the drift banner shows an
alarm until acknowledged."""

from __future__ import annotations

from datetime import UTC
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
    # A versus model goes to the report (here one that is not registered: the report says so, not written).
    out.unlink()
    panel.versus_box.setText("0123456789abcdef")
    panel.export()
    qtbot.waitUntil(lambda: panel.export_button.isEnabled(), timeout=20_000)
    assert "Report not written" in panel.status.text() and "0123456789abcdef" in panel.status.text()
    assert not out.exists()


def test_qa_view_has_search_and_opens_a_found_inspection(qtbot, tmp_path: Path) -> None:
    from datetime import datetime

    import numpy as np

    from fakes import HashScorer
    from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
    from inspector.frame.records import Frame
    from inspector.search.indexer import backfill
    from inspector.search.vectors import VectorStore
    from inspector.station import Station
    from ui.context import AppContext
    from ui.qa.view import QAView

    config = StationConfig(library=LibraryConfig(LibraryConfig().path), database=DatabaseConfig(str(tmp_path / "s.db")))
    with Station.open(config, scorer=HashScorer("hash-model", dim=64, image_text="a crack")) as st:
        st.log.users.create_first_admin("admin", "admin-pass-1")
        st.log.users.add_user("qa1", "qa", "qa1-pass-12", st.log.login("admin", "admin-pass-1"), temporary=False)
        qa = st.log.login("qa1", "qa1-pass-12")
        st.record(st.inspect(Frame(np.zeros((8, 8, 3), np.uint8), datetime.now(UTC), "cam", 1)), qa)
        backfill(st.log, VectorStore(st.log.sdb.path), st.scorer)
        view = QAView(AppContext(st, config, qa))
        qtbot.addWidget(view)
        view.search.box.setText("a crack")
        view.search.run_query()
        qtbot.waitUntil(lambda: view.search.results.count() == 1, timeout=10_000)
        view.search.results.itemClicked.emit(view.search.results.item(0))
        assert view.found_dialog.isVisible() and "Inspection 1" in view.found_dialog.windowTitle()
        view.search.close_worker()
        view.shutdown()
