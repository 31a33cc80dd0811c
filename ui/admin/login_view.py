"""Sign-in, and on a new station the creation of its first (admin) account.

Failures and lockouts are shown in the form itself (no dialog). Authentication goes through the
decision log, which logs every outcome and enforces the lockout; this view only reflects it. After
an admin reset the password, the right password leads to a second step in the same form: the user
chooses their own (the core refuses a session until then) and is then signed in with it.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from inspector.errors import InspectorError
from inspector.store.users import (
    AccountLocked,
    AccountTampered,
    AuthenticationFailed,
    PasswordChangeRequired,
    Session,
)
from ui.widgets import palette

_ERROR = f"QLabel {{ background: {palette.TROUBLE['warning'][0]}; color: {palette.TEXT}; padding: 6px; }}"
_INFO = f"QLabel {{ color: {palette.TEXT}; padding: 6px; }}"


class LoginView(QWidget):
    """A centred form: user id and password, or (first run) admin id and the password twice."""

    signed_in = Signal(object)  # Session

    def __init__(self, log, parent: QWidget | None = None) -> None:  # log: inspector.store.decision_log.DecisionLog
        super().__init__(parent)
        self.log = log
        self._forced_from: str | None = None  # the admin-set password just proven, while a change is forced
        self.heading = QLabel()
        self.heading.setStyleSheet("font-size: 20px; font-weight: bold;")
        self.explain = QLabel()
        self.explain.setWordWrap(True)
        self.name = QLineEdit()
        self.printed = QLineEdit()
        self.password = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.repeat = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.button = QPushButton()
        self.button.setDefault(True)
        self.back = QPushButton("Back to sign-in")  # leave the forced-change step without changing anything
        self.feedback = QLabel()
        self.feedback.setWordWrap(True)
        self.form = QFormLayout()
        self.form.addRow("User id", self.name)
        self.form.addRow("Printed name", self.printed)
        self.form.addRow("Password", self.password)
        self.form.addRow("Password again", self.repeat)
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        # A fixed width and no alignment flag: the wrapped labels then get the height they need.
        box.setFixedWidth(480)
        inner = QVBoxLayout(box)
        inner.setSpacing(10)
        for w in (self.heading, self.explain):
            inner.addWidget(w)
        inner.addLayout(self.form)
        inner.addWidget(self.button)
        inner.addWidget(self.back)
        inner.addWidget(self.feedback)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(box)
        row.addStretch(1)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        for edit in (self.name, self.printed, self.password, self.repeat):
            edit.returnPressed.connect(self.submit)
        self.button.clicked.connect(self.submit)
        self.back.clicked.connect(lambda: self.reset())
        self.reset()

    @property
    def first_run(self) -> bool:
        """No account exists yet: the form creates the admin."""
        return not self.log.users.has_users()

    @property
    def choosing_password(self) -> bool:
        """The second step after an admin reset: the form asks for the user's own new password."""
        return self._forced_from is not None

    def reset(self, message: str = "") -> None:
        """Back to an empty form (after sign-out or idle lock), with an optional reason shown."""
        self._forced_from = None
        self.name.setReadOnly(False)
        self.form.labelForField(self.password).setText("Password")
        self.form.labelForField(self.repeat).setText("Password again")
        first = self.first_run
        self.heading.setText("Create the administrator account" if first else "Sign in")
        self.explain.setText(
            "This station has no accounts yet. The first account administers users; it cannot answer parts."
            if first
            else "Sign in with your user id and password.\nKeyboard: Tab moves, Enter signs in."
        )
        self.button.setText("Create account and sign in" if first else "Sign in")
        self.back.setVisible(False)
        for edit in (self.printed, self.repeat):
            self.form.setRowVisible(edit, first)
        for edit in (self.password, self.repeat, self.printed):
            edit.clear()
        if not first:
            self.name.clear()
        self.show_info(message)
        self.name.setFocus()

    def submit(self) -> Session | None:
        """Create the admin (first run) and/or sign in; the Session, or None with the reason shown."""
        name, password = self.name.text().strip(), self.password.text()
        if self.choosing_password:
            return self._choose_password(name, password)
        if not name or not password:
            self.show_error("Enter your user id and password.")
            return None
        try:
            if self.first_run:
                if password != self.repeat.text():
                    self.show_error("The two passwords differ; type them again.")
                    self.password.clear()
                    self.repeat.clear()
                    self.password.setFocus()
                    return None
                self.log.users.create_first_admin(name, password, self.printed.text().strip())
            session = self.log.login(name, password)
        except AccountLocked as exc:
            self.show_error(f"Locked: {exc}")
            self.password.clear()
            return None
        except PasswordChangeRequired:
            self._ask_new_password(name, password)
            return None
        except AccountTampered as exc:
            self.show_error(f"Refused, the account was tampered with: {exc}.")
            self.password.clear()
            return None
        except AuthenticationFailed as exc:
            self.show_error(f"Not signed in: {exc}.")
            self.password.clear()
            self.password.setFocus()
            return None
        except InspectorError as exc:  # e.g. a user id or password the policy refuses
            self.show_error(str(exc))
            return None
        self.password.clear()
        self.repeat.clear()
        self.signed_in.emit(session)
        return session

    def _ask_new_password(self, name: str, current: str) -> None:
        """Second step: the admin-set password was right; the user must now choose their own."""
        self._forced_from = current
        self.heading.setText("Choose your own password")
        self.explain.setText(
            f"An admin set the password of {name}. Choose your own (8 or more characters) to continue;"
            " the admin will not know it."
        )
        self.name.setReadOnly(True)
        self.form.labelForField(self.password).setText("New password")
        self.form.labelForField(self.repeat).setText("New password again")
        self.form.setRowVisible(self.repeat, True)
        self.form.setRowVisible(self.printed, False)
        self.button.setText("Set password and sign in")
        self.back.setVisible(True)
        self.password.clear()
        self.repeat.clear()
        self.show_info("")
        self.password.setFocus()

    def _choose_password(self, name: str, new: str) -> Session | None:
        if new != self.repeat.text():
            self.show_error("The two new passwords differ; type them again.")
            self.password.clear()
            self.repeat.clear()
            self.password.setFocus()
            return None
        try:
            self.log.users.change_own_password(name, self._forced_from or "", new)
            session = self.log.login(name, new)
        except InspectorError as exc:  # too short, same as the admin's, or the account locked meanwhile
            self.show_error(f"Not changed: {exc}")
            self.password.clear()
            self.repeat.clear()
            return None
        self.reset()
        self.signed_in.emit(session)
        return session

    def show_error(self, text: str) -> None:
        self.feedback.setStyleSheet(_ERROR)
        self.feedback.setText(text)
        self.feedback.setVisible(True)

    def show_info(self, text: str) -> None:
        self.feedback.setStyleSheet(_INFO)
        self.feedback.setText(text)
        self.feedback.setVisible(bool(text))
