"""Main window: loading state, tabs per role (every view opens), the error banner logs events,
window state persists, the admin panel goes through the core, and closing shuts everything down."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QLabel

from fakes import HashScorer
from inspector.capture.simulated import SimulatedCamera
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.library.labels import seed_library_dir
from inspector.station import Station
from inspector.store.users import AccessDenied
from ui.admin.users_panel import UserAdminPanel
from ui.app import main, prepare
from ui.main_window import MainWindow
from ui.operator.view import OperatorView

ROLES = {"op1": "operator", "qa1": "qa", "aud1": "auditor"}


def _scorer() -> HashScorer:
    """Every image looks like the crack description."""
    return HashScorer("fake-model-window", image_text="a jagged crack running through the material")


def _config(tmp_path: Path) -> StationConfig:
    return StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )


@pytest.fixture()
def window(qtbot, tmp_path: Path, add_accounts):
    """A window with an attached station (fake model, sample camera at 20 fps) and four accounts."""
    config = _config(tmp_path)
    st = Station.open(config, scorer=_scorer())
    st.log.users.logout(add_accounts(st.log, ROLES)["admin"])
    settings = QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat)
    win = MainWindow(config, settings=settings)
    qtbot.addWidget(win)
    assert win.stack.currentWidget() is win.loading  # shown at once, before the model is there
    rgb = np.full((16, 16, 3), 90, np.uint8)
    win.attach_station(st, lambda _ev: SimulatedCamera([rgb], fps=20, source_id="sim"))
    win.show()
    yield win
    win.close()


def _sign_in(win: MainWindow, name: str) -> None:
    win.login.name.setText(name)
    win.login.password.setText(f"{name}-pass-1")
    assert win.login.submit() is not None


def _tabs(win: MainWindow) -> list[str]:
    return [win.tabs.tabText(i) for i in range(win.tabs.count())]


@pytest.mark.parametrize(
    "name, expected",
    [("op1", ["Operator"]), ("qa1", ["Operator", "QA", "Audit"]), ("aud1", ["Audit"]), ("admin", ["Users"])],
)
def test_tabs_per_role_and_every_view_opens(qtbot, window, name, expected) -> None:
    _sign_in(window, name)
    assert _tabs(window) == expected
    for i in range(window.tabs.count()):
        window.tabs.setCurrentIndex(i)
        view = window.tabs.widget(i)
        assert not isinstance(view, QLabel), f"{window.tabs.tabText(i)} is a placeholder"
        assert (
            type(view).__name__
            == {"Operator": "OperatorView", "QA": "QAView", "Audit": "AuditView", "Users": "UserAdminPanel"}[
                window.tabs.tabText(i)
            ]
        )
    if "Operator" in expected:  # the camera runs and parts are recorded under the signed-in user
        window.tabs.setCurrentIndex(0)
        qtbot.waitUntil(lambda: window.operator_view.current is not None, timeout=5000)
        assert window.station.log.inspections()[0]["user"] == name
    assert not window.banner.isVisible()


def test_an_operator_has_no_qa_editing(window) -> None:
    _sign_in(window, "op1")
    assert "QA" not in _tabs(window) and window.context.can("decide") and not window.context.can("edit_library")


def test_missing_view_module_gives_a_placeholder(window) -> None:
    _sign_in(window, "aud1")
    placeholder = window._optional_view("ui.not_there_yet", "FutureView")
    assert isinstance(placeholder, QLabel) and "not part of this build" in placeholder.text()


def test_error_banner_is_non_blocking_and_logged(qtbot, window) -> None:
    _sign_in(window, "op1")
    window.report("camera", "camera 'line-2' did not deliver a frame for 5 s")
    window.report("camera", "camera 'line-2' did not deliver a frame for 5 s")
    assert window.banner.isVisible() and "(×2)" in window.banner.label.text()
    events = window.station.log.events(kind="ui_error")
    assert len(events) == 2 and events[0]["user"] == "op1"
    window.banner.clear()
    assert not window.banner.isVisible()


def test_admin_panel_goes_through_the_core(window) -> None:
    _sign_in(window, "admin")
    panel = window.tabs.widget(0)
    assert isinstance(panel, UserAdminPanel)
    panel.new_name.setText("op2")
    panel.new_role.setCurrentText("operator")
    panel.new_password.setText("op2-pass-12")
    assert panel.add_account() and window.station.log.users.get("op2")["role"] == "operator"
    panel.new_name.setText("x")
    assert not panel.add_account() and "Not added" in panel.feedback.text()
    operator = window.station.log.login("op1", "op1-pass-1")
    with pytest.raises(AccessDenied):
        window.station.log.users.add_user("op3", "operator", "op3-pass-12", operator, temporary=False)


def test_capture_pauses_when_the_operator_tab_is_hidden(qtbot, window) -> None:
    _sign_in(window, "qa1")
    view: OperatorView = window.operator_view
    qtbot.waitUntil(lambda: view.current is not None, timeout=5000)
    window.tabs.setCurrentIndex(1)  # QA: nobody watches the line, so nothing more is recorded
    assert view.capture.paused
    qtbot.wait(1500)  # a frame already in flight is recorded meanwhile, even on a loaded machine
    count = len(window.station.log.inspections())
    qtbot.wait(1000)  # 20 frames at 20 fps
    assert len(window.station.log.inspections()) == count
    window.tabs.setCurrentIndex(0)
    qtbot.waitUntil(lambda: len(window.station.log.inspections()) > count, timeout=5000)


def test_footer_follows_the_library_in_force_while_the_line_is_paused(qtbot, window) -> None:
    """Issue 15 item 8: QA publishes (the operator tab hidden, so no new part) and the footer shows the
    new version at once, as the status bar does; so does a version published from the CLI."""
    from inspector.library.draft import Edit

    _sign_in(window, "qa1")
    footer = window.operator_view.status.library
    qtbot.waitUntil(lambda: window.operator_view.current is not None, timeout=5000)
    assert footer.text() == "library v1"
    window.tabs.setCurrentIndex(1)  # QA: the capture pauses, no part arrives to carry the version
    editor = window.tabs.widget(1).editor
    assert editor.stage(Edit("add_description", "scratch", "operators call it a gouge", "a long gouge"))
    assert editor.publish_draft() == 2
    assert footer.text() == "library v2" and window.statusBar().currentMessage() == "library v2 in force"
    qa = window.context.user
    window.station.log.library.add_description("ok", "a spotless part", qa, "from the CLI")  # another writer
    window._refresh_library()  # the window's poll
    assert footer.text() == "library v3" and window.statusBar().currentMessage() == "library v3 in force"


def test_sign_out_state_and_clean_shutdown(qtbot, window) -> None:
    _sign_in(window, "qa1")
    view: OperatorView = window.operator_view
    qtbot.waitUntil(lambda: view.current is not None, timeout=5000)
    window.tabs.setCurrentIndex(2)  # Audit
    window.sign_out("signed out")
    assert window.stack.currentWidget() is window.login and not view.capture.is_running()
    _sign_in(window, "qa1")
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Audit"  # the last tab per role is restored
    capture, station = window.operator_view.capture, window.station
    assert capture.paused  # signed in on the Audit tab: the camera starts paused
    window.close()
    assert not capture.is_running()
    assert window.settings.value("window/geometry") is not None
    with pytest.raises(sqlite3.ProgrammingError):  # the database is closed
        station.log.sdb.conn.execute("SELECT 1")


def test_bad_config_exits_2(tmp_path, capsys) -> None:
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_prepare_warms_the_database_and_builds_the_sample_camera(tmp_path) -> None:
    config = _config(tmp_path)
    from dataclasses import replace

    config = replace(config, model=replace(config.model, ref="inspector-tiny", device="cpu"))
    steps = []
    prepared = prepare(lambda d, t, s: steps.append(s), lambda: False, config, None, 50.0)
    assert len(steps) == 3 and Path(config.database.path).exists()
    camera = prepared.source_factory(lambda kind, detail: None)
    with camera:
        frame = camera.read(timeout=2.0)
    assert frame is not None and frame.rgb.shape[:2] == (224, 224)


def test_camera_fault_banner_clears_on_recovery(qtbot, window) -> None:
    rgb = np.full((16, 16, 3), 90, np.uint8)
    window.source_factory = lambda _ev: SimulatedCamera(
        [rgb], fps=20, disconnect_after=2, disconnect_for_s=0.2, source_id="sim"
    )
    _sign_in(window, "op1")
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=5000)
    assert window.banner.message.startswith("camera:") and "removed" in window.banner.message
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=5000)  # frames again: the alarm goes
    kinds = [e["kind"] for e in window.station.log.events()]
    assert "camera_fault" in kinds and "camera_recovered" in kinds and "ui_error" not in kinds
