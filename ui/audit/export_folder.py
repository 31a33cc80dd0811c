"""Where an audit export goes: a folder dialog that starts where the auditor last exported (else in
Documents, else home, never the program's folder) and takes a new folder name as well as an
existing folder. An existing folder gets a new dated sub-folder: a bundle never mixes with other files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths
from PySide6.QtWidgets import QFileDialog, QWidget

LAST_FOLDER_KEY = "audit/export_folder"


def bundle_name(now: datetime | None = None) -> str:
    """A new bundle folder's default name: inspector-export-<UTC stamp>."""
    return f"inspector-export-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}"


def start_folder(last: str | None, documents: str | None = None, home: Path | None = None) -> Path:
    """The folder the dialog opens in: the last one used if it still exists, else Documents, else home."""
    if documents is None:
        documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    for candidate in (last, documents):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return home or Path.home()


def export_target(chosen: str | Path, now: datetime | None = None) -> Path:
    """The bundle folder for what the auditor chose: a new name as it is (the core creates it, and any
    missing parents), an existing folder with a new dated sub-folder inside; ValueError for a file."""
    path = Path(chosen).expanduser()
    if path.is_dir():
        return path / bundle_name(now)
    if path.exists():
        raise ValueError(f"{path} is a file; choose a folder or type a new folder name")
    return path


def folder_dialog(parent: QWidget | None, start: Path) -> QFileDialog:
    """A save-style dialog: browse, make a folder ([Create New Folder]) or type a new folder name."""
    dialog = QFileDialog(parent, "Export into which folder? (type a new name, or choose a folder)")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setFileMode(QFileDialog.FileMode.AnyFile)  # a name that does not exist yet is accepted
    dialog.setOption(QFileDialog.Option.ReadOnly, False)  # keeps [Create New Folder]
    dialog.setOption(QFileDialog.Option.DontConfirmOverwrite, True)  # an existing folder gets a sub-folder
    dialog.setDirectory(str(start))
    dialog.selectFile(bundle_name())
    dialog.setLabelText(QFileDialog.DialogLabel.FileName, "Folder:")
    dialog.setLabelText(QFileDialog.DialogLabel.Accept, "Export here")
    return dialog


def ask_export_folder(parent: QWidget | None, settings: QSettings) -> str | None:
    """Ask for the bundle folder (modal); its path, or None if cancelled (ValueError: a file was chosen).
    Remembers the folder the bundle went into, for the next export."""
    last = settings.value(LAST_FOLDER_KEY)
    dialog = folder_dialog(parent, start_folder(str(last) if last else None))
    if not dialog.exec() or not dialog.selectedFiles():
        return None
    target = export_target(dialog.selectedFiles()[0])
    settings.setValue(LAST_FOLDER_KEY, str(target.parent))
    return str(target)
