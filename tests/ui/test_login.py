"""Sign-in: the first run creates the admin; failures and lockout show in the form (no dialog) and
are logged by the core; the idle lock signs the user out and returns to sign-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication

from fakes import HashScorer
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.library.labels import seed_library_dir
from inspector.station import Station
from ui.admin.login_view import LoginView
from ui.main_window import MainWindow


def _scorer() -> HashScorer:
    """Every image looks like the text "x"."""
    return HashScorer("fake-model-login")


@pytest.fixture()
def station(tmp_path: Path):
    config = StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )
    with Station.open(config, scorer=_scorer()) as st:
        yield st, config


def _fill(view: LoginView, name: str, password: str, repeat: str = "") -> None:
    view.name.setText(name)
    view.password.setText(password)
    view.repeat.setText(repeat)


def test_first_run_creates_the_admin(qtbot, station) -> None:
    st, _ = station
    view = LoginView(st.log)
    qtbot.addWidget(view)
    view.show()
    assert view.first_run and "administrator" in view.heading.text() and view.repeat.isVisible()
    _fill(view, "admin", "admin-pass-1", "admin-pass-2")
    assert view.submit() is None and "differ" in view.feedback.text()
    assert not st.log.users.has_users()
    _fill(view, "admin", "short", "short")
    assert view.submit() is None and "password" in view.feedback.text()  # the core's policy, shown inline
    _fill(view, "admin", "admin-pass-1", "admin-pass-1")
    with qtbot.waitSignal(view.signed_in) as signal:
        qtbot.keyClick(view.password, Qt.Key.Key_Return)  # Enter signs in: keyboard only
    assert signal.args[0].name == "admin" and signal.args[0].role == "admin"
    view.reset()
    assert not view.first_run and view.heading.text() == "Sign in" and not view.repeat.isVisible()


def test_failed_logins_and_lockout_show_in_the_form(qtbot, station) -> None:
    st, _ = station
    st.log.users.create_first_admin("admin", "admin-pass-1")
    view = LoginView(st.log)
    qtbot.addWidget(view)
    _fill(view, "admin", "wrong-password")
    assert view.submit() is None and "wrong" in view.feedback.text() and view.password.text() == ""
    for _ in range(4):
        _fill(view, "admin", "wrong-password")
        view.submit()
    assert view.feedback.text().startswith("Locked")
    _fill(view, "admin", "admin-pass-1")
    assert view.submit() is None and view.feedback.text().startswith("Locked")  # even the right password
    kinds = [e["kind"] for e in st.log.events()]
    assert kinds.count("login_failed") == 6 and "account_locked" in kinds
    assert not QApplication.activeModalWidget()  # never a dialog


def test_idle_lock_returns_to_sign_in(qtbot, tmp_path, station, add_accounts) -> None:
    st, config = station
    add_accounts(st.log, {"op1": "operator"}, passwords={"op1": "op1-pass-12"})
    settings = QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat)
    settings.setValue("security/idle_lock_s", 3.0)  # 10x the gaps between key presses below: loaded CI
    window = MainWindow(config, settings=settings)
    qtbot.addWidget(window)
    window.attach_station(st)
    window.show()
    _fill(window.login, "op1", "op1-pass-12")
    window.login.submit()
    assert window.stack.currentWidget() is window.tabs and window.idle.armed
    for _ in range(5):  # input keeps the session alive past the idle time (gaps well under it: loaded CI)
        qtbot.wait(300)
        qtbot.keyClick(window.operator_view, Qt.Key.Key_H)
    assert window.context is not None
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.login, timeout=15_000)
    assert window.context is None and window.operator_view is None and "Locked after" in window.login.feedback.text()
    assert [e["kind"] for e in st.log.events()][-1] == "logout"  # the session token is revoked and logged
    window.station = None  # the fixture closes the station
