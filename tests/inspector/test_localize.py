"""Peak and region per candidate, in frame pixels, on frames of several sizes and aspect ratios.

A fake dense scorer whose local features are known: each 16-px cell embeds as "a small scratch"
where the frame is bright and as "a clean part" elsewhere, so the scratch map's answer is the
bright square (the same cam_map and region rule as the real tower).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fakes import HashScorer, text_vector
from inspector.frame.explain import localize_candidates
from inspector.frame.records import Frame, utc_now
from inspector.library.labels import Label, Library
from inspector.station import Station
from models.dense_map import FrameFeatures, View
from models.explain import _hottest_region

CELL = 16
LIB = Library(
    "t",
    (Label("ok", "OK", "accept", 0, ("a clean part",)), Label("scratch", "Scratch", "rework", 2, ("a small scratch",))),
)


class DenseFake(HashScorer):
    dense, input_size = True, 448

    def frontend_record(self, frontend=None) -> dict:
        return {"path": "fake-dense", "cell": CELL}

    def encode_frame(self, rgb: np.ndarray, roi=None, frontend=None) -> FrameFeatures:
        h, w = rgb.shape[0] // CELL, rgb.shape[1] // CELL
        bright = rgb[: h * CELL, : w * CELL, 0].reshape(h, CELL, w, CELL).mean(axis=(1, 3)) > 128
        ok, scratch = text_vector("a clean part"), text_vector("a small scratch")
        dense = np.where(bright[None], scratch[:, None, None], ok[:, None, None]).astype(np.float32)
        mean = dense.mean(axis=(1, 2))
        box = (0, 0, w * CELL, h * CELL)
        local = dense.reshape(len(ok), -1).T
        return FrameFeatures(mean / np.linalg.norm(mean), local, [box] * len(local), [View(box, dense, mean)], False)


@pytest.mark.parametrize(
    "h, w, x, y",
    [(480, 640, 320, 96), (2048, 2448, 2000, 1600), (96, 320, 16, 48), (640, 160, 128, 592), (224, 224, 0, 0)],
)
def test_peak_and_region_land_on_the_defect(h: int, w: int, x: int, y: int) -> None:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[y : y + 2 * CELL, x : x + 2 * CELL] = 255  # a 32-px bright square, on the cell grid
    station = Station(DenseFake(image_text="a clean part"), LIB)
    result = station.inspect(Frame(rgb, utc_now(), "cam", 0))
    maps = {m.label_id: m for m in localize_candidates(station, result)}
    assert [m.label_id for m in localize_candidates(station, result)] == [c.label_id for c in result.ranking.candidates]
    px, py = maps["scratch"].peak
    x0, y0, x1, y1 = maps["scratch"].bbox
    assert x <= px < x + 2 * CELL and y <= py < y + 2 * CELL
    # Half the peak of a bilinearly upsampled cell map: the square, widened by at most one cell.
    assert x - CELL <= x0 <= x and y - CELL <= y0 <= y
    assert x + 2 * CELL <= x1 <= min(w, x + 3 * CELL) and y + 2 * CELL <= y1 <= min(h, y + 3 * CELL)
    assert maps["scratch"].heatmap.shape == (h, w)


def test_region_rule_is_half_open_and_connected() -> None:
    heat = np.zeros((40, 60), np.float32)
    heat[10:20, 30:45] = 0.6
    heat[14, 37] = 1.0
    heat[30:35, 5:10] = 0.9  # hot, but not connected to the peak's area
    peak, region = _hottest_region(heat)
    assert peak == (37, 14) and region == (30, 10, 45, 20)


def test_rank_json_localize_keys(tmp_path, monkeypatch, capsys) -> None:
    from PIL import Image

    from inspector.commands import inspect as cmd
    from inspector.station import Station as RealStation

    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[64:96, 160:192] = 255
    Image.fromarray(rgb).save(tmp_path / "f.png")
    monkeypatch.setattr(
        RealStation, "open", classmethod(lambda cls, config, **kw: cls(DenseFake(image_text="a clean part"), LIB))
    )
    import argparse

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["rank", str(tmp_path / "f.png"), "--json", "--localize"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["scoring_config_id"]) == 64 and out["scoring_config"]["model_id"] == "fake-model"
    scratch = next(c for c in out["candidates"] if c["label"] == "scratch")
    assert 160 <= scratch["peak"][0] < 192 and 64 <= scratch["peak"][1] < 96
    assert all(isinstance(v, int) for c in out["candidates"] for v in c["peak"] + c["region"])
    x0, y0, x1, y1 = scratch["region"]
    assert x0 <= scratch["peak"][0] < x1 and y0 <= scratch["peak"][1] < y1


LIB3 = Library(
    "t3",
    (
        Label("ok", "OK", "accept", 0, ("a clean part",)),
        Label("scratch", "Scratch", "rework", 2, ("a small scratch",)),
        Label("stain", "Stain", "rework", 1, ("a dark stain",)),
    ),
)


class TiledFake(DenseFake):
    """Like DenseFake, but large frames come as a coarse whole view plus native 448-px tiles (as
    models.dense_map.DenseEncoder returns them), each tile with its own 16-px cell map."""

    def encode_frame(self, rgb: np.ndarray, roi=None, frontend=None) -> FrameFeatures:
        from models.tiling import tile_boxes

        whole = DenseFake.encode_frame(self, rgb[::8, ::8])  # the whole frame, 8x coarser
        box = (0, 0, rgb.shape[1], rgb.shape[0])
        views = [View(box, whole.views[0].dense, whole.views[0].mean)]
        for x0, y0, x1, y1 in tile_boxes(rgb.shape[0], rgb.shape[1], 448, 64):
            tile = DenseFake.encode_frame(self, rgb[y0:y1, x0:x1]).views[0]
            views.append(View((x0, y0, x1, y1), tile.dense, tile.mean))
        return FrameFeatures(whole.embedding, whole.local, whole.local_boxes, views, True)


@pytest.mark.parametrize(
    "h, w, x, y", [(2048, 2448, 1712, 400), (1024, 1024, 16, 992), (1200, 3000, 2872, 800)]
)  # x, y on a tile's cell grid
def test_peak_and_region_on_tiled_large_frames(h: int, w: int, x: int, y: int) -> None:
    rgb = np.zeros((h, w, 3), np.uint8)
    from inspector.frame.scoring import ScoringSettings

    rgb[y : y + CELL, x : x + CELL] = 255  # one 16-px cell: far below the coarse whole view's 128-px cells
    # The tiled map itself (zoom off; the zoom has its own test below).
    station = Station(TiledFake(image_text="a clean part"), LIB3, scoring=ScoringSettings(zoom_windows=0))
    result = station.inspect(Frame(rgb, utc_now(), "cam", 0))
    scratch = next(m for m in localize_candidates(station, result) if m.label_id == "scratch")
    px, py = scratch.peak
    x0, y0, x1, y1 = scratch.bbox
    assert scratch.heatmap.shape == (h, w) and scratch.target == "softmax"  # over {scratch, stain}
    assert x <= px < x + CELL and y <= py < y + CELL
    assert x - CELL <= x0 <= x and y - CELL <= y0 <= y
    assert x + CELL <= x1 <= min(w, x + 2 * CELL) and y + CELL <= y1 <= min(h, y + 2 * CELL)


@pytest.mark.parametrize(
    "h, w, x, y", [(480, 640, 600, 16), (1024, 1024, 500, 980), (2048, 2448, 1712, 400), (224, 224, 96, 96)]
)
def test_zoomed_peak_and_region_in_frame_pixels(h: int, w: int, x: int, y: int) -> None:
    """With [scoring] zoom_windows the peak and region come from a crop looked at again; they stay in
    frame pixels (integers, region half-open, containing the peak), on the defect, near the edges too."""
    from inspector.frame.scoring import ScoringSettings

    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[y : y + 2 * CELL, x : x + 2 * CELL] = 255  # 32 px: a whole 16-px cell of any crop lies inside
    station = Station(
        TiledFake(image_text="a clean part"),
        LIB3,
        scoring=ScoringSettings(zoom_windows=2, zoom_window=128, zoom_pick="prob"),  # geometry, not the pick rule
    )
    result = station.inspect(Frame(rgb, utc_now(), "cam", 0))
    scratch = next(m for m in localize_candidates(station, result) if m.label_id == "scratch")
    assert "zoom 2x128px@448" in scratch.layer and scratch.heatmap.shape == (h, w)
    px, py = scratch.peak
    x0, y0, x1, y1 = scratch.bbox
    assert x <= px < x + 2 * CELL and y <= py < y + 2 * CELL
    assert 0 <= x0 <= px < x1 <= w and 0 <= y0 <= py < y1 <= h
    assert x - CELL <= x0 and x1 <= x + 3 * CELL and y - CELL <= y0 and y1 <= y + 3 * CELL
    assert all(isinstance(v, int) for v in (*scratch.peak, *scratch.bbox))
    assert scratch.heatmap.max() == pytest.approx(1.0) and scratch.heatmap.min() >= 0.0


def test_zoom_is_recorded_in_the_scoring_config_only_when_on() -> None:
    from inspector.frame.scorer import scoring_config
    from inspector.frame.scoring import ScoringSettings

    off = scoring_config(DenseFake(), ScoringSettings(zoom_windows=0))
    # A configuration without zoom keeps the keys (so the id) it had before the option existed.
    assert set(off.as_dict()) == {"model_id", "front_end", "local_weight", "caption_templates", "map_size", "roi"}
    assert scoring_config(DenseFake(), ScoringSettings()).as_dict()["zoom"]["windows"] == 1  # the default
    on = scoring_config(DenseFake(), ScoringSettings(zoom_windows=2, zoom_window=96))
    assert on.as_dict()["zoom"] == {"windows": 2, "window": 96, "input": 448, "pick": "auto"} and on.id != off.id
    other = scoring_config(DenseFake(), ScoringSettings(zoom_windows=2, zoom_window=96, zoom_pick="max"))
    assert other.id not in (on.id, off.id)
