"""QA view: opens for every role, edit actions follow the role (and the core refuses a forced
publish), a QA edit publishes a new version, the impact preview lists exactly the inspections
whose #1 changes, agreement figures show."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from PySide6.QtCore import Qt

from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.frame.records import Decision, Frame
from inspector.library.draft import Edit
from inspector.station import Station
from ui.context import AppContext
from ui.qa.view import QAView

DIM = 8
TEXT = {"clean": 0, "scratch": 1, "crack": 2, "fracture": 3, "gouge": 4, "a gouge": 4}
# red value -> {basis index: weight}. With the draft below (gouge joins scratch; crack loses "crack"),
# by hand: 10 stays ok; 20 ok -> scratch; 30 crack -> scratch; 40 scratch -> crack (see test_impact.py).
IMAGES = {10: {0: 1.0}, 20: {0: 0.1, 4: 1.0}, 30: {2: 1.0, 1: 0.3}, 40: {3: 1.0, 1: 0.7}}
LIBRARY = {
    "format": 1,
    "name": "basis",
    "labels": [
        {"id": "ok", "name": "No defect", "disposition": "accept", "descriptions": ["clean"]},
        {"id": "scratch", "name": "Scratch", "disposition": "rework", "severity": 2, "descriptions": ["scratch"]},
        {"id": "crack", "name": "Crack", "disposition": "scrap", "severity": 5, "descriptions": ["crack", "fracture"]},
    ],
}
DRAFT = [
    Edit("add_description", "scratch", "operators call it a gouge", "gouge"),
    Edit("retire_description", "crack", "too generic", "crack"),
]


def _unit(weights: dict[int, float]) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    for i, w in weights.items():
        v[i] = w
    return v / np.linalg.norm(v)


class BasisScorer:
    """Texts are basis vectors; an image's red value picks a hand-chosen mix of them."""

    model_id, logit_scale, image_size, device = "basis-model", 10.0, 8, "cpu"
    gate: threading.Event | None = None  # when set, embed_images waits for it (to test cancel)

    def embed_texts(self, texts):
        return np.stack([_unit({TEXT[t]: 1.0}) for t in texts]) if texts else np.zeros((0, DIM), np.float32)

    def embed_images(self, images):
        if self.gate is not None:
            self.gate.wait(10)
        return np.stack([_unit(IMAGES[int(im[0, 0, 0])]) for im in images])


def _config(root: Path) -> StationConfig:
    return StationConfig(library=LibraryConfig(str(root / "lib.yaml")), database=DatabaseConfig(str(root / "s.db")))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, add_accounts):
    """Users, four logged inspections and two answers, built once; each test works on a copy."""
    root = tmp_path_factory.mktemp("qa_view")
    (root / "lib.yaml").write_text(yaml.safe_dump(LIBRARY))
    with Station.open(_config(root), scorer=BasisScorer()) as st:
        log = st.log
        roles = {"qa1": "qa", "op1": "operator", "aud1": "auditor"}
        sessions = add_accounts(log, roles, sign_in=True)
        users = {"admin": sessions["admin"]} | {role: sessions[name] for name, role in roles.items()}
        ids = {}
        for seq, red in enumerate(IMAGES, start=1):
            rgb = np.zeros((6, 6, 3), np.uint8)
            rgb[..., 0] = red
            ids[red] = st.record(st.inspect(Frame(rgb, datetime.now(UTC), "cam", seq)), users["operator"]).inspection_id
        log.record_decision(Decision(ids[40], "pick", "op1", "crack", 2), users["operator"])
        log.record_decision(Decision(ids[20], "none_of_these", "op1", typed_description="a gouge"), users["operator"])
    return root, users, ids


@pytest.fixture()
def setup(template, tmp_path: Path):
    root, users, ids = template
    shutil.copytree(root, tmp_path / "station")
    with Station.open(_config(tmp_path / "station"), scorer=BasisScorer()) as st:
        yield st, users, ids


def _view(qtbot, st: Station, user) -> QAView:
    view = QAView(AppContext(st, _config(Path(st.log.sdb.path).parent), user))
    qtbot.addWidget(view)
    return view


@pytest.mark.parametrize("role", ["qa", "operator", "auditor", "admin"])
def test_view_opens_for_each_role_and_edit_actions_follow_it(qtbot, setup, role: str) -> None:
    st, users, _ = setup
    view = _view(qtbot, st, users[role])
    view.show()
    editable = role == "qa"
    form = view.editor.form
    assert view.tabs.count() == 8 and view.editor.labels_table.rowCount() == 3
    assert view.good_model.build_button.isEnabled() is editable  # the good-part model too (Good parts tab)
    assert form.add_label_button.isEnabled() is editable and form.reason.isEnabled() is editable
    assert form.add_description_button.isEnabled() is editable  # the first label is selected
    assert not view.editor.draft_box.publish_button.isEnabled()  # nothing staged yet
    assert view.finetune.start_button.isEnabled() is editable  # fine-tuning, like editing, is for QA only
    assert view.agreement.report is not None and view.agreement.report.answered == 2


def test_operator_forced_publish_is_refused_by_the_core_and_logged(qtbot, setup) -> None:
    st, users, _ = setup
    view = _view(qtbot, st, users["operator"])
    assert view.editor.stage(DRAFT[0])  # a draft is local: only publishing reaches the core
    assert not view.editor.draft_box.publish_button.isEnabled()
    assert view.editor.publish_draft() is None  # forced past the disabled button
    assert view.editor.status.is_error and "may not edit library" in view.editor.status.text()
    assert st.log.library.current_version() == 1
    denied = st.log.events(kind="denied")[-1]
    assert (denied["user"], denied["subject"]) == ("op1", "library_publish_draft")


def test_qa_edit_through_the_form_publishes_a_new_version(qtbot, setup) -> None:
    st, users, _ = setup
    view = _view(qtbot, st, users["qa"])
    editor, form = view.editor, view.editor.form
    editor.labels_table.setCurrentCell(1, 0)  # scratch
    form.reason.setText("operators call it a gouge")
    form.description.setText("gouge")
    qtbot.mouseClick(form.add_description_button, Qt.MouseButton.LeftButton)
    assert [e.describe() for e in editor.edits] == ["scratch: add description 'gouge'"]
    assert editor.labels_table.item(1, 6).text() == "changed (draft)"
    qtbot.mouseClick(editor.draft_box.publish_button, Qt.MouseButton.LeftButton)
    assert editor.confirm.isVisible() and st.log.library.current_version() == 1  # asked first
    qtbot.mouseClick(editor.confirm.publish_button, Qt.MouseButton.LeftButton)
    assert st.log.library.current_version() == 2 and editor.edits == ()
    assert st.index.library_version == 2 and "gouge" in st.index.library.label("scratch").descriptions
    assert editor.history.item(0, 0).text() == "v2" and editor.history.item(0, 2).text() == "qa1"
    assert editor.history.item(0, 3).text() == "operators call it a gouge"
    assert "Published v2" in editor.status.text() and not editor.status.is_error


def test_staging_without_a_reason_is_refused_inline(qtbot, setup) -> None:
    st, users, _ = setup
    view = _view(qtbot, st, users["qa"])
    view.editor.labels_table.setCurrentCell(1, 0)
    view.editor.form.description.setText("gouge")
    qtbot.mouseClick(view.editor.form.add_description_button, Qt.MouseButton.LeftButton)
    assert view.editor.edits == () and view.editor.status.is_error and "reason" in view.editor.status.text()
    view.editor.labels_table.setCurrentCell(2, 0)  # crack: give it its own threshold
    form = view.editor.form
    form.threshold.setValue(0.5)
    form.reason.setText("scrap only when sure")
    qtbot.mouseClick(form.update_button, Qt.MouseButton.LeftButton)
    assert [e.describe() for e in view.editor.edits] == ["crack: set threshold = 0.5"]
    assert view.editor.draft_library().label("crack").threshold == 0.5


def test_impact_preview_lists_exactly_the_inspections_whose_top1_changes(qtbot, setup) -> None:
    st, users, ids = setup
    view = _view(qtbot, st, users["qa"])
    for edit in DRAFT:
        assert view.editor.stage(edit)
    with qtbot.waitSignal(view.impact.preview_done, timeout=10_000) as blocker:
        assert view.preview()
    qtbot.waitUntil(lambda: not view.impact.task.is_running(), timeout=5000)
    report = blocker.args[0]
    assert {row.inspection_id for row in report.changed} == {ids[20], ids[30], ids[40]}
    table = view.impact.table
    cells = {int(table.item(r, 0).text()): [table.item(r, c).text() for c in range(6)] for r in range(table.rowCount())}
    shown = {i: (row[2].split(" (")[0], row[3].split(" (")[0]) for i, row in cells.items()}
    assert shown == {ids[20]: ("No defect", "Scratch"), ids[30]: ("Crack", "Scratch"), ids[40]: ("Scratch", "Crack")}
    assert cells[ids[40]][4:] == ["crack", "now matches the answer"] and cells[ids[20]][4] == "none of these"
    assert view.tabs.currentWidget() is view.impact and "3 of 4 inspections" in view.impact.summary.text()
    assert view.impact.progress.value() == 4 and st.log.library.current_version() == 1  # nothing published


def test_impact_preview_can_be_cancelled(qtbot, setup) -> None:
    st, users, _ = setup
    st.scorer.gate = threading.Event()
    view = _view(qtbot, st, users["qa"])
    view.editor.stage(DRAFT[0])
    assert view.impact.start()
    assert view.impact.cancel_button.isEnabled() and not view.impact.preview_button.isEnabled()
    with qtbot.waitSignal(view.impact.task.done, timeout=10_000):
        qtbot.mouseClick(view.impact.cancel_button, Qt.MouseButton.LeftButton)
        st.scorer.gate.set()
    assert "cancelled" in view.impact.summary.text() and view.impact.table.rowCount() == 0
    assert view.impact.preview_button.isEnabled()


def test_agreement_figures_and_plot(qtbot, setup) -> None:
    st, users, _ = setup
    view = _view(qtbot, st, users["qa"])
    view.tabs.setCurrentWidget(view.agreement)
    report = view.agreement.report
    # answers: image 40 -> crack at rank 2 (model #1 scratch); image 20 -> none of these (model #1 ok)
    assert (report.answered, report.top1, report.top3, report.none_of_these) == (2, 0, 1, 1)
    table = view.agreement.labels_table
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == ["No defect", "Scratch", "Crack"]
    assert [(row.name, row.top1, row.top3) for row in view.agreement.chart.rows] == [("Crack", 0.0, 1.0)]
    confusion = view.agreement.confusion
    assert confusion.columnCount() == 2 and confusion.horizontalHeaderItem(1).text() == "None of these"
    image = view.agreement.chart.grab().toImage()
    assert image.width() > 0 and image.pixelColor(image.width() // 2, image.height() // 2).isValid()


def test_none_of_these_texts_are_adopted_through_the_draft_and_published_once(qtbot, setup, tmp_path) -> None:
    """Issue 15 item 5: the operator's text shows in QA; adopting it stages a draft edit; publishing
    (asked once, the staged changes listed) makes one version and the text leaves the list."""
    st, users, ids = setup
    view = _view(qtbot, st, users["qa"])
    view.resize(1280, 800)
    view.show()
    view.tabs.setCurrentWidget(view.texts)
    texts = view.texts
    row = [texts.table.item(0, c).text() for c in range(5)]
    assert texts.table.rowCount() == 1 and row[0] == "a gouge" and row[2:] == [f"#{ids[20]}", "op1", "1"]
    texts.label_choice.setCurrentIndex(texts.label_choice.findData("scratch"))
    assert texts.adopt_button.text() == "Adopt as description of Scratch [scratch]"
    qtbot.mouseClick(texts.adopt_button, Qt.MouseButton.LeftButton)  # no reason yet
    assert view.editor.edits == () and texts.status.is_error and "reason" in texts.status.text()
    texts.reason.setText("operators call it a gouge")
    qtbot.mouseClick(texts.adopt_button, Qt.MouseButton.LeftButton)
    [edit] = view.editor.edits
    assert (edit.action, edit.label_id, edit.text) == ("add_description", "scratch", "a gouge") and edit.typed_from
    assert texts.table.item(0, 0).text() == "a gouge (staged in the draft)" and st.log.library.current_version() == 1
    assert texts.grab().save(str(tmp_path / "qa_none_of_these.png"))  # looked at while writing this test

    view.tabs.setCurrentWidget(view.editor)
    assert view.editor.stage(DRAFT[1])  # a second change in the same draft
    qtbot.mouseClick(view.editor.draft_box.publish_button, Qt.MouseButton.LeftButton)
    confirm = view.editor.confirm
    assert confirm.isVisible() and "2 staged changes as ONE library version, v2" in confirm.heading.text()
    assert confirm.lines() == [
        "~ label Scratch [scratch]",
        "    + description \u201ca gouge\u201d",
        "~ label Crack [crack]",
        "    \u2212 description \u201ccrack\u201d",
    ]
    assert confirm.grab().save(str(tmp_path / "qa_publish_confirm.png"))
    qtbot.mouseClick(confirm.publish_button, Qt.MouseButton.LeftButton)
    assert st.log.library.current_version() == 2 and len(st.log.library.history()) == 2  # one version for both
    assert "a gouge" in st.index.library.label("scratch").descriptions
    view.tabs.setCurrentWidget(view.texts)
    assert texts.table.rowCount() == 0  # adopted and in force: no longer open


def test_dismissing_a_text_needs_a_reason_and_follows_the_role(qtbot, setup) -> None:
    st, users, _ = setup
    view = _view(qtbot, st, users["qa"])
    texts = view.texts
    qtbot.mouseClick(texts.dismiss_button, Qt.MouseButton.LeftButton)
    assert texts.status.is_error and "why" in texts.status.text() and texts.table.rowCount() == 1
    texts.reason.setText("a tool mark from the test rig, not on production parts")
    qtbot.mouseClick(texts.dismiss_button, Qt.MouseButton.LeftButton)
    assert texts.table.rowCount() == 0 and not texts.status.is_error
    [event] = st.log.events(kind="none_of_these_dismissed")
    assert event["user"] == "qa1" and "tool mark" in event["detail"]
    assert _view(qtbot, st, users["qa"]).texts.table.rowCount() == 0  # not shown again
    auditor = _view(qtbot, st, users["auditor"]).texts
    assert not auditor.dismiss_button.isEnabled() and not auditor.adopt_button.isEnabled()
    operator = _view(qtbot, st, users["operator"]).texts
    assert operator.table.rowCount() == 0 and "may not see" in operator.status.text()


def test_publish_can_be_declined_and_a_new_label_defaults_to_review(qtbot, setup) -> None:
    """Issue 15 item 7: a new label starts at review, severity 3; Cancel keeps the draft unpublished."""
    st, users, _ = setup
    view = _view(qtbot, st, users["qa"])
    form = view.editor.form
    assert (form.new_disposition.currentText(), form.new_severity.value()) == ("review", 3)
    form.reason.setText("seen on line 2")
    form.new_id.setText("burr")
    form.new_description.setText("a sharp burr on the edge")
    qtbot.mouseClick(form.add_label_button, Qt.MouseButton.LeftButton)
    [edit] = view.editor.edits
    assert (edit.label.disposition, edit.label.severity) == ("review", 3)
    assert (form.new_disposition.currentText(), form.new_severity.value()) == ("review", 3)  # reset for the next
    qtbot.mouseClick(view.editor.draft_box.publish_button, Qt.MouseButton.LeftButton)
    assert view.editor.confirm.lines() == [
        "+ new label burr [burr]: review, severity 3",
        "    + description \u201ca sharp burr on the edge\u201d",
    ]
    view.editor.confirm.reject()
    assert st.log.library.current_version() == 1 and len(view.editor.edits) == 1
    assert "Not published" in view.editor.status.text()


def test_hand_set_thresholds_are_flagged_until_qa_confirms_them_for_the_model(qtbot, setup) -> None:
    from inspector.library.threshold_review import record_review

    st, users, _ = setup
    assert not _view(qtbot, st, users["qa"]).threshold_note.isVisibleTo(None)  # no hand-set threshold yet
    version = st.log.library.update_label("crack", {"threshold": 0.8}, users["qa"], "customer asked for it")
    st.refresh_library()
    view = _view(qtbot, st, users["qa"])
    assert not view.threshold_note.isHidden()
    assert (
        "'crack': hand-set threshold 0.80" in view.threshold_note.text() and "basis-model" in view.threshold_note.text()
    )
    record_review(st.log, users["qa"], st.model_id, version, "checked under this model")
    assert _view(qtbot, st, users["qa"]).threshold_note.isHidden()
