"""Where the image tower looks in a frame: the global view and overlapping native-resolution tiles.

Pure geometry (no torch), so it is tested on its own. Coordinates are frame pixels, origin
top-left, boxes half-open ``(x0, y0, x1, y1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TileSpec:
    """Tiling options: mode "auto" tiles only frames whose short side exceeds AUTO_FACTOR x the tile
    size (a 640x480 frame is scored whole, a 5 MP frame on tiles); "on" always, "off" never."""

    mode: str = "auto"
    size: int = 448  # tile side in frame pixels (scored at native resolution when == input size)
    overlap: int = 64  # frame pixels shared by neighbouring tiles

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "on", "off"):
            raise ValueError(f"tiling mode must be auto, on or off, got {self.mode!r}")
        if self.size < 32:
            raise ValueError(f"tile size must be >= 32 px, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise ValueError(f"tile overlap must be in [0, tile size), got {self.overlap} for size {self.size}")


AUTO_FACTOR = 2.0  # "auto": tile when the frame's short side is more than this many tiles


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering [0, length): evenly spread, every overlap >= `overlap`."""
    if length <= tile:
        return [0]
    n = 1 + math.ceil((length - tile) / (tile - overlap))
    # Spread the slack evenly instead of leaving a thin last tile: first starts at 0, last ends at `length`.
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> list[Box]:
    """Tiles of side `tile` (clipped to a smaller frame) covering the whole frame, row by row."""
    if height < 1 or width < 1:
        raise ValueError(f"frame must be at least 1x1, got {width}x{height}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, {tile}), got {overlap}")
    th, tw = min(tile, height), min(tile, width)
    return [(x, y, x + tw, y + th) for y in _starts(height, th, overlap) for x in _starts(width, tw, overlap)]


def wants_tiles(height: int, width: int, input_size: int, spec: TileSpec) -> bool:
    """Whether a frame of this size is scored on tiles as well as whole."""
    if spec.mode == "off":
        return False
    if spec.mode == "on":
        return min(height, width) > spec.size or max(height, width) > spec.size
    return min(height, width) > AUTO_FACTOR * spec.size


def resized_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(h, w) of the frame resized so its short side is `short_side`, aspect kept."""
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def cell_boxes(box: Box, rows: int, cols: int) -> list[Box]:
    """The frame-pixel box each cell of a rows x cols feature grid over `box` stands for (row-major)."""
    x0, y0, x1, y1 = box
    xs = [x0 + round(i * (x1 - x0) / cols) for i in range(cols + 1)]
    ys = [y0 + round(j * (y1 - y0) / rows) for j in range(rows + 1)]
    return [
        (xs[i], ys[j], max(xs[i + 1], xs[i] + 1), max(ys[j + 1], ys[j] + 1)) for j in range(rows) for i in range(cols)
    ]
