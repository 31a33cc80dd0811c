"""'Change your password' for the signed-in user: the current one, the new one twice.

Not modal (the line keeps running and the window keeps answering); the core proves the current
password (a wrong one counts toward the lockout like a failed sign-in) and logs the change.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from inspector.errors import InspectorError
from inspector.store.users import Session
from ui.widgets.status_line import StatusLine


class ChangePasswordDialog(QDialog):
    """Change the signed-in user's own password; `changed` once it is stored."""

    changed = Signal()

    def __init__(self, log, user: Session, parent: QWidget | None = None) -> None:  # log: DecisionLog
        super().__init__(parent)
        self.log, self.user = log, user
        self.setWindowTitle("Change your password")
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.current = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.new = QLineEdit(echoMode=QLineEdit.EchoMode.Password, placeholderText="8 or more characters")
        self.repeat = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.feedback = StatusLine()
        intro = QLabel(f"{user.printed_name} ({user.name}): choose a password only you know.")
        intro.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Current password", self.current)
        form.addRow("New password", self.new)
        form.addRow("New password again", self.repeat)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.addButton("Change password", QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok.setDefault(True)
        buttons.accepted.connect(self.submit)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.feedback)
        layout.addWidget(buttons)
        self.setMinimumWidth(440)

    def submit(self) -> bool:
        """Store the new password through the core; the reason shows inline when it is refused."""
        if not self.current.text() or not self.new.text():
            self.feedback.show_error("Enter your current password and the new one.")
            return False
        if self.new.text() != self.repeat.text():
            self.feedback.show_error("The two new passwords differ; type them again.")
            self.new.clear()
            self.repeat.clear()
            self.new.setFocus()
            return False
        try:
            self.log.users.change_own_password(self.user.name, self.current.text(), self.new.text())
        except InspectorError as exc:
            self.feedback.show_error(f"Not changed: {exc}")
            self.current.clear()
            self.current.setFocus()
            return False
        for edit in (self.current, self.new, self.repeat):
            edit.clear()
        self.changed.emit()
        self.accept()
        return True
