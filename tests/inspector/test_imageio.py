"""The safe image decoder: formats, bit depths, alpha, CMYK, and every way to refuse bytes."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from inspector.errors import ImageDecodeError, InspectorError
from inspector.frame.imageio import cv2, decode_image, read_image_file

ROOT = Path(__file__).resolve().parents[2]


def _encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _gradient(h: int = 24, w: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 7 % 256, yy * 11 % 256, (xx + yy) * 5 % 256], axis=2).astype(np.uint8)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 20_000, height: int = 20_000, zeros_mb: int = 48) -> bytes:
    """A valid-looking PNG declaring width x height RGB, with a small zlib stream of zeros."""
    comp = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    idat = b"".join(comp.compress(chunk) for _ in range(zeros_mb)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


# --- formats and conversions ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP"])
def test_lossless_formats_round_trip_exactly(fmt: str) -> None:
    rgb = _gradient()
    out = decode_image(_encode(Image.fromarray(rgb), fmt), f"x.{fmt.lower()}")
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_decodes_close_to_the_original() -> None:
    rgb = np.full((16, 16, 3), (200, 40, 90), np.uint8)
    out = decode_image(_encode(Image.fromarray(rgb), "JPEG", quality=95), "x.jpg")
    assert out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - rgb).max() <= 4


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_16_bit_colour_and_gray_keep_the_high_byte(ext: str) -> None:
    wide = (np.arange(8 * 8 * 3, dtype=np.uint32).reshape(8, 8, 3) * 811 % 65536).astype(np.uint16)
    ok, buf = cv2.imencode(ext, wide[:, :, ::-1])  # cv2 writes BGR
    assert ok
    np.testing.assert_array_equal(decode_image(buf.tobytes(), "c" + ext), (wide >> 8).astype(np.uint8))
    ok, buf = cv2.imencode(ext, wide[:, :, 0])
    gray = decode_image(buf.tobytes(), "g" + ext)
    expected = (wide[:, :, 0] >> 8).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(gray[:, :, c], expected)


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = _gradient()[:, :, 0]
    out = decode_image(_encode(Image.fromarray(gray, "L"), "PNG"), "g.png")
    assert out.shape == (*gray.shape, 3)
    assert (out == gray[:, :, None]).all()


def test_rgba_is_composited_on_black_by_default_and_on_a_chosen_background() -> None:
    rgba = np.array([[[255, 0, 0, 0], [10, 200, 30, 255], [200, 100, 50, 128]]], np.uint8)
    data = _encode(Image.fromarray(rgba, "RGBA"), "PNG")
    out = decode_image(data, "a.png")
    assert out.shape == (1, 3, 3)
    assert out[0, 0].tolist() == [0, 0, 0]  # hidden red under alpha=0 must not leak
    assert out[0, 1].tolist() == [10, 200, 30]
    assert np.abs(out[0, 2].astype(int) - [100, 50, 25]).max() <= 1
    white = decode_image(data, "a.png", background=(255, 255, 255))
    assert white[0, 0].tolist() == [255, 255, 255]


def test_palette_with_transparency_is_composited() -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    out = decode_image(_encode(pal, "PNG", transparency=0), "p.png")
    assert out[0].tolist() == [[0, 0, 0], [0, 255, 0]]


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_is_converted_to_rgb(fmt: str) -> None:
    cmyk = Image.new("CMYK", (8, 8), (255, 0, 255, 0))  # cyan + yellow = green
    out = decode_image(_encode(cmyk, fmt), "k." + fmt.lower())
    assert out.shape == (8, 8, 3)
    assert np.abs(out[4, 4].astype(int) - [0, 255, 0]).max() <= 6


def test_one_by_one_image_is_valid() -> None:
    out = decode_image(_encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"), "dot.png")
    assert out.tolist() == [[[1, 2, 3]]]


def test_read_image_file_reads_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "part.png"
    Image.fromarray(_gradient()).save(path)
    np.testing.assert_array_equal(read_image_file(path), _gradient())


# --- refusals -------------------------------------------------------------------------------


def _refused(data: bytes, name: str = "f.png", **kw: object) -> str:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, name, **kw)
    assert isinstance(info.value, InspectorError)
    assert name in str(info.value)
    return str(info.value)


def test_zero_bytes_are_refused() -> None:
    assert "empty" in _refused(b"", "blank.png")


def test_text_renamed_png_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello, this is not an image\n")
    with pytest.raises(ImageDecodeError, match="notes.png.*not a PNG"):
        read_image_file(path)


def test_missing_file_is_an_image_decode_error(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="nope.png"):
        read_image_file(tmp_path / "nope.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "BMP"])
def test_truncated_files_are_refused(fmt: str) -> None:
    data = _encode(Image.fromarray(_gradient(64, 64)), fmt)
    _refused(data[: len(data) // 2], "cut." + fmt.lower())


def test_corrupt_png_data_is_refused() -> None:
    data = bytearray(_encode(Image.fromarray(_gradient(64, 64)), "PNG"))
    data[60:80] = b"\xff" * 20  # inside the IDAT stream: CRC and zlib both break
    _refused(bytes(data), "corrupt.png")


def test_other_formats_are_unreachable() -> None:
    assert "not a PNG" in _refused(_encode(Image.new("RGB", (4, 4)), "GIF"), "x.gif")


def test_float_tiff_is_refused_with_a_hint() -> None:
    data = _encode(Image.fromarray(np.zeros((4, 4), np.float32), "F"), "TIFF")
    assert "8- or 16-bit" in _refused(data, "float.tif")


def test_pixel_cap_is_configurable_and_checked_before_decoding() -> None:
    data = _encode(Image.fromarray(_gradient(100, 100)), "PNG")
    assert decode_image(data, "ok.png").shape == (100, 100, 3)
    assert "Mpx" in _refused(data, "big.png", max_pixels=5_000)


def test_byte_cap_is_enforced() -> None:
    data = _encode(Image.fromarray(_gradient(100, 100)), "BMP")
    assert "MB" in _refused(data, "heavy.bmp", max_bytes=1000)


@pytest.mark.parametrize("side", [20_000, 8_000])
def test_header_bombs_are_refused_quickly(side: int) -> None:
    # 8000^2 = 64 Mpx is below Pillow's own bomb threshold: only our cap stops it.
    bomb = png_bomb(side, side, zeros_mb=4)
    start = time.perf_counter()
    _refused(bomb, "bomb.png")
    assert time.perf_counter() - start < 3.0  # milliseconds alone; the memory bound is checked below


_BOMB_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from inspector.errors import ImageDecodeError
from inspector.frame.imageio import cv2, decode_image
sys.path.insert(0, sys.argv[2])
from test_imageio import png_bomb
def status_mib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
def start():
    # Reset the peak (VmHWM) so the growth is measured from now, not from import-time peaks.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status_mib("VmRSS")
def growth_since(base):
    return status_mib("VmHWM") - base
bomb = png_bomb()
base = start(); t0 = time.perf_counter()
try:
    decode_image(bomb, "bomb.png"); refused = False
except ImageDecodeError:
    refused = True
seconds = time.perf_counter() - t0; growth = growth_since(base)
try:
    cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_COLOR); cv_refused = False
except cv2.error:
    cv_refused = True
base = start(); control = np.ones(150 * 2**20, np.uint8); control_growth = growth_since(base)
print(json.dumps(dict(size=len(bomb), refused=refused, seconds=seconds, growth=growth,
                      cv_refused=cv_refused, control_growth=control_growth)))
"""


@pytest.mark.subprocess
def test_48kb_png_bomb_fails_fast_without_allocating() -> None:
    """In a fresh process, so peak RSS is not masked by earlier tests' allocations."""
    out = subprocess.run(
        [sys.executable, "-c", _BOMB_CHILD, str(ROOT), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert 30_000 < r["size"] < 70_000  # the documented ~48 KB, 400 Mpx case
    assert r["refused"] and r["seconds"] < 1.0
    assert r["growth"] < 100, f"decoder grew peak RSS by {r['growth']:.0f} MiB"
    assert r["control_growth"] > 100  # the meter does see a 150 MiB allocation
    assert r["cv_refused"], "OPENCV_IO_MAX_IMAGE_PIXELS was not in force when cv2 was imported"


# --- property: any bytes either decode or raise ImageDecodeError -------------------------------

_SEEDS = [
    _encode(Image.fromarray(_gradient(12, 10)), "PNG"),
    _encode(Image.fromarray(_gradient(12, 10)), "JPEG", quality=80),
    _encode(Image.fromarray(_gradient(12, 10)).convert("L"), "PNG"),
]


def _check(data: bytes) -> None:
    try:
        out = decode_image(data, "fuzz")
    except ImageDecodeError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    _check(data)


@settings(max_examples=250, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_mutated_images_decode_or_raise_image_decode_error(
    seed: bytes, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _check(bytes(data))
