"""Hostile inputs at the station's edges: bad image files in a watched folder (each refused with a
message and one logged event, none stopping `inspector watch`, good frames after them still
inspected), fuzzed files through the folder path, the header cases test_imageio.py does not cover
(corrupt and 400 Mpx JPEG/TIFF/BMP headers), and bad model files given to `inspector watch --model`."""

from __future__ import annotations

import io
import json
import shutil
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.reliability import (  # noqa: E402
    fuzz_campaign,
    make_station_db,
    parse_acks,
    shared_cli_server,
    user_env,
    watch_argv,
)
from inspector.errors import ImageDecodeError  # noqa: E402
from inspector.frame.imageio import decode_image  # noqa: E402
from inspector.store.decision_log import DecisionLog  # noqa: E402


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory):
    return shared_cli_server(tmp_path_factory.getbasetemp() / "inspector-cli")


def _encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _rgb(h: int = 64, w: int = 64, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = 20_000, zeros_mb: int = 48) -> bytes:
    """About 48 KB of PNG declaring side x side RGB (400 Mpx at 20 000)."""
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(b"\0" * (1 << 20)) for _ in range(zeros_mb)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _jpeg_size(data: bytes, height: int, width: int) -> bytes:
    out = bytearray(data)
    sof = out.index(b"\xff\xc0")  # baseline SOF0: length(2) precision(1) height(2) width(2)
    struct.pack_into(">HH", out, sof + 5, height, width)
    return bytes(out)


def _tiff_tags(data: bytes, values: dict[int, int]) -> bytes:
    out = bytearray(data)
    assert out[:2] == b"II"
    ifd = struct.unpack_from("<I", out, 4)[0]
    for i in range(struct.unpack_from("<H", out, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", out, entry)
        if tag in values:
            struct.pack_into("<H" if kind == 3 else "<I", out, entry + 8, values[tag])
    return bytes(out)


def _bmp_fields(data: bytes, *fields: tuple[int, str, int]) -> bytes:
    out = bytearray(data)
    for offset, fmt, value in fields:
        struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _header_cases(side: int) -> dict[str, bytes]:
    jpg, tif, bmp = _encode(_rgb(), "JPEG"), _encode(_rgb(), "TIFF"), _encode(_rgb(), "BMP")
    return {
        f"huge-{side}.jpg": _jpeg_size(jpg, side, side),
        f"huge-{side}.tif": _tiff_tags(tif, {256: side, 257: side}),  # ImageWidth, ImageLength
        f"huge-{side}.bmp": _bmp_fields(bmp, (18, "<i", side), (22, "<i", side)),
    }


CORRUPT_HEADERS = {
    "depth.bmp": _bmp_fields(_encode(_rgb(), "BMP"), (28, "<H", 7)),  # 7 bits per pixel
    "offset.bmp": _bmp_fields(_encode(_rgb(), "BMP"), (10, "<I", 10**8)),  # pixels beyond the end
    "strips.tif": _tiff_tags(_encode(_rgb(), "TIFF"), {273: 10**9}),  # StripOffsets beyond the end
    "sof.jpg": _jpeg_size(_encode(_rgb(), "JPEG"), 0, 64),  # zero height
    "stream.jpg": bytes(b if i < 600 else 0xFF for i, b in enumerate(_encode(_rgb(), "JPEG"))),
}


# --- header cases test_imageio.py does not cover ------------------------------------------------------


@pytest.mark.parametrize("name", sorted({**_header_cases(20_000), **_header_cases(8_000)}))
def test_huge_declared_sizes_in_every_format_are_refused_before_decoding(name: str) -> None:
    data = {**_header_cases(20_000), **_header_cases(8_000)}[name]
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, name)
    assert time.perf_counter() - start < 3.0  # milliseconds alone; generous for a loaded machine
    assert name in str(info.value) and ("Mpx" in str(info.value) or "decompression bomb" in str(info.value))


@pytest.mark.parametrize("name", sorted(CORRUPT_HEADERS))
def test_corrupt_jpeg_tiff_and_bmp_are_refused_naming_the_file(name: str) -> None:
    with pytest.raises(ImageDecodeError, match=name.replace(".", r"\.")):
        decode_image(CORRUPT_HEADERS[name], name)


# --- bad files in a watched folder: one event each, and the line goes on ---------------------------


def _bad_files() -> dict[str, bytes]:
    png, jpg = _encode(_rgb(seed=1), "PNG"), _encode(_rgb(seed=1), "JPEG")
    tif, bmp = _encode(_rgb(seed=1), "TIFF"), _encode(_rgb(seed=1), "BMP")
    corrupt_png = bytearray(png)
    corrupt_png[60:80] = b"\xff" * 20
    return {
        "bomb.png": png_bomb(),
        **_header_cases(20_000),
        **CORRUPT_HEADERS,
        "cut.png": png[: len(png) // 2],
        "cut.jpg": jpg[: len(jpg) // 2],
        "cut.tif": tif[: len(tif) // 2],
        "cut.bmp": bmp[: len(bmp) // 2],
        "corrupt.png": bytes(corrupt_png),
        "zero.png": b"",
        "notes.png": b"shift notes: line 3 stopped at 14:02\n",
        "anim.png": _encode(_rgb(8, 8), "GIF"),
    }


def _good_files() -> dict[str, bytes]:
    wide = (np.random.default_rng(2).integers(0, 65536, (40, 48))).astype(np.uint16)
    rgba = np.random.default_rng(3).integers(0, 256, (40, 48, 4), dtype=np.uint8)
    return {
        "z-plain.png": _encode(_rgb(40, 48, seed=4), "PNG"),
        "z-16bit.png": _encode(Image.fromarray(wide), "PNG"),
        "z-gray.png": _encode(_rgb(40, 48, seed=5).convert("L"), "PNG"),
        "z-rgba.png": _encode(Image.fromarray(rgba, "RGBA"), "PNG"),
        "z-cmyk.jpg": _encode(_rgb(40, 48, seed=6).convert("CMYK"), "JPEG"),
        "z-dot.bmp": _encode(Image.new("RGB", (1, 1), (9, 8, 7)), "BMP"),
        "z-plain.tif": _encode(_rgb(40, 48, seed=7), "TIFF"),
    }


@pytest.mark.timeout(240)
def test_watch_logs_one_event_per_bad_file_and_inspects_the_good_ones(tmp_path: Path, cli_server) -> None:
    line, db = tmp_path / "line", tmp_path / "station.db"
    line.mkdir()
    make_station_db(db)
    bad, good = _bad_files(), _good_files()
    for name, data in {**bad, **good}.items():  # the bad files first: the good ones come after them
        (line / name).write_bytes(data)
        time.sleep(0.01)
    child = cli_server.run(watch_argv(str(line), db, "--exit-when-idle", "--timeout", "3"), user_env(), 200)
    err = child.stderr()
    assert child.exit_code == 0, err
    assert "Traceback" not in err
    acks = parse_acks(child.stdout_lines())
    assert sorted(a["origin"] for a in acks) == sorted(good)
    with DecisionLog.open(db, create=False) as log:
        rejected = [json.loads(e["detail"]) for e in log.events(kind="camera_file_rejected", limit=10**6)]
        assert log.verify().ok
        assert sorted(r["id"] for r in log.inspections(limit=10**6)) == sorted(a["inspection_id"] for a in acks)
    assert sorted(d["file"] for d in rejected) == sorted(bad)  # exactly one event per bad file
    for detail in rejected:
        assert detail["file"] in detail["error"] and len(detail["error"]) > 40
    warnings = [ln for ln in err.splitlines() if ln.startswith("inspector: warning:") and "file_rejected" in ln]
    assert sorted(next(n for n in bad if f"'{n}'" in ln) for ln in warnings) == sorted(bad)


# --- fuzzing the decoder through the watched-folder path -----------------------------------------------


@pytest.mark.timeout(300)
def test_fuzzed_files_in_a_watched_folder_decode_or_are_refused_with_one_event() -> None:
    report = fuzz_campaign(150)
    assert report.examples == 150 and report.ok, report.problems[:10]
    assert report.refused > 20 and report.decoded > 5  # both outcomes were exercised
    assert report.refusal_events == report.refused and report.slowest_s < 2.0


# --- model files: `inspector watch --model BAD` ---------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, tiny_bundle) -> dict[str, Path]:
    """A good tiny checkpoint and four bad ones, each NAME.safetensors + NAME.json (or a .pt)."""
    import torch

    from models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    save_checkpoint(tiny_bundle, root / "good")

    def copy(name: str) -> tuple[Path, Path]:
        for ext in (".safetensors", ".json"):
            shutil.copy(root / f"good{ext}", root / f"{name}{ext}")
        return root / f"{name}.safetensors", root / f"{name}.json"

    weights, _ = copy("truncated")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    weights, _ = copy("altered")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    _, sidecar = copy("mismatch")
    meta = json.loads(sidecar.read_text())
    meta["weights_sha256"] = "ab" * 32
    sidecar.write_text(json.dumps(meta))
    torch.save(tiny_bundle.model.state_dict(), root / "legacy.pt")
    copy("renamed-pickle")
    shutil.copy(root / "legacy.pt", root / "renamed-pickle.safetensors")
    return {
        "good": root / "good",
        "truncated": root / "truncated",
        "altered": root / "altered",
        "hash-mismatch": root / "mismatch",
        "pickle": root / "legacy.pt",
        "renamed-pickle": root / "renamed-pickle",
    }


@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    "fault, says",
    [
        ("truncated", "does not match its sidecar hash"),
        ("altered", "does not match its sidecar hash"),
        ("hash-mismatch", "does not match its sidecar hash"),
        ("pickle", "pickle"),
        ("renamed-pickle", "zip archive"),
    ],
)
def test_watch_with_a_bad_model_file_says_why_and_exits_2(
    fault: str, says: str, checkpoints, tmp_path: Path, cli_server
) -> None:
    line, db = tmp_path / "line", tmp_path / "station.db"
    line.mkdir()
    (line / "part.png").write_bytes(_encode(_rgb(), "PNG"))
    make_station_db(db)
    argv = watch_argv(str(line), db, "--exit-when-idle")
    argv[argv.index("--model") + 1] = str(checkpoints[fault])
    child = cli_server.run(argv, user_env(), 150)
    err = child.stderr()
    assert child.exit_code == 2 and child.stdout_lines() == [], err
    assert err.startswith("inspector: error: ") and says in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1  # one plain line
    with DecisionLog.open(db, create=False) as log:
        assert log.inspections() == [] and log.verify().ok


@pytest.mark.timeout(200)
def test_watch_with_the_good_checkpoint_runs(checkpoints, tmp_path: Path, cli_server) -> None:
    """The control for the faults above: the same call with the intact checkpoint inspects the part."""
    line, db = tmp_path / "line", tmp_path / "station.db"
    line.mkdir()
    (line / "part.png").write_bytes(_encode(_rgb(), "PNG"))
    make_station_db(db)
    argv = watch_argv(str(line), db, "--exit-when-idle")
    argv[argv.index("--model") + 1] = str(checkpoints["good"])
    child = cli_server.run(argv, user_env(), 150)
    assert child.exit_code == 0, child.stderr()
    assert [a["origin"] for a in parse_acks(child.stdout_lines())] == ["part.png"]
