"""The one safe decoder of untrusted image bytes: files, imports, replays, folder sources.

WARNING: OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once, when cv2 is first imported. This module
sets it before importing cv2, so every other module must import cv2 *after* this one (import
`inspector.frame.imageio` first, as `inspector.capture.opencv` does). An earlier bare `import cv2`
leaves OpenCV's default of 2^30 pixels, under which a 48 KB PNG becomes a 381 MiB array.

Decoding goes through Pillow only, behind a header check: `Image.open` is lazy and reads just the
header, so the declared size is refused before a single pixel buffer is allocated.
"""

from __future__ import annotations

import os
import sys
import warnings

if "cv2" in sys.modules:
    # Measured: once cv2 is loaded, setting the variable no longer caps cv2.imdecode.
    warnings.warn(
        "cv2 was imported before inspector.frame.imageio, so OPENCV_IO_MAX_IMAGE_PIXELS may not cap "
        "cv2.imdecode; import inspector.frame.imageio (or set the variable) before cv2",
        RuntimeWarning,
        stacklevel=2,
    )

DEFAULT_MAX_PIXELS = 50_000_000  # 50 Mpx: above any line camera we plan for, far below a bomb
DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # station-requirements S6: refuse files over 50 MB
# setdefault: an operator may tighten the OpenCV cap in the environment; we never loosen it.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_PIXELS))

import io  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402,F401  (imported here so the pixel cap above is in force; see WARNING)
import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from inspector.errors import ImageDecodeError  # noqa: E402

# Only these decoders are reachable: every other Pillow plugin is attack surface we do not need.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "TIFF", "BMP")
# Transparent pixels are composited on black: the result equals premultiplying by alpha, so the
# arbitrary colour stored under alpha=0 can never leak into the model's input.
DEFAULT_BACKGROUND: tuple[int, int, int] = (0, 0, 0)

_MODES_VIA_RGBA = {"RGBA", "RGBa", "LA", "PA", "P"}
# LAB is absent on purpose: Pillow has no colorimetric LAB->RGB, and a raw copy would be wrong.
_MODES_VIA_RGB = {"RGB", "L", "1", "CMYK", "YCbCr", "RGBX", "HSV"}


def _label(name: str) -> str:
    return repr(name) if name else "image"


def decode_image(
    data: bytes,
    name: str = "",
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
) -> np.ndarray:
    """Decode PNG/JPEG/TIFF/BMP bytes to RGB uint8 HxWx3, or raise ImageDecodeError.

    16-bit samples keep their high byte; alpha is composited on `background`; CMYK and YCbCr are
    converted to RGB; EXIF orientation is applied. Multi-page TIFFs yield their first page.
    """
    label = _label(name)
    if not data:
        raise ImageDecodeError(f"{label} is empty (0 bytes); check that the file was written completely")
    if len(data) > max_bytes:
        raise ImageDecodeError(
            f"{label} is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit for images; "
            "export it at a lower resolution or raise the limit"
        )
    try:
        image = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"{label} refused: {exc}") from None
    except Image.UnidentifiedImageError:
        raise ImageDecodeError(
            f"{label} is not a {', '.join(ALLOWED_FORMATS)} image (unrecognised header); "
            "check the file type, not just its extension"
        ) from None
    # Pillow raises a wide, undocumented set of types on hostile headers (OSError, SyntaxError,
    # struct.error, ValueError, IndexError...). Any of them means "cannot decode"; chain the cause.
    except Exception as exc:  # noqa: BLE001
        raise ImageDecodeError(f"{label} has a corrupt {type(exc).__name__} header: {exc}") from exc
    with image:
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageDecodeError(f"{label} declares an empty size {width}x{height}")
        if width * height > max_pixels:
            raise ImageDecodeError(
                f"{label} declares {width}x{height} = {width * height / 1e6:.0f} Mpx, over the "
                f"{max_pixels / 1e6:.0f} Mpx limit; refused before decoding (possible decompression "
                "bomb). Downscale the image or raise max_pixels"
            )
        try:
            image.load()
            return _to_rgb(image, background, label)
        except ImageDecodeError:
            raise
        except Exception as exc:  # noqa: BLE001  (same reason as above: untrusted pixel data)
            raise ImageDecodeError(f"{label} is truncated or corrupt ({image.format} {width}x{height}): {exc}") from exc


def read_image_file(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
) -> np.ndarray:
    """Read and decode an image file; the size limit is checked before the bytes are read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageDecodeError(
                f"{str(path)!r} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit for "
                "images; export it at a lower resolution or raise the limit"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read image file {str(path)!r}: {exc.strerror or exc}") from exc
    return decode_image(data, str(path), max_pixels=max_pixels, max_bytes=max_bytes, background=background)


def _to_rgb(image: Image.Image, background: tuple[int, int, int], label: str) -> np.ndarray:
    image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # Keep the high byte (v >> 8), the same mapping Pillow applies to 48-bit RGB, so gray and
        # colour 16-bit images scale alike; no auto-contrast, which would hide exposure faults.
        wide = np.asarray(image).astype(np.int64)
        gray = (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in _MODES_VIA_RGBA or "transparency" in image.info:
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (*background, 255))
        return np.asarray(Image.alpha_composite(backdrop, rgba).convert("RGB")).copy()
    if mode in _MODES_VIA_RGB:
        return np.asarray(image.convert("RGB")).copy()
    raise ImageDecodeError(
        f"{label} has pixel mode {mode!r} (e.g. 32-bit float), which the station does not accept; "
        "export it as 8- or 16-bit RGB or grayscale"
    )
