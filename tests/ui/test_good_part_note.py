"""The good-part model's say is shown, not only applied: the operator reads why the part went to
review (distance against threshold) and, with a `--cells local` model, sees the unlike cells
outlined on the part; the audit detail says the same from the logged record."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings

from fakes import HashScorer, text_vector
from goodstation import confirm_part, open_station, part_frame
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.frame.records import Frame
from inspector.learning.good_model import build_good_model
from inspector.library.labels import seed_library_dir
from inspector.station import Station
from models.dense_map import FrameFeatures, View
from ui.audit.view import AuditView
from ui.context import AppContext
from ui.operator.view import OperatorView

SIDE = 112
SPOT = (80, 40, 88, 48)  # x0, y0, x1, y1: one cell of the 448-px grid (8 px), half a cell of the 224-px one
MAGENTA = (0xD0, 0x00, 0xD0)


class DenseGood(HashScorer):
    """A dense scorer whose grid follows its forward's input size (input // 32 cells a side, as the
    real tower's 7x7 at 224 and 14x14 at 448): cells over a bright spot embed as a crack, the others
    as a good surface with a little part-specific noise. The whole part always ranks as "ok"."""

    dense, input_size = True, 224

    def frontend_record(self, frontend=None) -> dict:
        return {"path": "fake-dense", "input_size": frontend.input_size}

    def encode_frame(self, rgb: np.ndarray, roi=None, frontend=None) -> FrameFeatures:
        n = frontend.input_size // 32
        cell = rgb.shape[0] // n
        good, crack = text_vector("good surface", self.dim), text_vector("cracked surface", self.dim)
        seed = int.from_bytes(hashlib.sha256(rgb.tobytes()).digest()[:8], "little")
        noise = np.random.default_rng(seed).normal(size=(n * n, self.dim)).astype(np.float32) * 0.03
        rows, boxes = [], []
        for i in range(n * n):
            y, x = divmod(i, n)
            box = (x * cell, y * cell, (x + 1) * cell, (y + 1) * cell)
            bright = rgb[box[1] : box[3], box[0] : box[2], 0].max() > 200
            v = crack if bright else good + noise[i]
            rows.append(v / np.linalg.norm(v))
            boxes.append(box)
        emb = text_vector("a clean surface with no visible defects", self.dim)  # the "ok" label's words
        whole = (0, 0, rgb.shape[1], rgb.shape[0])
        return FrameFeatures(emb, np.stack(rows), boxes, [View(whole, np.zeros((self.dim, 1, 1)), emb)], False)


def _part(seq: int, spot: bool = False) -> Frame:
    rgb = np.full((SIDE, SIDE, 3), 40, np.uint8)
    rgb[0, 0, 1] = seq % 251  # distinct parts, distinct hashes
    if spot:
        x0, y0, x1, y1 = SPOT
        rgb[y0:y1, x0:x1] = 255
    return Frame(rgb, datetime.now(UTC), "cam", seq)


def _config(tmp_path: Path) -> StationConfig:
    return StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )


def _dense_station(tmp_path: Path) -> Station:
    st = Station.open(_config(tmp_path), scorer=DenseGood(dim=64))
    admin_pw = "Admin-pass-1234"
    st.log.users.create_first_admin("admin", admin_pw)
    admin = st.log.login("admin", admin_pw)
    st.log.users.add_user("qa", "qa", "Qa-pass-123456", admin, temporary=False)
    st.log.users.add_user("op", "operator", "Op-pass-1234567", admin, temporary=False)
    return st


def _operator_view(qtbot, tmp_path: Path, st: Station, user) -> OperatorView:
    settings = QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat)
    view = OperatorView(AppContext(st, _config(tmp_path), user), None, settings=settings)
    qtbot.addWidget(view)
    view.resize(1100, 700)
    view.show()
    return view


def _magenta_pixels(image) -> list[tuple[int, int]]:
    out = []
    for y in range(image.height()):
        for x in range(image.width()):
            c = image.pixelColor(x, y)
            if (c.red(), c.green(), c.blue()) == MAGENTA:
                out.append((x, y))
    return out


def test_operator_sees_why_and_where_with_local_cells(qtbot, tmp_path: Path) -> None:
    with _dense_station(tmp_path) as st:
        qa, op = st.log.login("qa", "Qa-pass-123456"), st.log.login("op", "Op-pass-1234567")
        for seq in range(30):
            result = st.record(st.inspect(_part(seq)), op)
            assert result.ranking.top.label_id == "ok"
            confirm_part_result(st, result, op)
        model = build_good_model(st.log, st.scorer, st.scoring, qa, "local cells", cells="local")
        assert st.refresh_library() and st.good_model.cells == "local"
        view = _operator_view(qtbot, tmp_path, st, op)

        odd = st.record(st.inspect(_part(100, spot=True)), op)
        check = odd.good_part
        assert check.flagged and odd.verdict.needs_review  # ranked "ok", sent to review
        assert len(check.cells) != len(odd.local_boxes)  # its own 448-px grid, not the ranking's
        view.show_result(odd)
        note = view.good_note.text()
        assert view.good_note.isVisible()
        assert "unlike every confirmed good part" in note and "ranking called it good" in note
        assert f"distance {check.score:.3f}" in note and f"threshold {model.threshold:.3f}" in note
        assert "Areas unlike any good part: 1 of 196" in note
        assert view.frame.marks == [SPOT]  # exactly the cell over the spot, in frame pixels

        # Painted where the spot is: magenta pixels only inside the spot's place on screen.
        view.frame.overlay_enabled = False  # no heatmap worker answer can race the grab
        image = view.frame.grab().toImage()
        found = _magenta_pixels(image)
        assert found
        xs, ys = [p[0] for p in found], [p[1] for p in found]
        w, h = image.width(), image.height()
        assert min(xs) > w / 2 and max(ys) < h * 0.75  # right half, not the bottom: where (80..88, 40..48) lies
        if os.environ.get("SCREENSHOT_DIR"):
            view.grab().save(str(Path(os.environ["SCREENSHOT_DIR"]) / "operator_good_part.png"))

        assert view.answer("confirm", 1) is not None  # the held part answered, the next one is shown
        calm = st.record(st.inspect(_part(101)), op)
        assert not calm.good_part.flagged
        view.show_result(calm)
        assert not view.good_note.isVisible() and view.frame.marks == []
        view.shutdown(wait_ms=3000)


def confirm_part_result(st: Station, result, user) -> None:
    from inspector.frame.records import Decision

    st.log.record_decision(Decision(result.inspection_id, "confirm", user.name, "ok", 1), user)


def test_whole_part_model_says_why_without_outlines_and_audit_says_the_same(qtbot, tmp_path: Path) -> None:
    with open_station(tmp_path) as st:
        qa, op = st.log.login("qa", "Qa-pass-123456"), st.log.login("op", "Op-pass-1234567")
        before = st.record(st.inspect(part_frame(50, 900)), op).inspection_id  # no good-part model yet
        for seq in range(30):
            confirm_part(st, seq, seq, "ok", op)
        model = build_good_model(st.log, st.scorer, st.scoring, qa, "whole parts")
        assert st.refresh_library()
        bad = st.record(st.inspect(part_frame(130, 901)), op)
        good = st.record(st.inspect(part_frame(50, 902)), op)
        assert bad.good_part.flagged and not good.good_part.flagged

        view = _operator_view(qtbot, tmp_path, st, op)
        view.show_result(bad)
        assert view.good_note.isVisible() and f"distance {bad.good_part.score:.3f}" in view.good_note.text()
        assert view.frame.marks == []  # one row for the whole part: nothing to outline
        view.shutdown(wait_ms=3000)

        audit = AuditView(AppContext(st, None, qa))
        qtbot.addWidget(audit)
        audit.resize(1400, 900)
        audit.show()
        note = audit.detail.good_note
        assert audit.open_inspection(bad.inspection_id)
        assert note.isVisible() and model.sha256[:12] in note.text()
        assert "unlike every confirmed good part" in note.text()
        assert f"distance {bad.good_part.score:.3f}" in note.text()
        assert f"threshold {model.threshold:.3f}" in note.text()
        if os.environ.get("SCREENSHOT_DIR"):
            audit.grab().save(str(Path(os.environ["SCREENSHOT_DIR"]) / "audit_good_part.png"))
        assert audit.open_inspection(good.inspection_id)
        assert note.isVisible() and "within its threshold" in note.text()
        assert audit.open_inspection(before)
        assert not note.isVisible()
