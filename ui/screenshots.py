"""`python -m ui.screenshots OUT_DIR`: render every view to PNG offscreen (`make screenshots`).

Builds a throw-away station (temporary database) on the default model when it loads, else the
tiny one; generates sample parts, records them with the answers a careful operator would give
(the generator's ground truth), then shows each view as its user would see it and grabs it.
The fine-tuning shot runs a real (short) fine-tune on those answers (`--only finetune`: just it).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget

from inspector.capture.samples import SAMPLE_SOURCE_ID, sample_parts
from inspector.capture.simulated import SimulatedCamera
from inspector.config import DEFAULT_MODEL, DatabaseConfig, ModelConfig, StationConfig
from inspector.errors import InspectorError
from inspector.frame.answers import record_answer
from inspector.frame.queue import needs_attention
from inspector.frame.records import Frame, utc_now
from inspector.frame.scorer import Scorer, load_scorer
from inspector.library.draft import Edit
from inspector.station import Station
from ui.admin.login_view import LoginView
from ui.context import AppContext
from ui.main_window import MainWindow

SIZE = (1280, 800)
# The screenshot's run: short, but a real one on recorded answers.
FINETUNE_STEPS, FINETUNE_FORGETTING_N, FINETUNE_EXTRA_PARTS = 60, 32, 96
MAX_BYTES = 280_000  # keep the repository light: every picture under ~300 KB
PASSWORDS = {"admin": "admin-pass-1", "qa1": "qa1-pass-12", "op1": "op1-pass-12", "aud1": "aud1-pass-12"}
STAFF = {"reason": "screenshots", "temporary": False}  # staff sign straight in: no forced first change
# Shipped trained weights first, then the configured default, the bare architecture, the tiny model.
MODELS = tuple(dict.fromkeys(("default", DEFAULT_MODEL, "inspector-default", "inspector-tiny")))


def _wait(done: Callable[[], bool], timeout_s: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    QApplication.processEvents()
    return done()


def _save(widget: QWidget, out: Path, name: str, size: tuple[int, int] = SIZE) -> None:
    widget.resize(*size)
    widget.show()
    _wait(lambda: False, 0.3)  # let layouts and queued paints settle
    path = out / name
    image = widget.grab().toImage()
    image.save(str(path), "PNG", 0)  # quality 0 = maximum PNG compression
    if path.stat().st_size > MAX_BYTES:
        _save_quantized(image, path)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def _save_quantized(image: QImage, path: Path) -> None:
    """Photos and heatmaps make big PNGs: 256 colours from an adaptive palette still read well
    (Qt's own 8-bit conversion uses a fixed colour cube, which bands heatmaps badly)."""
    from PIL import Image

    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = rgb.width(), rgb.height()
    rows = np.frombuffer(rgb.constBits(), np.uint8).reshape(h, rgb.bytesPerLine())
    pixels = np.ascontiguousarray(rows[:, : 3 * w].reshape(h, w, 3))
    Image.fromarray(pixels).quantize(256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def _load_model() -> tuple[Scorer, str]:
    problems = []
    for ref in MODELS:
        try:
            return load_scorer(ref, "cpu"), ref
        except InspectorError as exc:
            problems.append(f"{ref}: {exc}")
    raise InspectorError("no model could be loaded: " + "; ".join(problems))


def _populate(station: Station) -> dict:
    """Accounts, and sample parts recorded with ground-truth answers (for the audit and QA views)."""
    log = station.log
    log.users.create_first_admin("admin", PASSWORDS["admin"], "Station Admin")
    admin = log.login("admin", PASSWORDS["admin"])
    for name, role, printed in (
        ("qa1", "qa", "Quinn QA"),
        ("op1", "operator", "Olga Operator"),
        ("aud1", "auditor", "Ari Auditor"),
    ):
        log.users.add_user(name, role, PASSWORDS[name], admin, printed_name=printed, **STAFF)
    users = {name: log.login(name, pw) for name, pw in PASSWORDS.items()}
    return {"users": users, "results": _answer_parts(station, users["op1"], 24, seed=7)}


def _answer_parts(station: Station, op, count: int, seed: int, first_seq: int = 0) -> list:
    """Record `count` generated parts, each answered as a careful operator would (ground truth)."""
    log, results = station.log, []
    for seq, part in enumerate(sample_parts(count, size=224, seed=seed), start=first_seq):
        frame = Frame(part.rgb, utc_now(), SAMPLE_SOURCE_ID, seq, origin=f"{part.defect} on {part.surface}")
        result = station.record(station.inspect(frame), op)
        ranks = {c.label_id: c.rank for c in result.ranking.candidates}
        if seq % 11 == 5:
            record_answer(log, result, op, "none_of_these", typed="oily fingerprint near the edge")
        elif seq % 13 == 7:
            record_answer(log, result, op, "reject_image")
        elif part.defect in ranks:
            record_answer(log, result, op, "pick", ranks[part.defect])
        results.append((part, result))
    return results


def _optional(module: str, cls: str):
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        print(f"skipped {cls}: {module} is not in this build")
        return None


def _operator(station: Station, config: StationConfig, settings: QSettings, part, out: Path, name: str) -> None:
    """The operator's window on a simulated camera replaying one part (the real capture path)."""
    settings.setValue("operator/heatmap", True)
    settings.setValue("operator/contrast", True)
    window = MainWindow(config, settings=settings)
    window.attach_station(station, lambda _ev: SimulatedCamera([part.rgb], fps=1.0, source_id=SAMPLE_SOURCE_ID))
    window.resize(*SIZE)
    window.show()
    window.login.name.setText("op1")
    window.login.password.setText(PASSWORDS["op1"])
    window.login.submit()
    view = window.operator_view
    # A part that needs attention is held with its heatmaps, and the next ones queue behind it;
    # an accepted part stays plain (no heatmap unless asked for) and the next ones flow past.
    if not _wait(
        lambda: (
            view.current is not None
            and view.rate.per_minute() is not None
            and (
                not needs_attention(view.current)
                or (view.frame.showing_overlay and view.contrast.showing_overlay and view.queue.waiting >= 2)
            )
        )
    ):
        print(f"heatmap not ready: {view.frame.note!r} / {view.contrast.note!r}")
    _save(window, out, name)
    window.sign_out("screenshot taken")  # stops the camera and logs the sign-out
    window.station = None  # render() closes it
    window.close()


def _operator_shots(station: Station, config: StationConfig, settings: QSettings, data: dict, out: Path) -> None:
    results = data["results"]
    defect = next((p for p, r in results if p.defect in ("crack", "scratch") and needs_attention(r)), results[0][0])
    _operator(station, config, settings, defect, out, "operator.png")
    _review_lane(station, config, settings, defect, out)
    calm = next((p for p, r in results if not needs_attention(r)), None)
    if calm is None:
        print("skipped operator-ok.png: this model accepted none of the sample parts")
    else:
        _operator(station, config, settings, calm, out, "operator-ok.png")


def _review_lane(station: Station, config: StationConfig, settings: QSettings, part, out: Path) -> None:
    """A line faster than the operator: with one part allowed to wait, the oldest go to the review
    lane; the window shows "N waiting · M in review" and the review list (F2) lists them."""
    settings.setValue("operator/heatmap", False)
    settings.setValue("operator/contrast", False)
    config = replace(config, queue=replace(config.queue, max_waiting=1))
    window = MainWindow(config, settings=settings)
    window.attach_station(station, lambda _ev: SimulatedCamera([part.rgb], fps=4.0, source_id=SAMPLE_SOURCE_ID))
    window.resize(*SIZE)
    window.show()
    window.login.name.setText("op1")
    window.login.password.setText(PASSWORDS["op1"])
    window.login.submit()
    view = window.operator_view
    if not _wait(lambda: view.in_review >= 3, 60):
        print(f"review lane not filled: {view.queue_label.text()!r}")
    view.capture.set_paused(True)  # hold the picture still while it is taken
    _save(window, out, "operator-queue.png")
    dialog = view.open_review_lane()
    if dialog is not None:
        _save(dialog, out, "operator-review-lane.png", (760, 420))
    window.sign_out("screenshot taken")  # the waiting part goes to the review lane too
    window.station = None
    window.close()


def _qa(context: AppContext, out: Path) -> None:
    view_class = _optional("ui.qa.view", "QAView")
    if view_class is None:
        return
    view = view_class(context)
    view.editor.stage(
        Edit(
            "add_description",
            "scratch",
            "operators call long scratches 'gouges'",
            text="a long gouge dragged across the part",
        )
    )
    _save(view, out, "qa-library.png")
    view.preview()
    task = view.impact.task
    _wait(lambda: task is not None and not task.is_running())
    _save(view, out, "qa-impact.png")
    view.tabs.setCurrentWidget(view.agreement)
    _save(view, out, "qa-agreement.png")
    view.tabs.setCurrentWidget(view.texts)  # the operators' "none of these" texts, grouped
    _save(view, out, "qa-none-of-these.png")
    view.tabs.setCurrentWidget(view.editor)
    if view.editor.request_publish():  # the staged changes, asked once before they go into force
        _save(view.editor.confirm, out, "qa-publish-confirm.png", (640, 480))
        view.editor.confirm.reject()  # nothing is published: the fine-tuning shot works on the same library
    view.close()


def _audit(context: AppContext, data: dict, out: Path) -> None:
    view_class = _optional("ui.audit.view", "AuditView")
    if view_class is None:
        return
    view = view_class(context)
    _save(view, out, "audit-list.png")
    defect = next((r for p, r in data["results"] if p.defect != "ok"), data["results"][0][1])
    view.open_inspection(defect.inspection_id)
    view.detail.show_heatmap()  # the auditor's heatmap of #1, with the model that ranked it
    _wait(lambda: not view.detail.busy())
    view.tabs.setCurrentIndex(2)  # events: logins, library seed, refusals
    _save(view, out, "audit-detail.png")
    view.close()


def _audit_correction(context: AppContext, data: dict, out: Path) -> None:
    """QA corrects an answered inspection from the audit detail: the dialog, then the corrected record."""
    view_class = _optional("ui.audit.view", "AuditView")
    if view_class is None:
        return
    from inspector.store.audit import inspection_record
    from inspector.store.corrections import in_force
    from ui.audit.correction_dialog import CorrectionDialog

    log = context.station.log
    answered = [r.inspection_id for _p, r in data["results"] if in_force(log.decisions(inspection_id=r.inspection_id))]
    if not answered:
        print("skipped audit-correction*.png: no sample part was answered")
        return
    view = view_class(context)
    view.open_inspection(answered[0])
    record = inspection_record(log, answered[0])
    dialog = CorrectionDialog(record, view)
    dialog.label.setCurrentIndex(1 if dialog.label.currentIndex() != 1 else 2)
    before, after = record.candidates[0].label_name.lower(), dialog.label.currentText().split(" [")[0].lower()
    dialog.reason.setPlainText(f"Checked the part under the lamp: {after}, not {before}.")
    _save(dialog, out, "audit-correction-dialog.png", (560, 300))
    view.ask_correction = lambda _record: dialog.chosen()
    view.correct(record)
    _save(view, out, "audit-corrected.png")
    dialog.close()
    view.close()


def _finetune(context: AppContext, data: dict, out: Path) -> None:
    """The fine-tuning tab after a real run on the recorded answers: the candidate and its figures."""
    view_class = _optional("ui.qa.view", "QAView")
    if view_class is None:
        return
    # A few more shifts of answers, so the held-out split has more than a handful of images.
    _answer_parts(context.station, data["users"]["op1"], FINETUNE_EXTRA_PARTS, seed=11, first_seq=1000)
    view = view_class(context)
    panel = view.finetune
    view.tabs.setCurrentWidget(panel)
    # A short run keeps `make screenshots` to minutes on a CPU; the form shows what a station would use.
    panel.base_config = replace(panel.base_config, batch_size=16, forgetting_n=FINETUNE_FORGETTING_N, device="cpu")
    panel.steps.setValue(FINETUNE_STEPS)
    t0 = time.monotonic()
    if panel.start():
        _wait(lambda: not panel.running(), timeout_s=1800)
    print(f"fine-tuning run: {time.monotonic() - t0:.0f} s; {panel.status.text().splitlines()[0][:120]}")
    panel.reason.setText("fewer missed scratches on line 2")
    _save(view, out, "qa-finetune.png")
    view.close()


def render(out: Path, only: str | None = None) -> int:
    """Render every view into `out` (only="finetune", "review", "correction" or "qa": just those); 0 on success."""
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(["screenshots"])
    app.setStyleSheet("")
    scorer, ref = _load_model()
    print(f"model: {ref} ({scorer.model_id[:12]})")
    with tempfile.TemporaryDirectory() as tmp:
        config = replace(
            StationConfig(), model=ModelConfig(ref, "cpu"), database=DatabaseConfig(str(Path(tmp) / "station.db"))
        )
        settings = QSettings(str(Path(tmp) / "ui.ini"), QSettings.Format.IniFormat)
        if only is None:
            with Station.open(
                replace(config, database=DatabaseConfig(str(Path(tmp) / "fresh.db"))), scorer=scorer
            ) as fresh:
                _save(LoginView(fresh.log), out, "login-first-run.png", (900, 560))
        with Station.open(config, scorer=scorer) as station:
            data = _populate(station)
            if only == "finetune":
                _finetune(AppContext(station, config, data["users"]["qa1"]), data, out)
                return 0
            if only == "correction":
                _audit_correction(AppContext(station, config, data["users"]["qa1"]), data, out)
                return 0
            if only == "qa":
                _qa(AppContext(station, config, data["users"]["qa1"]), out)
                return 0
            if only == "review":
                trouble = next((p for p, r in data["results"] if needs_attention(r)), data["results"][0][0])
                _review_lane(station, config, settings, trouble, out)
                return 0
            login = LoginView(station.log)
            login.name.setText("op1")
            login.password.setText("not-my-password")
            login.submit()
            _save(login, out, "login.png", (900, 560))
            _operator_shots(station, config, settings, data, out)
            users = data["users"]
            _qa(AppContext(station, config, users["qa1"]), out)
            _audit(AppContext(station, config, users["aud1"]), data, out)
            _audit_correction(AppContext(station, config, users["qa1"]), data, out)
            users_shots(station, config, users, out)
            _finetune(AppContext(station, config, users["qa1"]), data, out)  # last: it adds parts and models
    return 0


def users_shots(station: Station, config: StationConfig, users: dict, out: Path) -> None:
    """The Users view with an account in each state, the sign-in form's forced-change step, and
    'Change your password'. Needs signed-in "admin" and "op1" in `users`; adds op2, op3 and qa2."""
    from ui.admin.password_dialog import ChangePasswordDialog
    from ui.admin.users_panel import UserAdminPanel

    log, admin = station.log, users["admin"]
    for name, role, printed in (("op2", "operator", "Otto Operator"), ("op3", "operator", "Ola Operator")):
        log.users.add_user(name, role, f"{name}-pass-12", admin, printed_name=printed, **STAFF)
    log.users.add_user("qa2", "qa", "qa2-pass-12", admin, printed_name="Quentin QA", **STAFF)
    for _ in range(log.users.max_failures):  # op2 mistypes until the account locks
        try:
            log.login("op2", "not-my-password")
        except InspectorError:
            pass
    log.users.set_active("op3", False, admin, "left the company")
    log.users.change_password("qa2", "temporary-pass-1", admin, "forgot the password")
    panel = UserAdminPanel(AppContext(station, config, admin))
    panel.select("op1")
    panel.actions.role.setCurrentText("qa")
    panel.actions.reason.setText("moved to quality assurance")
    _save(panel, out, "users.png", (1100, 650))
    login = LoginView(log)
    login.name.setText("qa2")
    login.password.setText("temporary-pass-1")
    login.submit()  # the admin-set password is right: the form now asks for the user's own
    _save(login, out, "login-new-password.png", (900, 560))
    _save(ChangePasswordDialog(log, users["op1"]), out, "change-password.png", (480, 230))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ui.screenshots [OUT_DIR] [--only finetune|review|correction|qa]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    only = None
    if "--only" in args:
        at = args.index("--only")
        only = args[at + 1] if at + 1 < len(args) else ""
        del args[at : at + 2]
        if only not in ("finetune", "review", "correction", "qa"):
            print("--only takes: finetune, review, correction, qa", file=sys.stderr)
            return 2
    try:
        return render(Path(args[0] if args else "docs/screenshots"), only)
    finally:
        from ui.widgets.workers import wait_for_workers

        wait_for_workers()  # a view's worker still running at interpreter exit crashes Qt


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Every picture is written and closed. Left to the interpreter, the views' C++ objects are torn down
    # in arbitrary order after their QApplication, which crashes now and then; skip that teardown.
    os._exit(code)
