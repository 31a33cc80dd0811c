"""Tiling geometry: tiles cover the frame, keep the overlap, stay inside, and small frames are one tile."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from models.tiling import TileSpec, cell_boxes, resized_shape, tile_boxes, wants_tiles


def _coverage(boxes, h, w):
    seen = np.zeros((h, w), np.int32)
    for x0, y0, x1, y1 in boxes:
        seen[y0:y1, x0:x1] += 1
    return seen


@pytest.mark.parametrize("h, w", [(480, 640), (2048, 2448), (1000, 3000), (3000, 1000), (449, 449), (900, 450)])
@pytest.mark.parametrize("tile, overlap", [(448, 64), (256, 32), (448, 0)])
def test_tiles_cover_frame_with_overlap(h: int, w: int, tile: int, overlap: int) -> None:
    boxes = tile_boxes(h, w, tile, overlap)
    assert (_coverage(boxes, h, w) >= 1).all()
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x1 - x0 == min(tile, w) and y1 - y0 == min(tile, h)  # edge tiles are full-size, shifted inward
    xs = sorted({b[0] for b in boxes})
    ys = sorted({b[1] for b in boxes})
    for starts, length in ((xs, min(tile, w)), (ys, min(tile, h))):
        for a, b in itertools.pairwise(starts):
            assert a + length - b >= overlap  # neighbours share at least `overlap` pixels


def test_5mp_frame_is_42_tiles_of_448() -> None:
    boxes = tile_boxes(2048, 2448, 448, 64)
    assert len(boxes) == 42 and boxes[-1] == (2000, 1600, 2448, 2048)


@pytest.mark.parametrize("h, w", [(100, 200), (448, 448), (1, 1)])
def test_frame_smaller_than_tile_is_one_tile(h: int, w: int) -> None:
    assert tile_boxes(h, w, 448, 64) == [(0, 0, w, h)]


def test_auto_tiles_large_frames_only() -> None:
    spec = TileSpec()
    assert not wants_tiles(480, 640, 448, spec) and not wants_tiles(480, 640, 224, spec)
    assert wants_tiles(2048, 2448, 448, spec)
    assert not wants_tiles(2048, 2448, 448, TileSpec("off"))
    assert wants_tiles(480, 640, 448, TileSpec("on"))


def test_bad_tile_options_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        TileSpec(size=64, overlap=64)
    with pytest.raises(ValueError, match="mode"):
        TileSpec(mode="sometimes")
    with pytest.raises(ValueError, match="overlap"):
        tile_boxes(10, 10, 8, 9)


def test_resize_keeps_aspect_and_cells_partition_box() -> None:
    assert resized_shape(480, 640, 448) == (448, 597)
    assert resized_shape(2048, 2448, 448) == (448, 536)
    cells = cell_boxes((10, 20, 110, 70), 5, 7)
    seen = _coverage([(x0 - 10, y0 - 20, x1 - 10, y1 - 20) for x0, y0, x1, y1 in cells], 50, 100)
    assert (seen == 1).all()
