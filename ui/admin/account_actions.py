"""What the admin can do to the selected account: change its role, deactivate or reactivate it, reset
its password (a temporary one its user must replace at the next sign-in), unlock it.

Every change needs a reason, refused here when empty as the CLI does; the core refuses it too and
checks the admin's permission (inspector.store.users). Outcomes show inline: no dialog.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit, QPushButton, QWidget

from inspector.errors import InspectorError
from inspector.store.users import ROLES
from ui.context import AppContext


class AccountActions(QGroupBox):
    """Role, (de)activation, password reset and unlock for one account; `changed(name, message)` after each."""

    changed = Signal(str, str)  # account name, what was done (for the panel's feedback line)
    refused = Signal(str)  # why nothing was done

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__("Selected account: none", parent)
        self.context = context
        self.name: str | None = None
        self.active = True
        self.reason = QLineEdit(placeholderText="required for every change below (kept in the audit trail)")
        self.role = QComboBox()
        self.role.addItems(list(ROLES))
        self.change_role_button = QPushButton("Change role")
        self.active_button = QPushButton("Deactivate")
        self.unlock_button = QPushButton("Unlock")
        self.temporary = QLineEdit(echoMode=QLineEdit.EchoMode.Password, placeholderText="8+ characters")
        self.temporary_again = QLineEdit(echoMode=QLineEdit.EchoMode.Password, placeholderText="the same again")
        self.reset_button = QPushButton("Reset password")
        self.reset_button.setToolTip("The user must choose their own password at the next sign-in")
        form = QFormLayout(self)
        form.addRow("Reason", self.reason)
        form.addRow("Role", _row(self.role, self.change_role_button))
        form.addRow("Account", _row(self.active_button, self.unlock_button))
        form.addRow("Temporary password", _row(self.temporary, self.temporary_again, self.reset_button))
        self.change_role_button.clicked.connect(self.change_role)
        self.active_button.clicked.connect(self.toggle_active)
        self.unlock_button.clicked.connect(self.unlock)
        self.reset_button.clicked.connect(self.reset_password)
        self.select(None)

    def select(self, row: dict | None) -> None:
        """Show the actions for this account (a users.accounts() row), or none."""
        self.name = None if row is None else str(row["name"])
        self.active = True if row is None else bool(row["active"])
        self.setTitle(f"Selected account: {self.name}" if self.name else "Selected account: none (select a row)")
        if row is not None:
            self.role.setCurrentText(str(row["role"]))
        self.active_button.setText("Deactivate" if self.active else "Reactivate")
        for w in (self.change_role_button, self.active_button, self.unlock_button, self.reset_button):
            w.setEnabled(self.name is not None)

    def change_role(self) -> bool:
        role = self.role.currentText()
        return self._apply(
            lambda users, name, reason: users.change_role(name, role, self.context.user, reason), f"now has role {role}"
        )

    def toggle_active(self) -> bool:
        active = not self.active
        return self._apply(
            lambda users, name, reason: users.set_active(name, active, self.context.user, reason),
            "reactivated" if active else "deactivated: it can no longer sign in",
        )

    def unlock(self) -> bool:
        return self._apply(lambda users, name, reason: users.unlock(name, self.context.user, reason), "unlocked")

    def reset_password(self) -> bool:
        password = self.temporary.text()
        if password != self.temporary_again.text():
            self.refused.emit("The two temporary passwords differ; type them again.")
            return False
        done = self._apply(
            lambda users, name, reason: users.change_password(name, password, self.context.user, reason),
            "has a temporary password: its user must choose their own at the next sign-in",
        )
        if done:
            self.temporary.clear()
            self.temporary_again.clear()
        return done

    def _apply(self, action: Callable, outcome: str) -> bool:
        """Run one change through the core with the reason; report what happened either way."""
        if self.name is None:
            self.refused.emit("Select an account first.")
            return False
        reason = self.reason.text().strip()
        if not reason:
            self.refused.emit("Give a reason: every change to an account is kept in the audit trail with its reason.")
            self.reason.setFocus()
            return False
        try:
            action(self.context.station.log.users, self.name, reason)
        except InspectorError as exc:
            self.refused.emit(f"Not changed: {exc}")
            return False
        self.reason.clear()
        self.changed.emit(self.name, f"Account {self.name!r} {outcome}.")
        return True


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w)
    layout.addStretch(1)
    return box
