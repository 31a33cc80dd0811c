"""SOURCE strings of the CLI and the config, turned into frame sources.

    FOLDER                    watched folder (backlog not yet seen, then new files)
    VIDEO_FILE                replayed with OpenCV/FFmpeg
    0, 1, ...                 camera device index (V4L2 on Linux)
    rtsp://..., http(s)://... network stream (FFmpeg, with open/read timeouts)
    genicam:[CTI_PATH][#N]    GenTL device N (default 0) through harvesters
    sim:[FOLDER][?fps=5&loop=1&count=8&size=320x240&seed=0]   simulated camera

Live sources (devices, streams, GenICam) come wrapped in a ResilientSource unless told not to.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

from inspector.capture.base import EventSink, FrameSource
from inspector.capture.folder import FolderSource
from inspector.capture.genicam import GenICamSource
from inspector.capture.opencv import URL_SCHEMES, OpenCVSource, redact_url
from inspector.capture.simulated import IMAGE_SUFFIXES, SimulatedCamera, synthetic_images
from inspector.capture.watchdog import ResilientSource
from inspector.errors import CameraError

_SIM_OPTIONS = ("fps", "loop", "count", "size", "seed")
SPEC_HELP = "a folder, a video file, a device index (0), an rtsp:// or http(s):// URL, genicam:[CTI]#N or sim:"


def build_source(
    spec: str,
    *,
    seen: Callable[[str], bool] | None = None,
    on_event: EventSink | None = None,
    resilient: bool | None = None,
    stall_after_s: float = 2.0,
) -> FrameSource:
    """The (unopened) source a SOURCE string names; raise CameraError for an unusable one."""
    text = spec.strip()
    if not text:
        raise CameraError(f"SOURCE is empty; give {SPEC_HELP}")
    live: Callable[[], FrameSource] | None = None
    if text.startswith("sim:"):
        return _simulated(text[4:])
    if text.startswith("genicam:"):
        cti, _, index = text[8:].partition("#")
        if index and not index.isdigit():
            raise CameraError(f"SOURCE {spec!r}: the device after '#' must be a number, e.g. genicam:#0")
        device = GenICamSource(cti or None, int(index or 0))
        live = lambda: device  # noqa: E731  the same object, so reconnects find the device by serial
    elif text.isdigit() or text.lower().startswith(URL_SCHEMES):
        live = lambda: OpenCVSource(text)  # noqa: E731  a fresh capture per try (openmpf#436)
    if live is not None:
        if resilient is False:
            return live()
        return ResilientSource(live, stall_after_s=stall_after_s, on_event=on_event, source_id=redact_url(text))
    path = Path(text).expanduser()
    if path.is_dir():
        return FolderSource(path, seen=seen, on_event=on_event)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise CameraError(
                f"SOURCE {spec!r} is a single image; put it in a folder and pass the folder (or sim:FOLDER)"
            )
        source: FrameSource = OpenCVSource(str(path))
        return ResilientSource(lambda: source, stall_after_s=stall_after_s, on_event=on_event) if resilient else source
    raise CameraError(f"SOURCE {redact_url(spec)!r} does not exist and is not a device or URL; give {SPEC_HELP}")


def open_source(
    spec: str,
    *,
    seen: Callable[[str], bool] | None = None,
    on_event: EventSink | None = None,
    resilient: bool | None = None,
    stall_after_s: float = 2.0,
) -> FrameSource:
    """Build and open the source for a SOURCE string (close it, or use it in a `with` block)."""
    source = build_source(spec, seen=seen, on_event=on_event, resilient=resilient, stall_after_s=stall_after_s)
    source.open()
    return source


def _simulated(rest: str) -> SimulatedCamera:
    target, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(_SIM_OPTIONS))
    if unknown:
        raise CameraError(f"sim: does not know option(s) {unknown}; known: {', '.join(_SIM_OPTIONS)}")
    try:
        fps_text = options.get("fps", "10")
        fps = None if fps_text in ("0", "max") else float(fps_text)
        loop = options.get("loop", "1").lower() not in ("0", "false", "no")
        count, seed = int(options.get("count", "8")), int(options.get("seed", "0"))
        width, _, height = options.get("size", "320x240").lower().partition("x")
        size = (int(height), int(width))
    except ValueError as exc:
        raise CameraError(f"sim: option value is not a number ({exc}); e.g. sim:?fps=5&size=320x240") from None
    if count < 1 or min(size) < 1:
        raise CameraError("sim: count and size must be positive, e.g. sim:?count=8&size=320x240")
    images = target if target else synthetic_images(count, size, seed)
    label = f"sim:{target}" if target else "sim"
    return SimulatedCamera(images, fps=fps, loop=loop, source_id=label)
