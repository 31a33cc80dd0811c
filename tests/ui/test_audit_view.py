"""Audit view: opens for every role with the actions it allows, filters work, an inspection opens
in full, verification shows intact and then the first bad row after tampering, an export runs
in a Task and its bundle verifies; QA corrects an inspection through a dialog (the core enforces the
role and the reason) and the list and detail show the correction."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from fakes import HashScorer
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.frame.records import Decision, Frame
from inspector.library.labels import seed_library_dir
from inspector.station import Station
from inspector.store.audit import inspection_record
from inspector.store.export import verify_export
from ui.audit.correction_dialog import CorrectionDialog
from ui.audit.view import INSPECTION_COLUMNS, AuditView
from ui.context import AppContext

DIM = 64


def _scorer() -> HashScorer:
    """An image's red value picks the text it matches."""
    return HashScorer(
        "hash-model-0123456789abcdef",
        dim=DIM,
        by_red={
            10: "a thin straight scratch across the surface",
            20: "a jagged crack running through the material",
            30: "a clean surface with no visible defects",
        },
    )


def _config(root: Path) -> StationConfig:
    return StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(root / "s.db")),
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, add_accounts):
    """Two operators' inspections (scratch, crack, ok) with answers, built once; tests use copies."""
    root = tmp_path_factory.mktemp("audit_view")
    with Station.open(_config(root), scorer=_scorer()) as st:
        log = st.log
        users = add_accounts(
            log,
            {"qa1": "qa", "op1": "operator", "op2": "operator", "aud1": "auditor"},
            printed_name=str.upper,
            sign_in=True,
        )
        for seq, (red, who) in enumerate([(10, "op1"), (20, "op2"), (30, "op2")], start=1):
            rgb = np.zeros((6, 8, 3), np.uint8)
            rgb[..., 0] = red
            result = st.record(st.inspect(Frame(rgb, datetime.now(UTC), "cam", seq)), users[who])
            top = result.ranking.top
            log.record_decision(
                Decision(result.inspection_id, "confirm", who, top.label_id, 1, comment=f"note {seq}"), users[who]
            )
    return root, users


@pytest.fixture()
def setup(template, tmp_path: Path):
    root, users = template
    shutil.copytree(root, tmp_path / "station")
    with Station.open(_config(tmp_path / "station"), scorer=_scorer()) as st:
        yield st, users


def _view(qtbot, st: Station, user) -> AuditView:
    view = AuditView(AppContext(st, _config(Path(st.log.sdb.path).parent), user))
    qtbot.addWidget(view)
    return view


@pytest.mark.parametrize(
    "user,verify,export", [("aud1", True, True), ("qa1", False, True), ("op1", False, False), ("admin", False, False)]
)
def test_view_opens_for_each_role_with_its_actions(qtbot, setup, user: str, verify: bool, export: bool) -> None:
    st, users = setup
    view = _view(qtbot, st, users[user])
    view.show()
    assert view.inspections.row_count() == 3 and view.decisions.row_count() == 3 and view.events.row_count() > 5
    assert view.actions.verify_button.isEnabled() is verify and view.actions.export_button.isEnabled() is export
    state_col = [title for _key, title in INSPECTION_COLUMNS].index("State")
    assert {view.inspections.item(r, state_col).text() for r in range(3)} == {"answered"}  # every part answered


def test_filters_by_operator_label_verdict_and_time(qtbot, setup) -> None:
    st, users = setup
    view = _view(qtbot, st, users["aud1"])
    bar = view.filter_bar
    bar.operator.setCurrentText("op2")
    view.apply_filter()
    assert {view.inspections.row_at(r)["user"] for r in range(view.inspections.row_count())} == {"op2"}
    assert view.inspections.row_count() == 2 and view.decisions.row_count() == 2
    assert {view.events.row_at(r)["user"] for r in range(view.events.row_count())} == {"op2"}
    bar.operator.setCurrentIndex(0)
    bar.label.setCurrentText("crack")
    bar.verdict.setCurrentText("scrap")
    view.apply_filter()
    assert [view.inspections.row_at(r)["top_label_id"] for r in range(view.inspections.row_count())] == ["crack"]
    bar.label.setCurrentIndex(0)
    bar.verdict.setCurrentText("rework")
    view.apply_filter()
    assert [view.inspections.row_at(0)["top_label_id"]] == ["scratch"] and view.inspections.row_count() == 1
    bar.verdict.setCurrentIndex(0)
    bar.from_edit.setText(st.log.inspections()[1]["recorded_at"])
    view.apply_filter()
    assert view.inspections.row_count() == 2
    bar.from_edit.setText("last tuesday")
    assert view.apply_filter() is None and view.summary.is_error and "ISO 8601" in view.summary.text()


def test_opening_an_inspection_shows_what_an_auditor_needs(qtbot, setup) -> None:
    st, users = setup
    view = _view(qtbot, st, users["aud1"])
    view.decisions.setCurrentCell(1, 0)  # a decision opens its inspection
    detail = view.detail
    second = st.log.inspections()[1]
    assert detail.record.id == second["id"] and detail.title.text() == f"Inspection {second['id']}"
    assert detail.fields["Model id"].text() == "hash-model-0123456789abcdef"
    assert detail.fields["Library version"].text() == "v1" and detail.fields["Recorded by"].text() == "op2"
    assert detail.fields["Recorded (UTC)"].text().endswith("Z")
    assert detail.ranking.rowCount() == len(st.index.library.labels)
    stored = json.loads(second["candidates"])  # the scores as recorded, not recomputed
    assert [detail.ranking.item(r, 3).text() for r in range(len(stored))] == [f"{c['score']:.3f}" for c in stored]
    assert detail.ranking.item(0, 1).text() == "Crack"
    assert detail.ranking.item(0, 4).text() == f"{stored[0]['probability']:.3f}"
    assert "OP2 [op2, operator]: confirm #1 crack; comment: note 2" in detail.decisions.text()
    assert not detail.image.pixmap().isNull()


def test_verify_shows_intact_then_the_first_bad_row_after_tampering(qtbot, setup) -> None:
    st, users = setup
    view = _view(qtbot, st, users["aud1"])
    with qtbot.waitSignal(view.actions.task_done, timeout=10_000):
        assert view.actions.verify()
    result = view.actions.verify_result
    assert result.text().startswith("Chain intact") and not result.is_error
    assert view.events.row_at(view.events.row_count() - 1)["kind"] == "verification"  # the list was refreshed

    raw = sqlite3.connect(st.log.sdb.path)  # around the application, as tests/inspector/test_chain_tamper.py does
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        raw.execute(f'DROP TRIGGER "{name}"')
    raw.execute("UPDATE decisions SET comment = 'edited later' WHERE id = 2")
    raw.commit()
    raw.close()
    with qtbot.waitSignal(view.actions.task_done, timeout=10_000):
        assert view.actions.verify()
    assert result.is_error and "First bad row: decisions row 2" in result.text()


def test_export_runs_in_a_task_and_the_bundle_verifies(qtbot, setup, tmp_path: Path) -> None:
    st, users = setup
    view = _view(qtbot, st, users["aud1"])
    out = tmp_path / "bundle"
    said = []
    view.actions.confirm = lambda text: said.append(text) or True
    view.choose_folder = lambda: str(out)
    with qtbot.waitSignal(view.actions.task_done, timeout=20_000):
        assert view.actions.export()
        assert view.actions.export_task.is_running() or out.exists()
    assert not view.actions.export_result.is_error, view.actions.export_result.text()
    assert "bundle intact" in view.actions.export_result.text() and view.actions.export_progress.value() == 1
    report = verify_export(out, st.log.sdb.key)
    assert report.ok and report.hmac_checked and len(list((out / "images").iterdir())) == 3
    assert said[0].startswith("Export 3 inspections") and "with images (3 image files)" in said[0]
    assert view.events.row_at(view.events.row_count() - 1)["kind"] == "export"
    view.choose_folder = lambda: str(out)  # the same folder again: the core refuses, the view says so
    with qtbot.waitSignal(view.actions.task_done, timeout=10_000):
        view.actions.export()
    assert view.actions.export_result.is_error and "exists" in view.actions.export_result.text()
    assert st.log.events(kind="ui_error")[-1]["user"] == "aud1"  # the failure is in the audit trail too


def test_heatmap_of_a_logged_inspection_is_computed_in_a_task_or_refused_plainly(qtbot, setup) -> None:
    st, users = setup
    view = _view(qtbot, st, users["aud1"])
    view.inspections.setCurrentCell(0, 0)
    detail = view.detail
    assert detail.heatmap_button.isEnabled()
    detail.heatmap_button.click()
    qtbot.waitUntil(lambda: not detail.busy(), timeout=10_000)
    # This station's test scorer has no Grad-CAM: the auditor is told so, nothing crashes.
    assert "No heatmap:" in detail.heatmap_note.text() and "cannot explain" in detail.heatmap_note.text()
    assert not detail.heatmap.isVisible()


def test_a_heatmap_for_a_record_no_longer_shown_is_dropped(qtbot, setup) -> None:
    import threading

    from inspector.frame.explain import Heatmap
    from inspector.store.audit import inspection_record
    from ui.audit.inspection_detail import InspectionDetail

    st, _ = setup
    first, second = (inspection_record(st.log, row["id"]) for row in st.log.inspections()[:2])
    release = threading.Event()

    def explain(record, rank):
        release.wait(5)
        h, w = record.height, record.width
        return Heatmap(
            np.zeros((h, w), np.float32),
            np.full((h, w, 3), 200, np.uint8),
            (1, 2, 3, 4),
            (2, 3),
            "similarity",
            "visual.layer",
            record.candidates[rank - 1].label_id,
        )

    detail = InspectionDetail(explain)
    qtbot.addWidget(detail)
    detail.show()
    detail.set_record(first)
    detail.heatmap_button.click()
    assert detail.busy() and not detail.heatmap_button.isEnabled()  # one at a time, the GUI not waiting
    detail.set_record(second)
    release.set()
    qtbot.waitUntil(lambda: not detail.busy(), timeout=5_000)
    assert not detail.heatmap.isVisible() and detail.heatmap_note.text() == ""
    detail.heatmap_button.click()
    qtbot.waitUntil(lambda: not detail.busy(), timeout=5_000)
    assert detail.heatmap.isVisible() and not detail.heatmap.pixmap().isNull()
    assert f"#1 {second.candidates[0].label_id}" in detail.heatmap_note.text()


def _column(title: str) -> int:
    return [t for _key, t in INSPECTION_COLUMNS].index(title)


def test_qa_corrects_an_inspection_and_the_view_shows_it(qtbot, setup) -> None:
    st, users = setup
    view = _view(qtbot, st, users["qa1"])
    view.inspections.setCurrentCell(0, 0)
    detail = view.detail
    first = detail.record
    assert not detail.correct_button.isHidden() and detail.correct_button.isEnabled()
    assert detail.corrections.isHidden() and "corrected" not in detail.title.text()
    asked = []
    view.ask_correction = lambda record: asked.append(record.id) or ("ok", "  the mark wipes off  ")
    with qtbot.waitSignal(detail.correct_requested, timeout=1000):
        detail.correct_button.click()
    assert asked == [first.id]
    rows = st.log.decisions(inspection_id=first.id)
    assert len(rows) == 2 and rows[1]["corrects_id"] == rows[0]["id"] and rows[1]["label_id"] == "ok"
    assert rows[1]["reason"] == "the mark wipes off" and rows[1]["operator"] == "qa1"
    assert view.inspections.item(0, _column("Corrected")).text() == "yes"
    assert view.inspections.item(1, _column("Corrected")).text() == ""
    assert detail.record.id == first.id and detail.title.text().endswith("(corrected by QA)")
    text = detail.corrections.text()
    assert not detail.corrections.isHidden() and "QA1 [qa1, qa]" in text
    assert "scratch (#1) → ok (#" in text and "Reason: the mark wipes off" in text
    assert "Correction recorded" in view.summary.text() and st.log.verify().ok
    view.ask_correction = lambda record: None  # cancelled: nothing written
    assert not view.correct(detail.record) and len(st.log.decisions(inspection_id=first.id)) == 2


def test_other_roles_get_no_button_and_the_core_refuses_them(qtbot, setup) -> None:
    st, users = setup
    view = _view(qtbot, st, users["aud1"])
    view.inspections.setCurrentCell(0, 0)
    assert view.detail.correct_button.isHidden()
    view.ask_correction = lambda record: ("ok", "auditor tries anyway")
    assert not view.correct(view.detail.record)  # the core, not the button, is what refuses
    assert view.summary.is_error and "may not correct" in view.summary.text()
    assert len(st.log.decisions(inspection_id=view.detail.record.id)) == 1
    assert st.log.events(kind="denied")[-1]["user"] == "aud1"


def test_the_dialog_needs_another_label_and_a_reason(qtbot, setup) -> None:
    st, _ = setup
    record = inspection_record(st.log, st.log.inspections()[0]["id"])
    dialog = CorrectionDialog(record)
    qtbot.addWidget(dialog)
    assert dialog.label.currentData() == "scratch" and not dialog.ok.isEnabled()  # the recorded label, preselected
    assert [dialog.label.itemData(i) for i in range(dialog.label.count())] == [c.label_id for c in record.candidates]
    dialog.label.setCurrentIndex(dialog.label.findData("crack"))
    assert not dialog.ok.isEnabled() and "reason" in dialog.hint.text()
    dialog.reason.setPlainText("   ")
    assert not dialog.ok.isEnabled()
    dialog.reason.setPlainText("a crack runs under the scratch")
    assert dialog.ok.isEnabled() and dialog.chosen() == ("crack", "a crack runs under the scratch")
    dialog.label.setCurrentIndex(dialog.label.findData("scratch"))
    assert not dialog.ok.isEnabled()


def _bundle_ids(out: Path, table: str) -> list[int]:
    return [json.loads(line)["row"]["id"] for line in (out / f"{table}.jsonl").read_text().splitlines()]


def test_export_writes_only_what_the_filter_lists_and_says_so_first(qtbot, setup, tmp_path: Path) -> None:
    st, users = setup
    view = _view(qtbot, st, users["aud1"])
    view.filter_bar.operator.setCurrentText("op2")
    view.apply_filter()
    listed = [view.inspections.row_at(r)["id"] for r in range(view.inspections.row_count())]
    said, asked = [], []
    view.actions.confirm = lambda text: said.append(text) or False  # the auditor reads it and cancels
    view.choose_folder = lambda: asked.append(1) or str(tmp_path / "never")
    assert not view.actions.export() and not asked and not (tmp_path / "never").exists()
    assert said[0].startswith("Export 2 inspections, recorded ") and "with their 2 decisions" in said[0]
    assert "with images (2 image files)" in said[0] and "Only: operator op2." in said[0]
    out = tmp_path / "filtered"
    view.actions.confirm = lambda text: True
    view.choose_folder = lambda: str(out)
    with qtbot.waitSignal(view.actions.task_done, timeout=20_000):
        assert view.actions.export()
    assert not view.actions.export_result.is_error, view.actions.export_result.text()
    assert "Exported 2 inspections, 2 decisions" in view.actions.export_result.text()
    assert verify_export(out, st.log.sdb.key).ok
    assert _bundle_ids(out, "inspections") == listed and len(list((out / "images").iterdir())) == 2
    assert {st.log.inspection(i)["user"] for i in _bundle_ids(out, "inspections")} == {"op2"}
    assert {d["inspection_id"] for d in st.log.decisions() if d["id"] in _bundle_ids(out, "decisions")} == set(listed)
    assert {json.loads(line)["row"]["user"] for line in (out / "events.jsonl").read_text().splitlines()} == {"op2"}
    view.filter_bar.operator.setCurrentText("admin")  # the admin recorded no inspection
    view.filter_bar.from_edit.setText("2999-01-01")
    view.apply_filter()
    assert not view.actions.export() and view.actions.export_result.text().startswith("Nothing to export")
