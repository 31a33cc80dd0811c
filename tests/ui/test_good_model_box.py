"""QA builds the good-part model from the QA view (in a worker); the station uses it from the next frame."""

from __future__ import annotations

import os
from pathlib import Path

from goodstation import confirm_part, open_station, part_frame
from ui.context import AppContext
from ui.qa.good_model_box import GoodModelBox


def test_qa_builds_and_the_station_uses_it(qtbot, tmp_path: Path) -> None:
    with open_station(tmp_path) as st:
        qa, op = st.log.login("qa", "Qa-pass-123456"), st.log.login("op", "Op-pass-1234567")
        for seq in range(30):
            confirm_part(st, seq, seq, "ok", op)
        assert not GoodModelBox(AppContext(st, None, op)).build_button.isEnabled()
        box = GoodModelBox(AppContext(st, None, qa))
        qtbot.addWidget(box)
        box.resize(900, 400)
        box.show()
        assert "No good-part model" in box.state.text()
        assert not box.build()  # no reason yet
        box.reason.setText("first thirty confirmed good parts")
        assert box.build()
        qtbot.waitUntil(lambda: not box.busy(), timeout=20000)
        assert st.good_model is not None and st.good_model.sha256[:12] in box.state.text()
        assert st.inspect(part_frame(130, 400)).good_part.flagged
        if os.environ.get("SCREENSHOT_DIR"):
            box.grab().save(str(Path(os.environ["SCREENSHOT_DIR"]) / "qa_good_model.png"))
