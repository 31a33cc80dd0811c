"""Issue 15 item 6: the admin's Users view changes roles, deactivates and reactivates, resets passwords
(forced change at the next sign-in) and unlocks, each only with a reason; the State column tells
locked (until when), deactivated, must change password, tampered and active apart. The signed-in user
changes their own password in a non-modal dialog; after a reset the sign-in form asks for a new one."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from fakes import HashScorer
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.frame.records import Decision, Frame
from inspector.library.labels import seed_library_dir
from inspector.station import Station
from inspector.store.users import AuthenticationFailed, PasswordChangeRequired
from ui.admin.login_view import LoginView
from ui.admin.password_dialog import ChangePasswordDialog
from ui.admin.users_panel import UserAdminPanel
from ui.context import AppContext

ROLES = {"op1": "operator", "qa1": "qa", "aud1": "auditor"}


@pytest.fixture()
def station(tmp_path: Path, add_accounts):
    config = StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )
    with Station.open(config, scorer=HashScorer("fake-model-users")) as st:
        yield st, config, add_accounts(st.log, ROLES)


@pytest.fixture()
def panel(qtbot, station) -> UserAdminPanel:
    st, config, users = station
    view = UserAdminPanel(AppContext(st, config, users["admin"]))
    qtbot.addWidget(view)
    view.resize(1100, 650)
    view.show()
    return view


def _reasons(st: Station, kind: str) -> list[str]:
    return [json.loads(e["detail"]).get("reason") for e in st.log.events(kind=kind)]


def test_role_change_needs_a_reason_and_goes_through_the_core(panel, station) -> None:
    st = station[0]
    assert panel.select("op1") and panel.actions.role.currentText() == "operator"
    panel.actions.role.setCurrentText("qa")
    panel.actions.reason.setText("   ")
    assert not panel.actions.change_role() and "reason" in panel.feedback.text()
    assert st.log.users.get("op1")["role"] == "operator" and not st.log.events(kind="role_changed")
    panel.actions.reason.setText("hired as QA")
    panel.actions.change_role_button.click()
    assert st.log.users.get("op1")["role"] == "qa" and _reasons(st, "role_changed") == ["hired as QA"]
    assert panel.table.item(panel.table.currentRow(), 1).text() == "qa" and "now has role qa" in panel.feedback.text()
    assert panel.actions.reason.text() == ""  # each change asks for its own reason
    panel.select("admin")
    panel.actions.role.setCurrentText("operator")
    panel.actions.reason.setText("oops")
    assert not panel.actions.change_role() and "only active admin" in panel.feedback.text()


def test_deactivate_and_reactivate(panel, station) -> None:
    st = station[0]
    panel.select("qa1")
    assert panel.actions.active_button.text() == "Deactivate"
    panel.actions.active_button.click()
    assert "reason" in panel.feedback.text() and st.log.users.get("qa1")["active"] == 1  # empty reason: refused
    panel.actions.reason.setText("left the company")
    panel.actions.active_button.click()
    assert panel.state_of("qa1") == "deactivated" and panel.actions.active_button.text() == "Reactivate"
    with pytest.raises(AuthenticationFailed):
        st.log.login("qa1", "qa1-pass-1")
    panel.actions.reason.setText("came back")
    assert panel.actions.toggle_active() and panel.state_of("qa1") == "active"
    assert st.log.login("qa1", "qa1-pass-1").role == "qa"
    assert _reasons(st, "user_deactivated") == ["left the company"] and _reasons(st, "user_reactivated") == [
        "came back"
    ]


def test_reset_sets_a_temporary_password_that_must_be_changed(panel, station) -> None:
    st = station[0]
    panel.select("op1")
    panel.actions.temporary.setText("temporary-1")
    panel.actions.temporary_again.setText("temporary-2")
    assert not panel.actions.reset_password() and "differ" in panel.feedback.text()
    panel.actions.temporary_again.setText("temporary-1")
    assert not panel.actions.reset_password() and "reason" in panel.feedback.text()  # no reason yet
    panel.actions.reason.setText("forgot it")
    panel.actions.reset_button.click()
    assert panel.state_of("op1") == "must change password" and panel.actions.temporary.text() == ""
    with pytest.raises(PasswordChangeRequired):
        st.log.login("op1", "temporary-1")
    assert json.loads(st.log.events(kind="password_changed")[-1]["detail"])["forced"] is True


def test_locked_account_shows_until_when_and_unlock_needs_a_reason(panel, station) -> None:
    st = station[0]
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            st.log.login("aud1", "wrong-password")
    panel.refresh()
    state = panel.state_of("aud1")
    assert state.startswith("locked until 20") and state.endswith("Z")
    until = datetime.fromisoformat(state.removeprefix("locked until ").replace("Z", "+00:00"))
    assert 0 < (until - datetime.now(UTC)).total_seconds() <= 15 * 60  # the default 15-minute lock
    panel.select("aud1")
    assert not panel.unlock_selected() and "reason" in panel.feedback.text()
    panel.actions.reason.setText("called the help desk")
    panel.actions.unlock_button.click()
    assert panel.state_of("aud1") == "active" and st.log.login("aud1", "aud1-pass-1").name == "aud1"


def test_a_row_edited_with_sqlite3_shows_as_tampered(panel, station) -> None:
    st = station[0]
    raw = sqlite3.connect(st.log.sdb.path, isolation_level=None)
    raw.execute("DROP TRIGGER users_no_update")
    raw.execute("UPDATE users SET role = 'admin' WHERE name = 'op1'")
    raw.close()
    panel.refresh()
    assert panel.state_of("op1").startswith("tampered") and panel.state_of("qa1") == "active"


def test_after_a_reset_the_sign_in_form_asks_for_a_new_password(qtbot, station) -> None:
    st, _, users = station
    st.log.users.change_password("op1", "temporary-1", users["admin"], "forgot it")
    view = LoginView(st.log)
    qtbot.addWidget(view)
    view.show()
    view.name.setText("op1")
    view.password.setText("temporary-1")
    assert view.submit() is None and view.choosing_password and view.repeat.isVisible()
    assert "Choose your own" in view.heading.text() and view.name.isReadOnly()
    view.password.setText("my-own-pass-1")
    view.repeat.setText("my-own-pass-2")
    assert view.submit() is None and "differ" in view.feedback.text()
    view.password.setText("temporary-1")
    view.repeat.setText("temporary-1")
    assert view.submit() is None and "differ from the current" in view.feedback.text()  # the core's rule
    view.password.setText("my-own-pass-1")
    view.repeat.setText("my-own-pass-1")
    with qtbot.waitSignal(view.signed_in) as signal:
        view.button.click()
    assert signal.args[0].name == "op1" and not view.choosing_password
    assert not {r["name"]: r["must_change_password"] for r in st.log.users.accounts()}["op1"]
    assert not QApplication.activeModalWidget()


def test_back_leaves_the_forced_change_step(qtbot, station) -> None:
    st, _, users = station
    st.log.users.change_password("op1", "temporary-1", users["admin"], "forgot it")
    view = LoginView(st.log)
    qtbot.addWidget(view)
    view.show()
    view.name.setText("op1")
    view.password.setText("temporary-1")
    view.submit()
    assert view.back.isVisible()
    view.back.click()
    assert not view.choosing_password and not view.name.isReadOnly() and view.heading.text() == "Sign in"


def test_a_tampered_account_is_refused_at_sign_in_with_a_clear_message(qtbot, station) -> None:
    st = station[0]
    raw = sqlite3.connect(st.log.sdb.path, isolation_level=None)
    raw.execute("DROP TRIGGER users_no_update")
    raw.execute("UPDATE users SET role = 'admin' WHERE name = 'op1'")
    raw.close()
    view = LoginView(st.log)
    qtbot.addWidget(view)
    view.name.setText("op1")
    view.password.setText("op1-pass-1")
    assert view.submit() is None and view.feedback.text().startswith("Refused, the account was tampered with")


def test_change_your_password_dialog(qtbot, station) -> None:
    st = station[0]
    qa = st.log.login("qa1", "qa1-pass-1")
    dialog = ChangePasswordDialog(st.log, qa)
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.isModal()
    dialog.current.setText("wrong-password")
    dialog.new.setText("qa-own-choice")
    dialog.repeat.setText("qa-own-choice")
    assert not dialog.submit() and "wrong" in dialog.feedback.text() and dialog.current.text() == ""
    dialog.current.setText("qa1-pass-1")
    dialog.repeat.setText("something-else")
    assert not dialog.submit() and "differ" in dialog.feedback.text()
    dialog.new.setText("short")
    dialog.repeat.setText("short")
    assert not dialog.submit() and "8" in dialog.feedback.text()
    dialog.current.setText("qa1-pass-1")
    dialog.new.setText("qa-own-choice")
    dialog.repeat.setText("qa-own-choice")
    with qtbot.waitSignal(dialog.changed):
        dialog.ok.click()
    assert not dialog.isVisible() and st.log.login("qa1", "qa-own-choice").name == "qa1"
    assert not {r["name"]: r["admin_set_password"] for r in st.log.users.accounts()}["qa1"]


def test_main_window_offers_change_password_and_closes_it_at_sign_out(qtbot, tmp_path, station) -> None:
    from PySide6.QtCore import QSettings

    from ui.main_window import MainWindow

    st, config, users = station
    st.log.users.logout(users["admin"])
    win = MainWindow(config, settings=QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.attach_station(st)
    win.show()
    assert not win.password_button.isVisible()
    win.login.name.setText("aud1")
    win.login.password.setText("aud1-pass-1")
    assert win.login.submit() is not None and win.password_button.isVisible()
    dialog = win.change_password()
    assert dialog is not None and dialog.isVisible() and dialog.user.name == "aud1"
    win.sign_out("signed out")
    assert not dialog.isVisible() and win.password_dialog is None and not win.password_button.isVisible()
    win.station = None  # the fixture closes the station


def test_audit_decision_list_flags_admin_set_passwords(qtbot, station) -> None:
    from ui.audit.view import DECISION_COLUMNS, AuditView

    st, config, users = station
    op, aud = st.log.login("op1", "op1-pass-1"), st.log.login("aud1", "aud1-pass-1")
    rgb = np.zeros((6, 8, 3), np.uint8)
    result = st.record(st.inspect(Frame(rgb, datetime.now(UTC), "cam", 1)), op)
    st.log.record_decision(Decision(result.inspection_id, "confirm", "op1", result.ranking.top.label_id, 1), op)
    view = AuditView(AppContext(st, config, aud))
    qtbot.addWidget(view)
    column = [key for key, _ in DECISION_COLUMNS].index("password")
    assert view.decisions.item(0, column).text() == "admin-set"
    view.open_inspection(result.inspection_id)
    assert "ADMIN-SET PASSWORD" in view.detail.decisions.text()
