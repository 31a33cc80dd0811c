"""The operator proposes the part on screen as an example (E or the button); QA sees the proposal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from fakes import HashScorer
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.frame.records import Frame
from inspector.library.labels import seed_library_dir
from inspector.library.proposals import open_proposals
from inspector.station import Station
from ui.context import AppContext
from ui.operator.view import OperatorView

SCRATCH, CRACK = 10, 20
TEXTS = {SCRATCH: "a thin straight scratch across the surface", CRACK: "a jagged crack running through the material"}


@pytest.fixture()
def station(tmp_path: Path, add_accounts):
    config = StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )
    with Station.open(config, scorer=HashScorer("fake-model", by_red=TEXTS, dim=64)) as st:
        yield st, config, add_accounts(st.log, {"op1": "operator", "aud1": "auditor"}, sign_in=True)


def _view(qtbot, tmp_path, station, who: str) -> OperatorView:
    st, config, users = station
    view = OperatorView(
        AppContext(st, config, users[who]),
        None,
        settings=QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat),
    )
    qtbot.addWidget(view)
    view.resize(1100, 700)
    view.show()
    return view


def _part(st: Station, red: int, user, seq: int = 1):
    rgb = np.zeros((12, 16, 3), np.uint8)
    rgb[..., 0] = red
    return st.record(st.inspect(Frame(rgb, datetime.now(UTC), "cam", seq)), user)


def test_key_e_proposes_the_selected_candidate(qtbot, tmp_path, station) -> None:
    st, _config, users = station
    view = _view(qtbot, tmp_path, station, "op1")
    part = _part(st, CRACK, users["op1"])
    view.show_result(part)
    second = part.ranking.candidates[1]
    qtbot.keyClick(view, Qt.Key.Key_Down)  # the operator selects #2
    qtbot.keyClick(view, Qt.Key.Key_E)
    assert view.proposer.open and second.label_name in view.proposer.prompt.text()
    qtbot.keyClick(view.proposer.reason, Qt.Key.Key_Return)  # no reason: refused inline, nothing recorded
    assert open_proposals(st.log) == [] and "reason" in view.proposer.prompt.text()
    qtbot.keyClicks(view.proposer.reason, "hairline crack, upper edge")
    qtbot.keyClick(view.proposer.reason, Qt.Key.Key_Return)
    [proposal] = open_proposals(st.log)
    assert (proposal["inspection_id"], proposal["label_id"], proposal["reason"], proposal["user"]) == (
        part.inspection_id,
        second.label_id,
        "hairline crack, upper edge",
        "op1",
    )
    assert not view.proposer.open and st.log.decisions() == []  # a proposal is not an answer
    assert st.log.library.current_version() == 1  # and changes no library


def test_escape_cancels_and_an_auditor_has_no_button(qtbot, tmp_path, station) -> None:
    st, _config, users = station
    view = _view(qtbot, tmp_path, station, "op1")
    view.show_result(_part(st, SCRATCH, users["op1"]))
    view.proposer.button.click()
    qtbot.keyClicks(view.proposer.reason, "e")  # the letter E types while the line is open
    assert view.proposer.reason.text() == "e"
    qtbot.keyClick(view.proposer.reason, Qt.Key.Key_Escape)
    assert not view.proposer.open and open_proposals(st.log) == []
    auditor = _view(qtbot, tmp_path, station, "aud1")
    assert not auditor.proposer.isVisible() and not auditor.proposer.start()


def test_screenshot_with_the_reason_line_open(qtbot, tmp_path, station) -> None:
    import os

    st, _config, users = station
    view = _view(qtbot, tmp_path, station, "op1")
    view.show_result(_part(st, CRACK, users["op1"]))
    qtbot.keyClick(view, Qt.Key.Key_E)
    qtbot.keyClicks(view.proposer.reason, "hairline crack along the upper edge")
    assert view.proposer.open and view.proposer.button.isVisible()
    if os.environ.get("SCREENSHOT_DIR"):
        view.grab().save(str(Path(os.environ["SCREENSHOT_DIR"]) / "operator_propose.png"))
