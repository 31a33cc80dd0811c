"""Coarse-to-fine zoom (models/zoom.py): maxima, windows at the frame's edges, and the winning window."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import text_vector
from models.dense_map import FrameFeatures, View
from models.zoom import ZoomSpec, local_maxima, window_box, zoom

CELL = 16
OK, SCRATCH = text_vector("a clean part"), text_vector("a small scratch")
LIBRARY = np.stack([OK, SCRATCH])


def encode(crop: np.ndarray, roi=None) -> FrameFeatures:
    """Each 16-px cell of the crop embeds as "a small scratch" where bright, "a clean part" elsewhere."""
    h, w = crop.shape[0] // CELL, crop.shape[1] // CELL
    bright = crop[: h * CELL, : w * CELL, 0].reshape(h, CELL, w, CELL).mean(axis=(1, 3)) > 128
    dense = np.where(bright[None], SCRATCH[:, None, None], OK[:, None, None]).astype(np.float32)
    mean = dense.mean(axis=(1, 2))
    box = (0, 0, w * CELL, h * CELL)
    return FrameFeatures(
        mean / np.linalg.norm(mean), dense.reshape(len(OK), -1).T, [box], [View(box, dense, mean)], False
    )


def test_local_maxima_are_apart_and_ordered() -> None:
    heat = np.zeros((100, 200), np.float32)
    heat[10, 20], heat[12, 24], heat[80, 150], heat[50, 100] = 1.0, 0.9, 0.8, 0.7
    assert local_maxima(heat, 3, 16) == [(20, 10), (150, 80), (100, 50)]
    assert local_maxima(np.zeros((8, 8), np.float32), 3, 2) == [(0, 0)]


@pytest.mark.parametrize(
    "x, y, side, h, w, box",
    [
        (5, 5, 128, 480, 640, (0, 0, 128, 128)),
        (639, 479, 128, 480, 640, (512, 352, 640, 480)),
        (300, 200, 128, 480, 640, (236, 136, 364, 264)),
        (10, 40, 128, 96, 64, (0, 0, 64, 96)),  # a window larger than the frame: the frame
    ],
)
def test_window_stays_inside_the_frame(x: int, y: int, side: int, h: int, w: int, box: tuple) -> None:
    assert window_box(x, y, side, h, w) == box


def test_the_window_that_answers_wins() -> None:
    """The coarse map's top maximum is on clean surface, the second on the defect: K=1 finds nothing
    to refine there, K=2 looks at both and takes the defect's window."""
    rgb = np.zeros((512, 768, 3), np.uint8)
    rgb[400:432, 600:632] = 255  # a 32-px defect (the fake sees 16-px cells)
    coarse = np.zeros((512, 768), np.float32)
    coarse[100, 100], coarse[405, 610] = 1.0, 0.6
    spec = ZoomSpec(windows=1, window=128, input_size=448, pick="prob")
    one = zoom(encode, rgb, coarse, SCRATCH, LIBRARY, 10.0, spec)
    assert one is None
    for pick in ("prob", "max"):
        two = zoom(encode, rgb, coarse, SCRATCH, LIBRARY, 10.0, ZoomSpec(2, 128, 448, pick))
        assert two is not None
        px, py = two.peak
        assert 600 <= px < 632 and 400 <= py < 432
        x0, y0, x1, y1 = two.bbox
        assert x0 <= px < x1 and y0 <= py < y1 and all(isinstance(v, int) for v in (*two.peak, *two.bbox))
        assert two.heat.shape == coarse.shape and two.heat.max() == pytest.approx(1.0)
        assert two.window[0] <= 600 and two.window[2] >= 632


def test_bad_spec_refused() -> None:
    with pytest.raises(ValueError):
        ZoomSpec(1, 128, 448, "best")


def test_agree_keeps_the_frame_map_when_the_closer_look_sees_another_label() -> None:
    """With pick "agree" a window counts only when its crop ranks the explained label first: zooming
    the scratch's window for "a clean part" leaves the frame's map; for the scratch it refines."""
    rgb = np.zeros((512, 768, 3), np.uint8)
    rgb[400:496, 600:696] = 255  # the scratch fills most of its 128-px window
    coarse = np.zeros((512, 768), np.float32)
    coarse[448, 648] = 1.0
    spec = ZoomSpec(1, 128, 448, "agree")
    assert zoom(encode, rgb, coarse, OK, LIBRARY, 10.0, spec) is None
    assert zoom(encode, rgb, coarse, OK, LIBRARY, 10.0, ZoomSpec(1, 128, 448, "prob")) is not None
    refined = zoom(encode, rgb, coarse, SCRATCH, LIBRARY, 10.0, spec)
    assert refined is not None and 600 <= refined.peak[0] < 696 and 400 <= refined.peak[1] < 496


def test_auto_checks_agreement_only_for_a_window_that_is_most_of_the_frame() -> None:
    """Pick "auto": on a frame hardly larger than the window the closer look must rank the label first
    (as "agree"); on a large frame, where the window is a small part, it need not (as "prob")."""
    spec = ZoomSpec(1, 128, 448, "auto")
    for h, w, zooms_for_ok in ((192, 192, False), (1024, 1024, True)):
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[48:144, 48:144] = 255  # the scratch fills most of its 128-px window
        coarse = np.zeros((h, w), np.float32)
        coarse[96, 96] = 1.0
        assert (zoom(encode, rgb, coarse, OK, LIBRARY, 10.0, spec) is not None) == zooms_for_ok
        refined = zoom(encode, rgb, coarse, SCRATCH, LIBRARY, 10.0, spec)
        assert refined is not None and 48 <= refined.peak[0] < 144 and 48 <= refined.peak[1] < 144
    # On the large frame a region of interest of 192 x 192 px makes the window most of what is looked at.
    roi = np.zeros((1024, 1024), bool)
    roi[0:192, 0:192] = True
    assert zoom(encode, rgb, coarse, OK, LIBRARY, 10.0, spec, roi) is None
    assert zoom(encode, rgb, coarse, SCRATCH, LIBRARY, 10.0, spec, roi) is not None


def test_rise_zooms_where_the_label_gains_over_the_whole_frame() -> None:
    """Pick "rise": a window counts only when the label's probability on the crop beats the whole
    frame's; the scratch's gains (it fills more of the crop), the clean surface's falls."""
    rgb = np.zeros((512, 768, 3), np.uint8)
    rgb[400:432, 600:632] = 255  # a small scratch: the whole frame reads "a clean part"
    frame = encode(rgb).embedding
    coarse = np.zeros((512, 768), np.float32)
    coarse[416, 616] = 1.0
    spec = ZoomSpec(1, 128, 448, "rise")
    refined = zoom(encode, rgb, coarse, SCRATCH, LIBRARY, 10.0, spec, None, frame)
    assert refined is not None and 600 <= refined.peak[0] < 632 and 400 <= refined.peak[1] < 432
    assert zoom(encode, rgb, coarse, OK, LIBRARY, 10.0, spec, None, frame) is None
    with pytest.raises(ValueError, match="frame's embedding"):
        zoom(encode, rgb, coarse, SCRATCH, LIBRARY, 10.0, spec)


def test_the_window_is_feathered_into_the_frame_map() -> None:
    """No hard square in the overlay: at the window's inner sides its map fades into the frame's;
    at a side on the frame's border it does not need to; the peak is the window's."""
    from models.zoom import place

    coarse = np.full((200, 300), 0.2, np.float32)
    coarse[0, 0] = 1.0
    window = np.zeros((64, 64), np.float32)
    window[32, 32] = 1.0
    window[:, 0] = 0.9  # strong at the window's left edge, which is inside the frame
    z = place(coarse, window, (100, 0, 164, 64), 0.5)  # top side on the frame's border
    assert z.peak == (132, 32)
    assert abs(z.heat[32, 100] - 0.2) < 0.2 * 0.9  # left side: mostly the frame's map
    assert z.heat[0, 132] == pytest.approx(0.0, abs=1e-6)  # top side: the window's own map (0 there)
