"""QA attaches example images in the library editor: from a file or a logged part, staged, previewed, published."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from tests.ui.test_qa_view import _view, setup, template  # noqa: F401  (pytest fixtures)


def test_qa_attaches_examples_from_a_logged_part_and_a_file(qtbot, setup, tmp_path: Path) -> None:  # noqa: F811
    st, users, ids = setup
    view = _view(qtbot, st, users["qa"])
    editor, form = view.editor, view.editor.form
    editor.labels_table.setCurrentCell(1, 0)  # scratch
    form.inspection_id.setValue(ids[20])
    qtbot.mouseClick(form.example_inspection_button, Qt.MouseButton.LeftButton)
    assert editor.edits == () and "reason" in editor.status.text()  # a reason first, as for every change
    form.reason.setText("gouges are scratches on this line")
    form.inspection_id.setValue(ids[20])
    qtbot.mouseClick(form.example_inspection_button, Qt.MouseButton.LeftButton)
    assert [e.action for e in editor.edits] == ["add_example"]
    assert (
        editor.labels_table.item(1, 5).text() == "1 + 1 img"
        and editor.labels_table.item(1, 6).text() == "changed (draft)"
    )

    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[..., 0] = 40
    Image.fromarray(rgb).save(tmp_path / "crack.png")
    (tmp_path / "bad.png").write_text("not an image")
    editor.labels_table.setCurrentCell(2, 0)  # crack
    form.choose_example_file = lambda: str(tmp_path / "bad.png")
    form.reason.setText("a photo from the lab")
    qtbot.mouseClick(form.example_file_button, Qt.MouseButton.LeftButton)
    assert len(editor.edits) == 1 and editor.status.is_error and "unrecognised header" in editor.status.text()
    form.choose_example_file = lambda: str(tmp_path / "crack.png")
    qtbot.mouseClick(form.example_file_button, Qt.MouseButton.LeftButton)
    assert [e.label_id for e in editor.edits] == ["scratch", "crack"]

    with qtbot.waitSignal(view.impact.preview_done, timeout=10_000) as blocker:
        assert view.preview()
    qtbot.waitUntil(lambda: not view.impact.task.is_running(), timeout=5000)
    assert ids[20] in {row.inspection_id for row in blocker.args[0].changed}  # the part now ranks as its example
    view.tabs.setCurrentWidget(editor)
    view.resize(1280, 800)
    view.show()
    # Rendered to look at (docs/screenshots/qa_library_examples.png is one such rendering).
    assert (
        view.grab().save(str(tmp_path / "qa_library_examples.png"))
        and (tmp_path / "qa_library_examples.png").stat().st_size
    )

    qtbot.mouseClick(editor.draft_box.publish_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(editor.confirm.publish_button, Qt.MouseButton.LeftButton)  # the staged changes, asked once
    assert st.log.library.current_version() == 2 and st.index.examples is not None  # both examples: one version
    assert st.index.library.label("scratch").examples[0].reason == "gouges are scratches on this line"
    rgb[..., 0] = 20
    from datetime import datetime

    from inspector.frame.records import Frame

    top = st.inspect(Frame(rgb, datetime.now(UTC), "cam", 99)).ranking.top
    assert (top.label_id, top.carried_by) == ("scratch", "both")  # live on the next part, no training
