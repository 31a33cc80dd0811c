"""Audit view after a promotion: an inspection ranked by the earlier model still shows where THAT
model looked (loaded again from the registry in a worker), described in words, not layer names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.frame.records import Frame
from inspector.learning.registry import ModelRegistry
from inspector.station import Station
from model_variants import promote, save_variant, tiny_config
from ui.audit.view import AuditView
from ui.context import AppContext


@pytest.fixture()
def one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_an_inspection_ranked_before_a_promotion_still_shows_its_heatmap(
    qtbot, tmp_path: Path, add_accounts, one_thread
) -> None:
    config = tiny_config(tmp_path)
    with Station.open(config) as st:
        users = add_accounts(st.log, {"qa1": "qa", "aud1": "auditor"}, sign_in=True)
        tiny_id = st.model_id
        ModelRegistry(st.log).register(
            tiny_id, "inspector-tiny", users["qa1"], parent_id=None, data_hash="", recipe={}, figures={}, state="active"
        )
        rgb = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        old = st.record(st.inspect(Frame(rgb, datetime.now(UTC), "cam", 1)), users["qa1"]).inspection_id
        new_id = save_variant(tmp_path / "v2", 5)
        promote(st, users["qa1"], new_id, tmp_path / "v2", tiny_id)
        view = AuditView(AppContext(st, config, users["aud1"]))
        qtbot.addWidget(view)
        assert view.open_inspection(old) and view.detail.record.model_id == tiny_id != st.model_id
        detail = view.detail
        detail.heatmap_button.click()
        assert "Loading the earlier model" in detail.heatmap_note.text()
        qtbot.waitUntil(lambda: not detail.busy(), timeout=60_000)
        assert not detail.heatmap.isHidden() and not detail.heatmap.pixmap().isNull(), detail.heatmap_note.text()
        note = detail.heatmap_note.text()
        assert note.startswith("Where the model looked for #1") and tiny_id[:12] in note and "layer" not in note
