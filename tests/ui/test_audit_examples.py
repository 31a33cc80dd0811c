"""The audit detail shows which example images the ranking was compared with, and the good-part model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from goodstation import confirm_part, open_station, part_frame
from inspector.learning.good_model import build_good_model
from inspector.library.labels import Example
from inspector.store.decision_log import store_image
from ui.audit.view import AuditView
from ui.context import AppContext


def test_detail_shows_the_examples_behind_the_ranking(qtbot, tmp_path: Path) -> None:
    with open_station(tmp_path) as st:
        log = st.log
        qa, op = log.login("qa", "Qa-pass-123456"), log.login("op", "Op-pass-1234567")
        words_only = st.record(st.inspect(part_frame(130, 500)), op).inspection_id
        for seq in range(30):
            confirm_part(st, seq, seq, "ok", op)
        model = build_good_model(log, st.scorer, st.scoring, qa, "audit test")
        stripes = np.zeros((60, 90, 3), np.uint8)
        stripes[:, ::6] = (220, 40, 40)
        sha = store_image(log.sdb.image_root, stripes)
        log.library.add_example("scratch", Example(sha256=sha, reason="scratch on line 2", box=(0, 0, 60, 40)), qa, "r")
        st.refresh_library()
        part = st.record(st.inspect(part_frame(130, 501)), op)
        assert any(c.carried_by != "words" for c in part.ranking.candidates)

        view = AuditView(AppContext(st, None, qa))
        qtbot.addWidget(view)
        view.resize(1400, 900)
        view.show()
        assert view.open_inspection(words_only)
        assert not view.examples.isVisible()  # ranked by words alone, before any good-part model
        assert view.open_inspection(part.inspection_id)
        strip = view.examples
        assert strip.isVisible() and "example set" in strip.title.text() and model.sha256[:12] in strip.title.text()
        [shown] = strip.evidence.examples
        assert (shown.label_id, shown.example.sha256) == ("scratch", sha)
        qtbot.waitUntil(
            lambda: strip.images[0].pixmap() is not None and not strip.images[0].pixmap().isNull(), timeout=5000
        )
        assert strip.images[0].pixmap().width() <= 100  # a thumbnail of the box crop
        if os.environ.get("SCREENSHOT_DIR"):  # a picture to look at: SCREENSHOT_DIR=... pytest this file
            view.grab().save(str(Path(os.environ["SCREENSHOT_DIR"]) / "audit_examples.png"))
