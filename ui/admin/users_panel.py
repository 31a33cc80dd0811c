"""The admin's panel: the station's accounts, add an account, unlock a locked one.

Everything goes through inspector.store.users (permission checked and logged there); the admin role
can neither answer parts nor edit records, so this is all the admin sees.
"""

from __future__ import annotations

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
from ui.context import AppContext
from ui.widgets import palette

_COLUMNS = ("name", "role", "printed_name", "state", "changed_by", "recorded_at")


class UserAdminPanel(QWidget):
    """Accounts table, 'add account' form, 'unlock' with a reason."""

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(["User id", "Role", "Printed name", "State", "Changed by", "Since (UTC)"])
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.new_name, self.new_printed = QLineEdit(), QLineEdit()
        self.new_password = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.new_role = QComboBox()
        self.new_role.addItems([r for r in ROLES if r != "admin"] + ["admin"])
        self.reason = QLineEdit(placeholderText="why (kept in the audit trail)")
        add = QPushButton("Add account")
        unlock = QPushButton("Unlock selected account")
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
        buttons.addWidget(unlock)
        buttons.addStretch(1)
        box = QGroupBox("Accounts are never deleted or renamed; every change is a logged event")
        inner = QVBoxLayout(box)
        inner.addLayout(form)
        inner.addLayout(buttons)
        inner.addWidget(self.feedback)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(box)
        add.clicked.connect(self.add_account)
        unlock.clicked.connect(self.unlock_selected)
        self.refresh()

    def refresh(self) -> None:
        """Reload the accounts from the database."""
        rows = self.context.station.log.users.accounts()
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(_COLUMNS):
                value = row.get(key)
                if key == "state" and value == "locked":  # active, inactive, or locked until ...
                    value = f"locked until {row['locked_until']}"
                text = "" if value is None else str(value)
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

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
        self._say(f"Account {self.new_name.text().strip()!r} ({self.new_role.currentText()}) added.")
        for edit in (self.new_name, self.new_printed, self.new_password, self.reason):
            edit.clear()
        self.refresh()
        return True

    def unlock_selected(self) -> bool:
        """Clear the lockout of the selected account, with the reason given."""
        row = self.table.currentRow()
        if row < 0:
            self._say("Select an account first.", trouble=True)
            return False
        name = self.table.item(row, 0).text()
        try:
            self.context.station.log.users.unlock(name, self.context.user, self.reason.text().strip() or "unlocked")
        except InspectorError as exc:
            self._say(f"Not unlocked: {exc}", trouble=True)
            return False
        self._say(f"Account {name!r} unlocked.")
        return True

    def _say(self, text: str, trouble: bool = False) -> None:
        bg = palette.TROUBLE["warning"][0] if trouble else "transparent"
        self.feedback.setStyleSheet(f"QLabel {{ background: {bg}; color: {palette.TEXT}; padding: 4px; }}")
        self.feedback.setText(text)
