"""The QA engineer's view: library editor, operators' texts, impact preview, agreement, fine-tuning.

A composition only: the editor's draft feeds the impact preview, an adopted "none of these" text
is staged in the editor's draft, and a published version refreshes the agreement figures' label
names and the texts list. Every action goes through inspector/.
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QTabWidget, QVBoxLayout, QWidget

from inspector.library.threshold_review import station_flags
from ui.audit.search_panel import SearchPanel
from ui.context import AppContext
from ui.qa.agreement_view import AgreementView
from ui.qa.finetune_panel import FinetunePanel
from ui.qa.good_model_box import GoodModelBox
from ui.qa.impact_view import ImpactView
from ui.qa.library_editor import LibraryEditor
from ui.qa.report_panel import ReportPanel
from ui.qa.typed_texts_view import TypedTextsView


class QAView(QWidget):
    """Tabs: Library, None of these, Impact preview, Agreement, Fine-tuning, Good parts, Report & drift, Search."""

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.editor = LibraryEditor(context)
        self.texts = TypedTextsView(context, lambda: {i for e in self.editor.edits for i in e.typed_from})
        self.impact = ImpactView(context)
        self.agreement = AgreementView(context)
        self.finetune = FinetunePanel(context)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.editor, "Library")
        self.tabs.addTab(self.texts, "None of these")
        self.tabs.addTab(self.impact, "Impact preview")
        self.tabs.addTab(self.agreement, "Agreement")
        self.tabs.addTab(self.finetune, "Fine-tuning")
        self.good_model = GoodModelBox(context)
        self.tabs.addTab(self.good_model, "Good parts")
        # issue 17: the PoC report export and the drift banner (context.drift: a DriftWatch, when running)
        drift = context.drift
        self.report = ReportPanel(
            context.station.log.sdb.path,
            drift.banner if drift else lambda: None,
            drift.acknowledge if drift else lambda: None,
        )
        self.tabs.addTab(self.report, "Report && drift")
        self.search = SearchPanel(context.station.log.sdb.path, lambda: context.station.scorer, self._open_found)
        self.tabs.addTab(self.search, "Search")
        layout = QVBoxLayout(self)
        if not context.can("edit_library"):
            role = context.user.role if context.user is not None else "signed out"
            note = QLabel(f"Read-only: your role ({role}) may view the library and the figures but not change them.")
            note.setWordWrap(True)
            layout.addWidget(note)
        # A model change makes hand-set thresholds suspect (probabilities change with the model).
        station = context.station
        flags = station_flags(station.log, station.index.library, station.model_id)
        self.threshold_note = QLabel(
            "Hand-set thresholds to review for this model:\n"
            + "\n".join(f"  {flag.reason}" for flag in flags)
            + "\nAfter checking them: inspector library thresholds --confirm --user QA --reason ..."
        )
        self.threshold_note.setWordWrap(True)
        self.threshold_note.setStyleSheet("color: #8b4500")
        self.threshold_note.setVisible(bool(flags))
        layout.addWidget(self.threshold_note)
        layout.addWidget(self.tabs)
        self.editor.draft_changed.connect(self.impact.set_draft)
        self.editor.preview_requested.connect(self.preview)
        self.editor.published.connect(lambda _version: self.agreement.refresh())
        self.editor.draft_changed.connect(lambda _draft: self.texts.refresh())  # staged / discarded / published
        self.texts.adopted.connect(self._adopt)
        self.tabs.currentChanged.connect(self._tab_changed)

    def shutdown(self) -> None:
        """The view goes away (sign-out): a fine-tuning run is asked to stop."""
        self.finetune.shutdown()

    def preview(self) -> bool:
        """Show the impact tab and preview the editor's draft there."""
        self.tabs.setCurrentWidget(self.impact)
        return self.impact.start()

    def _adopt(self, edit) -> None:
        """An adopted "none of these" text: staged in the library draft, published with it."""
        if self.editor.stage(edit):
            self.texts.status.show_info(
                f"Staged in the library draft: {edit.describe()}. Preview and publish it from the Library tab."
            )
        else:
            self.texts.status.show_error(self.editor.status.text())

    def _tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.agreement:
            self.agreement.refresh()  # decisions keep arriving while QA works on the library
        elif self.tabs.currentWidget() is self.texts:
            self.texts.refresh()  # so do operators' "none of these" answers

    def _open_found(self, inspection_id: int) -> None:
        """A search result clicked in QA: the inspection in full, in a window beside the view (issue 17)."""
        from PySide6.QtWidgets import QDialog

        from inspector.errors import InspectorError
        from inspector.frame.explain import explain_record
        from inspector.store.audit import inspection_record
        from ui.audit.inspection_detail import InspectionDetail

        try:
            record = inspection_record(self.context.station.log, inspection_id)
        except InspectorError as exc:
            self.search.status.setText(f"Cannot open inspection {inspection_id}: {exc}")
            return
        dialog = QDialog(self)
        dialog.setWindowTitle(f"Inspection {inspection_id}")
        detail = InspectionDetail(lambda rec, rank: explain_record(self.context.station, rec, rank))
        detail.set_record(record)
        QVBoxLayout(dialog).addWidget(detail)
        dialog.resize(640, 700)
        dialog.show()
        self.found_dialog = dialog  # kept for tests and so it is not collected while open
