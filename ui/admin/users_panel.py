"""The admin's panel: the station's accounts with their state, the selected account's changes
(role, deactivate/reactivate, password reset, unlock: ui.admin.account_actions), add an account.

Everything goes through inspector.store.users (permission checked and logged there); the admin role
can neither answer parts nor edit records, so this is all the admin sees.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.store.users import ROLES
from ui.admin.account_actions import AccountActions
from ui.context import AppContext
from ui.widgets import palette

_COLUMNS = ("name", "role", "printed_name", "state", "password", "changed_by", "recorded_at")
_HEADERS = ["User id", "Role", "Printed name", "State", "Password", "Changed by", "Since (UTC)"]
_STATE = 3


def state_text(row: dict[str, Any]) -> str:
    """What the State column says of a users.accounts() row: the one thing that decides sign-in."""
    if row["state"] == "tampered":
        return "tampered: sign-in refused (run log verify)"
    if not row["active"] or row["state"] == "inactive":
        return "deactivated"
    if row["state"] == "locked":
        until = row.get("locked_until") or ""
        return f"locked until {until}" if until and until != "until unlocked" else "locked until unlocked"
    if row.get("must_change_password"):
        return "must change password"
    return "active"


class UserAdminPanel(QWidget):
    """Accounts table with their state, the selected account's actions, 'add account' form."""

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.rows: list[dict[str, Any]] = []
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_HEADERS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.actions = AccountActions(context)
        self.new_name, self.new_printed = QLineEdit(), QLineEdit()
        self.new_password = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.new_role = QComboBox()
        self.new_role.addItems([r for r in ROLES if r != "admin"] + ["admin"])
        self.reason = QLineEdit(placeholderText="why (kept in the audit trail)")
        add = QPushButton("Add account")
        self.feedback = QLabel()
        self.feedback.setWordWrap(True)
        form = QFormLayout()
        form.addRow("User id", self.new_name)
        form.addRow("Role", self.new_role)
        form.addRow("Printed name", self.new_printed)
        form.addRow("Initial password", self.new_password)
        form.addRow("Reason", self.reason)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addStretch(1)
        box = QGroupBox("Add an account")
        inner = QVBoxLayout(box)
        inner.addLayout(form)
        inner.addLayout(buttons)
        note = QLabel("Accounts are never deleted or renamed; every change is a logged event with its reason.")
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.feedback)
        forms = QHBoxLayout()
        forms.addWidget(self.actions, 1)
        forms.addWidget(box, 1)
        layout.addLayout(forms)
        add.clicked.connect(self.add_account)
        self.table.currentCellChanged.connect(lambda r, *_: self.actions.select(self._row(r)))
        self.actions.changed.connect(self._changed)
        self.actions.refused.connect(lambda text: self._say(text, trouble=True))
        self.refresh()

    def refresh(self) -> None:
        """Reload the accounts from the database; the selected account stays selected."""
        keep = self.actions.name
        self.rows = self.context.station.log.users.accounts()
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            # Until its user chooses their own, the admin knows the password: their decisions are flagged.
            row = {**row, "password": "set by an admin" if row.get("admin_set_password") else "own"}
            for c, key in enumerate(_COLUMNS):
                text = state_text(row) if c == _STATE else "" if row.get(key) is None else str(row[key])
                item = QTableWidgetItem(text)
                if c == _STATE and text == "deactivated":
                    item.setForeground(QColor(palette.MUTED))  # a decision, not trouble: no colour
                elif c == _STATE and text != "active":  # report by exception: only trouble gets colour
                    bg, fg = palette.TROUBLE["scrap" if text.startswith("tampered") else "warning"]
                    item.setBackground(QColor(bg))
                    item.setForeground(QColor(fg))
                self.table.setItem(r, c, item)
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()
        names = [row["name"] for row in self.rows]
        if keep in names:
            self.select(keep)
        else:
            self.actions.select(None)

    def select(self, name: str) -> bool:
        """Select the account `name` in the table (and its actions); False if there is none."""
        names = [row["name"] for row in self.rows]
        if name not in names:
            return False
        self.table.setCurrentCell(names.index(name), 0)
        self.actions.select(self.rows[names.index(name)])
        return True

    def state_of(self, name: str) -> str:
        """The State column's text for `name` ('' if not listed)."""
        for r, row in enumerate(self.rows):
            if row["name"] == name:
                return self.table.item(r, _STATE).text()
        return ""

    def add_account(self) -> bool:
        """Create the account in the form (admin only, enforced by the core)."""
        try:
            self.context.station.log.users.add_user(
                self.new_name.text().strip(),
                self.new_role.currentText(),
                self.new_password.text(),
                self.context.user,
                printed_name=self.new_printed.text().strip(),
                reason=self.reason.text().strip(),
            )
        except InspectorError as exc:
            self._say(f"Not added: {exc}", trouble=True)
            return False
        self._say(
            f"Account {self.new_name.text().strip()!r} ({self.new_role.currentText()}) added: its user"
            " chooses their own password at the first sign-in."
        )
        for edit in (self.new_name, self.new_printed, self.new_password, self.reason):
            edit.clear()
        self.refresh()
        return True

    def unlock_selected(self) -> bool:
        """Clear the lockout of the selected account, with the reason in the actions box."""
        return self.actions.unlock()

    def _row(self, index: int) -> dict[str, Any] | None:
        return self.rows[index] if 0 <= index < len(self.rows) else None

    def _changed(self, name: str, message: str) -> None:
        self.refresh()
        self._say(message)

    def _say(self, text: str, trouble: bool = False) -> None:
        bg = palette.TROUBLE["warning"][0] if trouble else "transparent"
        self.feedback.setStyleSheet(f"QLabel {{ background: {bg}; color: {palette.TEXT}; padding: 4px; }}")
        self.feedback.setText(text)
