"""The station window: loading -> sign-in -> the views the signed-in role may use.

Views are built per sign-in and torn down at sign-out or idle lock (their workers stop, the
session token is revoked), so nothing keeps recording under a user who has left. Faults from
the core show in a non-blocking banner and are logged as events; no dialog anywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QStackedWidget, QTabWidget, QToolButton, QVBoxLayout, QWidget

from inspector.config import StationConfig
from inspector.errors import InspectorError
from inspector.frame.live import SourceFactory
from inspector.station import Station
from inspector.store.users import Session
from ui.admin.login_view import LoginView
from ui.admin.password_dialog import ChangePasswordDialog
from ui.admin.users_panel import UserAdminPanel
from ui.context import AppContext
from ui.idle_lock import IdleLock, idle_seconds
from ui.model_follower import ModelFollower
from ui.operator.view import OperatorView
from ui.widgets import palette
from ui.widgets.error_banner import ErrorBanner

# Which views each role gets, first = shown after sign-in. The core enforces permissions anyway.
ROLE_TABS: dict[str, tuple[str, ...]] = {
    "operator": ("Operator",),
    "qa": ("Operator", "QA", "Audit"),
    "auditor": ("Audit",),
    "admin": ("Users",),
}
# Library edits and model promotions made elsewhere (CLI, another station) are picked up within this.
LIBRARY_POLL_MS = 5000


def _placeholder(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    return label


class MainWindow(QMainWindow):
    """Owns the station once attached (closes it when the window closes)."""

    def __init__(
        self, config: StationConfig, *, settings: QSettings | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.config = config
        self.settings = settings if settings is not None else QSettings()
        self.station: Station | None = None
        self.source_factory: SourceFactory | None = None
        self.context: AppContext | None = None
        self.login: LoginView | None = None
        self.tabs: QTabWidget | None = None
        self.operator_view: OperatorView | None = None
        self.follower: ModelFollower | None = None
        self._closed = False
        self.setWindowTitle("Inspection station")
        self.setStyleSheet(f"QMainWindow {{ background: {palette.BACKGROUND}; }}")
        self.banner = ErrorBanner()
        self.loading = _placeholder("Loading the model…\nthe window works meanwhile; sign-in appears when it is ready.")
        self.loading.setStyleSheet("font-size: 18px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.loading)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.user_label = QLabel("not signed in")
        self.sign_out_button = QToolButton(text="Sign out (Ctrl+L)", focusPolicy=Qt.FocusPolicy.NoFocus)
        self.sign_out_button.clicked.connect(lambda: self.sign_out("signed out"))
        self.sign_out_button.setVisible(False)
        self.password_button = QToolButton(text="Change password", focusPolicy=Qt.FocusPolicy.NoFocus)
        self.password_button.clicked.connect(self.change_password)
        self.password_button.setVisible(False)
        self.password_dialog: ChangePasswordDialog | None = None
        self.statusBar().addPermanentWidget(self.user_label)
        self.statusBar().addPermanentWidget(self.password_button)
        self.statusBar().addPermanentWidget(self.sign_out_button)
        sign_out = QAction("Sign out", self, shortcut=QKeySequence("Ctrl+L"))
        sign_out.triggered.connect(lambda: self.sign_out("signed out"))
        self.addAction(sign_out)
        self.idle = IdleLock(self.settings, self)
        self.idle.expired.connect(
            lambda: self.sign_out(f"Locked after {idle_seconds(self.settings):.0f} s without input; sign in again.")
        )
        self._poll = QTimer(self, interval=LIBRARY_POLL_MS, timeout=self._refresh_library)
        self.resize(1280, 800)
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    # --- station lifecycle ----------------------------------------------------------------

    def attach_station(self, station: Station, source_factory: SourceFactory | None = None) -> None:
        """The station is ready (model loaded): show sign-in."""
        if self._closed:  # the window closed while the model loaded
            station.close()
            return
        self.station, self.source_factory = station, source_factory
        self.follower = ModelFollower(station, self)
        self.follower.switching.connect(
            lambda model_id: self.statusBar().showMessage(
                f"loading model {model_id[:12]} (promoted or rolled back to); the line keeps running meanwhile"
            )
        )
        self.follower.switched.connect(
            lambda model_id: self.statusBar().showMessage(
                f"model {model_id[:12]} · library v{station.index.library_version} (switched)"
            )
        )
        self.follower.failed.connect(lambda message: self.report("model", message, logged=True))
        self.follower.library_changed.connect(
            lambda version: self.statusBar().showMessage(f"library v{version} in force")
        )
        self.login = LoginView(station.log)
        self.login.signed_in.connect(self._signed_in)
        self.stack.addWidget(self.login)
        self.stack.setCurrentWidget(self.login)
        self.login.name.setFocus()
        self._poll.start()
        self.statusBar().showMessage(f"model {station.model_id[:12]} · library v{station.index.library_version}")

    def show_fatal(self, message: str) -> None:
        """The station could not start: say why on the loading page and in the banner."""
        self.loading.setText(f"The station could not start.\n\n{message}")
        self.banner.show_error(message)

    def report(self, where: str, message: str, logged: bool = False) -> None:
        """A core fault: banner, and an event in the log unless the core logged it already."""
        if not logged and self.station is not None and self.station.log is not None:
            user = self.context.user if self.context is not None else None
            try:
                self.station.log.record_event("ui_error", {"where": where, "message": message[:1000]}, user)
            except InspectorError as exc:
                message += f" (not logged: {exc})"
        self.banner.show_error(f"{where}: {message}")

    def _recovered(self, where: str) -> None:
        # The fault is over (the core logged the recovery): an alarm that no longer holds goes away.
        if self.banner.message.startswith(f"{where}:"):
            self.banner.clear()
        self.statusBar().showMessage(f"{where} recovered", 10_000)

    # --- sign-in / sign-out ---------------------------------------------------------------

    def _signed_in(self, user: Session) -> None:
        assert self.station is not None
        self.context = AppContext(
            self.station,
            self.config,
            user,
            self.follower,
            drift=getattr(getattr(self, "side_services", None), "drift", None),
            line=getattr(getattr(self, "side_services", None), "line", None),
        )  # issue 17
        self.tabs = QTabWidget()
        for name in ROLE_TABS.get(user.role, ()):
            self.tabs.addTab(self._view(name), name)
        self.stack.addWidget(self.tabs)
        self.stack.setCurrentWidget(self.tabs)
        last = self.settings.value(f"window/tab/{user.role}")
        names = [self.tabs.tabText(i) for i in range(self.tabs.count())]
        if last in names:
            self.tabs.setCurrentIndex(names.index(last))
        self.tabs.currentChanged.connect(self._tab_changed)
        self.user_label.setText(f"{user.printed_name} ({user.name}, {user.role})")
        self.sign_out_button.setVisible(True)
        self.password_button.setVisible(True)
        self.idle.arm()
        self._tab_changed(self.tabs.currentIndex())  # before start(): a hidden operator tab starts paused
        if self.operator_view is not None:
            self.operator_view.start()

    def _view(self, name: str) -> QWidget:
        assert self.context is not None
        if name == "Operator":
            self.operator_view = OperatorView(self.context, self.source_factory, settings=self.settings)
            self.operator_view.fault.connect(lambda where, msg: self.report(where, msg, logged=where == "camera"))
            self.operator_view.recovered.connect(self._recovered)
            if self.follower is not None:  # the footer follows the library in force, not only each new part
                self.follower.library_changed.connect(self.operator_view.status.set_library)
            return self.operator_view
        if name == "Users":
            return UserAdminPanel(self.context)
        module, cls = {"QA": ("ui.qa.view", "QAView"), "Audit": ("ui.audit.view", "AuditView")}[name]
        return self._optional_view(module, cls)

    def _optional_view(self, module: str, cls: str) -> QWidget:
        try:
            view_class: Callable[..., QWidget] = getattr(importlib.import_module(module), cls)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            return _placeholder(f"The {cls} is not part of this build yet.")
        try:
            return view_class(self.context)
        except (InspectorError, RuntimeError) as exc:  # one broken view must not take the station down
            self.report(cls, f"could not open: {exc}")
            return _placeholder(f"The {cls} could not open: {exc}")

    def _tab_changed(self, index: int) -> None:
        if self.tabs is None or self.context is None or index < 0:
            return
        self.settings.setValue(f"window/tab/{self.context.user.role}", self.tabs.tabText(index))
        if self.operator_view is not None:
            shown = self.tabs.widget(index) is self.operator_view
            # A QA engineer editing the library is not watching the line: nothing is recorded meanwhile.
            self.operator_view.set_live(shown)
            if shown:
                self.operator_view.setFocus()  # the operator's keys must work without a click

    def change_password(self) -> ChangePasswordDialog | None:
        """Open 'Change your password' for the signed-in user (not modal: the line keeps running)."""
        if self.context is None or self.context.user is None or self.station is None:
            return None
        if self.password_dialog is not None:
            self.password_dialog.close()
        self.password_dialog = ChangePasswordDialog(self.station.log, self.context.user, self)
        self.password_dialog.changed.connect(lambda: self.statusBar().showMessage("Your password was changed.", 10_000))
        self.password_dialog.show()
        return self.password_dialog

    def sign_out(self, reason: str) -> None:
        """End the session (sign-out or idle lock): stop workers, revoke the token, back to sign-in."""
        if self.context is None or self.context.user is None:
            return
        user = self.context.user
        self._teardown()
        try:
            self.station.log.users.logout(user)  # type: ignore[union-attr]
        except InspectorError as exc:
            self.report("sign-out", str(exc))
        if self.login is not None:
            self.login.reset(reason)
            self.stack.setCurrentWidget(self.login)

    def _teardown(self) -> None:
        self.idle.disarm()
        if self.password_dialog is not None:  # never left open for the next person at the station
            self.password_dialog.close()
            self.password_dialog = None
        self.password_button.setVisible(False)
        if self.tabs is not None:
            for i in range(self.tabs.count()):
                view = self.tabs.widget(i)
                if not isinstance(view, OperatorView) and hasattr(view, "shutdown"):
                    view.shutdown()  # e.g. a fine-tuning run in the QA view is cancelled
        if self.operator_view is not None:
            self.operator_view.shutdown()
            self.operator_view = None
        if self.tabs is not None:
            self.stack.removeWidget(self.tabs)
            self.tabs.deleteLater()
            self.tabs = None
        self.context = None
        self.user_label.setText("not signed in")
        self.sign_out_button.setVisible(False)

    def _refresh_library(self) -> None:
        try:
            if self.follower is not None:
                self.follower.refresh_library()  # the status bar and the footer follow library_changed
        except InspectorError as exc:
            self.report("library", str(exc))
        if self.follower is not None:
            self.follower.check()  # a promotion or rollback from the CLI or another window

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        self.settings.setValue("window/geometry", self.saveGeometry())
        self._poll.stop()
        user = self.context.user if self.context is not None else None
        self._teardown()
        if self.follower is not None:
            self.follower.stop()  # a model still loading: let it finish, drop it, then close the station
        if self.station is not None:
            if user is not None:
                try:
                    self.station.log.users.logout(user)
                except InspectorError:
                    pass  # closing anyway; the session dies with the process
            self.station.close()
            self.station = None
        self.settings.sync()
        super().closeEvent(event)
