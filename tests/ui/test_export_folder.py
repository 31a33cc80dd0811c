"""The export folder dialog's logic: it starts in the last folder used, else Documents, else home
(never the program's folder); a new folder name is taken as it is and an existing folder gets a
new dated sub-folder; the dialog lets the auditor type a new name and create folders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog

from ui.audit.export_folder import bundle_name, export_target, folder_dialog, start_folder


def test_start_folder_prefers_the_last_one_then_documents_then_home(tmp_path: Path) -> None:
    last, docs, home = (tmp_path / n for n in ("last", "docs", "home"))
    for folder in (last, docs, home):
        folder.mkdir()
    assert start_folder(str(last), str(docs), home) == last
    assert start_folder(str(tmp_path / "removed-since"), str(docs), home) == docs
    assert start_folder(None, str(tmp_path / "no-documents"), home) == home
    assert start_folder(None, "", home) == home


def test_a_new_folder_name_is_used_and_an_existing_folder_gets_a_sub_folder(tmp_path: Path) -> None:
    when = datetime(2026, 5, 9, 14, 30, tzinfo=UTC)
    new = tmp_path / "audits" / "may-export"  # neither exists yet: the export creates both
    assert export_target(new, when) == new
    assert export_target(tmp_path, when) == tmp_path / "inspector-export-20260509T143000Z"
    assert bundle_name(when) == "inspector-export-20260509T143000Z"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        export_target(tmp_path / "notes.txt", when)


def test_the_dialog_accepts_new_names_and_can_create_folders(qtbot, tmp_path: Path) -> None:
    dialog = folder_dialog(None, tmp_path)
    qtbot.addWidget(dialog)
    assert dialog.fileMode() == QFileDialog.FileMode.AnyFile  # not ExistingDirectory, which refuses new names
    assert dialog.acceptMode() == QFileDialog.AcceptMode.AcceptSave
    assert not dialog.testOption(QFileDialog.Option.ReadOnly)  # [Create New Folder] stays
    assert Path(dialog.directory().absolutePath()) == tmp_path
    assert dialog.selectedFiles()[0].startswith(str(tmp_path / "inspector-export-"))
