"""The Audit view's search tab: words find the matching past part with its thumbnail, in a worker,
and a click opens that inspection in the detail pane."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fakes import HashScorer
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.frame.records import Frame
from inspector.library.labels import seed_library_dir
from inspector.search.indexer import backfill
from inspector.search.vectors import VectorStore
from inspector.station import Station
from ui.audit.view import AuditView
from ui.context import AppContext

TEXTS = {
    10: "a thin straight scratch across the surface",
    20: "a jagged crack running through the material",
    30: "a clean surface with no visible defects",
}


def test_search_tab_shows_thumbnails_and_opens_the_clicked_inspection(qtbot, tmp_path: Path) -> None:
    config = StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )
    with Station.open(config, scorer=HashScorer("hash-model", dim=64, by_red=TEXTS)) as st:
        log = st.log
        log.users.create_first_admin("admin", "admin-pass-1")
        log.users.add_user("aud1", "auditor", "aud1-pass-1", log.login("admin", "admin-pass-1"), temporary=False)
        log.users.add_user("op1", "operator", "op1-pass-1", log.login("admin", "admin-pass-1"), temporary=False)
        op = log.login("op1", "op1-pass-1")
        ids = {}
        for seq, red in enumerate([10, 20, 30, 20, 30], start=1):
            rgb = np.zeros((48, 64, 3), np.uint8)
            rgb[..., 0] = red
            rgb[8:40, 8 * seq : 8 * seq + 8, 1] = 200  # something to see in the thumbnail
            ids.setdefault(red, []).append(
                st.record(st.inspect(Frame(rgb, datetime.now(UTC), "cam", seq)), op).inspection_id
            )
        assert backfill(log, VectorStore(log.sdb.path), st.scorer) == 5
        view = AuditView(AppContext(st, config, log.login("aud1", "aud1-pass-1")))
        qtbot.addWidget(view)
        view.resize(1200, 700)
        view.show()
        view.tabs.setCurrentWidget(view.search)
        panel = view.search
        panel.box.setText(TEXTS[20])
        panel.run_query(k=3)
        qtbot.waitUntil(lambda: panel.results.count() == 3 and panel.button.isEnabled(), timeout=10_000)
        first, second = (panel.results.item(i) for i in range(2))
        assert {int(first.data(0x0100)), int(second.data(0x0100))} == set(ids[20])
        assert not first.icon().isNull()  # the stored image as a thumbnail
        assert "5 of 5 inspections searchable" in panel.status.text()
        panel.results.itemClicked.emit(second)
        assert view.detail.record is not None and view.detail.record.id == int(second.data(0x0100))
        if os.environ.get("SEARCH_SCREENSHOT"):
            view.grab().save(os.environ["SEARCH_SCREENSHOT"])
        panel.box.setText("#" + str(ids[30][0]))
        panel.run_query(k=1)
        qtbot.waitUntil(lambda: panel.results.count() == 1 and panel.button.isEnabled(), timeout=10_000)
        assert int(panel.results.item(0).data(0x0100)) == ids[30][1]
        panel.close_worker()
