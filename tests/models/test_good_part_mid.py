"""The good-part model on mid-level rows (--cells mid): built from confirmed good parts through the
station, read off the ranking's own forward (no second one), flags an injected defect, is named in
the scoring configuration; the default (global rows, own 448-px forward) still builds and loads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.frame.good_parts import load
from inspector.frame.records import Decision, Frame
from inspector.learning.good_model import build_good_model, model_folder
from inspector.library.labels import seed_library_dir
from inspector.station import Station
from model_variants import tiny_dense_bundle
from models.scorer import TorchScorer

SIZE = 96


@pytest.fixture(scope="module")
def scorer() -> TorchScorer:
    tokenizer = lambda texts: open_clip.tokenize(texts, context_length=16)  # noqa: E731
    return TorchScorer(tiny_dense_bundle(SIZE, tokenizer=tokenizer, model_id="t" * 12))


def _part(seq: int, defect: bool = False) -> Frame:
    """A woven-looking good part (stripes plus a little noise of its own); a defect adds a dark blot."""
    rng = np.random.default_rng(seq)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    grey = 120 + 40 * np.sin(xx / 3.0) * np.sin(yy / 3.0) + rng.normal(0, 6, (SIZE, SIZE))
    if defect:
        grey[30:54, 40:64] = 5
    rgb = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return Frame(rgb, datetime.now(UTC), "cam", seq)


def _station(tmp_path: Path, scorer: TorchScorer) -> Station:
    config = StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )
    st = Station.open(config, scorer=scorer)
    st.log.users.create_first_admin("admin", "Admin-pass-1234")
    admin = st.log.login("admin", "Admin-pass-1234")
    st.log.users.add_user("qa", "qa", "Qa-pass-123456", admin, temporary=False)
    st.log.users.add_user("op", "operator", "Op-pass-1234567", admin, temporary=False)
    op = st.log.login("op", "Op-pass-1234567")
    for seq in range(32):  # confirmed good parts
        result = st.record(st.inspect(_part(seq)), op)
        rank = next(c.rank for c in result.ranking.candidates if c.label_id == "ok")
        kind = "confirm" if rank == 1 else "pick"
        st.log.record_decision(Decision(result.inspection_id, kind, op.name, "ok", rank), op)
    return st


def _forwards(scorer: TorchScorer) -> list[int]:
    """Counts image-tower forwards: runs of a stem (the only convolution fed the 3-channel image),
    whether the tower's own or the frame path's BatchNorm-folded copy of it."""
    calls: list[int] = []

    def hook(module: torch.nn.Module, *_: object) -> None:
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            calls.append(1)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    _HANDLES.append(handle)
    return calls


_HANDLES: list = []


@pytest.fixture(autouse=True)
def _remove_global_hooks():
    yield
    while _HANDLES:
        _HANDLES.pop().remove()


def test_mid_rows_ride_the_ranking_forward_and_flag_a_defect(tmp_path: Path, scorer: TorchScorer) -> None:
    with _station(tmp_path, scorer) as st:
        qa = st.log.login("qa", "Qa-pass-123456")
        model = build_good_model(st.log, st.scorer, st.scoring, qa, "mid rows", cells="mid")
        assert (model.cells, model.input_size) == ("mid", 0)
        assert model.basis["rows"] == "stages=1,2,3;stats=mean,std,max" and model.info["leave_one_out_scores"] > 0
        again = load(model_folder(st.log), model.sha256)  # standardisation travels with the file
        np.testing.assert_array_equal(again.shift, model.shift)
        np.testing.assert_array_equal(again.scale, model.scale)
        assert st.refresh_library() and st.good_model.sha256 == model.sha256

        calls = _forwards(scorer)
        try:
            goods = [st.inspect(_part(100 + i)) for i in range(3)]
            assert len(calls) == 3  # one forward per frame: ranking and good-part check share it
            bad = st.inspect(_part(200, defect=True))
        finally:
            scorer.bundle.model.visual.trunk.conv_stem._forward_hooks.clear()
        assert bad.good_part.flagged and bad.good_part.score > max(g.good_part.score for g in goods)
        assert sum(g.good_part.flagged for g in goods) <= 1
        for result in (*goods, bad):
            assert json.loads(result.ranking.scoring_config_json)["good_model"] == model.sha256
        assert bad.verdict.disposition == "review"


def test_default_global_rows_still_build_and_cost_a_second_forward(tmp_path: Path, scorer: TorchScorer) -> None:
    with _station(tmp_path, scorer) as st:
        qa = st.log.login("qa", "Qa-pass-123456")
        model = build_good_model(st.log, st.scorer, st.scoring, qa, "the default")
        assert (model.cells, model.input_size, model.shift) == ("global", 448, None)
        assert "rows" not in model.basis  # bases as before: models built earlier keep matching
        assert st.refresh_library() and load(model_folder(st.log), model.sha256).cells == "global"
        calls = _forwards(scorer)
        try:
            result = st.inspect(_part(300, defect=True))
        finally:
            scorer.bundle.model.visual.trunk.conv_stem._forward_hooks.clear()
        assert len(calls) == 2 and result.good_part is not None
        assert json.loads(result.ranking.scoring_config_json)["good_model"] == model.sha256
