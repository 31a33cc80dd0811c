"""GenICam/GenTL cameras (GigE Vision, USB3 Vision, CoaXPress) through the optional `harvesters`.

harvesters is imported only when a GenICamSource opens, so the station runs without it. Once a
device has been opened, reopening finds it again by serial number, never by index: indices
change when a camera is unplugged and replugged (station-requirements 1.7).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import numpy as np

from inspector.capture.base import FrameSource
from inspector.errors import CameraError
from inspector.frame.imageio import cv2
from inspector.frame.records import Frame

_INSTALL_HINT = (
    "GenICam cameras need the optional package harvesters: `pip install harvesters` (it pulls in "
    "`genicam`, whose wheel also ships MVTec's simulated producer viky.cti for tests)"
)
# PFNC names the first 2x2 cell from the top-left; OpenCV names it one pixel further in.
_BAYER = {
    "BayerRG": cv2.COLOR_BayerBG2RGB,
    "BayerBG": cv2.COLOR_BayerRG2RGB,
    "BayerGR": cv2.COLOR_BayerGB2RGB,
    "BayerGB": cv2.COLOR_BayerGR2RGB,
}


def find_viky_cti() -> Path | None:
    """The simulated GenTL producer shipped in the `genicam` wheel, when that is installed."""
    try:
        import genicam
    except ImportError:
        return None
    root = Path(genicam.__file__).parent
    hits = sorted(root.rglob("viky*.cti")) or sorted(root.parent.glob("genicam*/**/viky*.cti"))
    return hits[0] if hits else None


def buffer_to_rgb(data: np.ndarray, pixel_format: str) -> np.ndarray | None:
    """A GenICam buffer (HxW or HxWxC) as RGB uint8 HxWx3; None for formats the station refuses."""
    bits = "".join(ch for ch in pixel_format if ch.isdigit())
    depth = int(bits) if bits else 8
    if data.dtype != np.uint8:
        # 10/12/14/16-bit unpacked samples: keep the top 8 bits, as the image decoder does.
        data = (data.astype(np.uint32) >> max(0, depth - 8)).clip(0, 255).astype(np.uint8)
    if pixel_format.startswith("Mono") and data.ndim == 2:
        return np.ascontiguousarray(np.repeat(data[:, :, None], 3, axis=2))
    if pixel_format.startswith(("RGB", "BGR")) and data.ndim == 3 and data.shape[2] in (3, 4):
        rgb = data[:, :, :3]
        return np.ascontiguousarray(rgb[:, :, ::-1] if pixel_format.startswith("BGR") else rgb)
    if pixel_format[:7] in _BAYER and data.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(data), _BAYER[pixel_format[:7]])
    return None


class GenICamSource(FrameSource):
    """One device of a GenTL producer (.cti), acquired with harvesters."""

    backend = "harvesters"

    def __init__(self, cti_path: str | None = None, device_index: int = 0, *, source_id: str | None = None) -> None:
        super().__init__(source_id or f"genicam:{Path(cti_path).name if cti_path else ''}#{device_index}")
        self._cti_path, self._index = cti_path, device_index
        self._serial: str | None = None
        self._harvester: Any = None
        self._acquirer: Any = None

    def _producers(self) -> list[str]:
        if self._cti_path:
            if not Path(self._cti_path).is_file():
                raise CameraError(f"GenTL producer {self._cti_path!r} does not exist; check the .cti path")
            return [self._cti_path]
        dirs = [d for d in os.environ.get("GENICAM_GENTL64_PATH", "").split(os.pathsep) if d]
        found = sorted(p for d in dirs for p in glob.glob(os.path.join(d, "*.cti")))
        if not found:
            raise CameraError(
                "no GenTL producer: pass genicam:/path/to/producer.cti#INDEX, or set GENICAM_GENTL64_PATH "
                "to the folder of your camera vendor's .cti"
            )
        return found

    def open(self) -> None:
        if self._state == "connected":
            return
        try:
            from harvesters.core import Harvester
        except ImportError as exc:
            raise CameraError(_INSTALL_HINT) from exc
        producers = self._producers()
        harvester = Harvester()
        try:
            for cti in producers:
                harvester.add_file(cti)
            harvester.update()
            devices = list(harvester.device_info_list)
            key: Any = {"serial_number": self._serial} if self._serial else self._index
            if self._serial is None and not 0 <= self._index < len(devices):
                raise CameraError(
                    f"GenICam device #{self._index} not found: {len(devices)} device(s) on {', '.join(producers)}"
                )
            acquirer = harvester.create(key)
            if self._serial is None:
                self._serial = str(getattr(devices[self._index], "serial_number", "") or "") or None
            acquirer.start()
        except CameraError:
            harvester.reset()
            raise
        except Exception as exc:  # noqa: BLE001  (genicam raises its own unrelated hierarchy)
            harvester.reset()
            message = f"GenICam device {self._serial or '#' + str(self._index)} could not be opened: {exc}"
            self._note_error(message)
            raise CameraError(message) from exc
        self._harvester, self._acquirer = harvester, acquirer
        self._set_state("connected")

    def read(self, timeout: float) -> Frame | None:
        self._require_open()
        try:
            buffer = self._acquirer.try_fetch(timeout=max(timeout, 1e-3))
            if buffer is None:
                return None  # timeout or an incomplete buffer (harvesters does not tell which)
            with buffer:  # leaving the block hands the buffer back to the producer
                component = buffer.payload.components[0]
                fmt = str(component.data_format)
                data = np.asarray(component.data)
                if data.ndim == 1:
                    data = data.reshape(component.height, component.width, -1)
                if data.ndim == 3 and data.shape[2] == 1:
                    data = data[:, :, 0]
                rgb = buffer_to_rgb(data, fmt)
        except Exception as exc:  # noqa: BLE001
            message = f"GenICam device {self._serial or self._index} failed while fetching: {exc}; reconnect it"
            self._set_state("failed", message)
            raise CameraError(message) from exc
        if rgb is None:
            self._note_invalid(f"GenICam pixel format {fmt!r} is not supported; frame skipped")
            return None
        frame = self._make_frame(rgb, origin=self._serial or "")
        return None if frame is None else self._delivered_frame(frame)

    def close(self) -> None:
        acquirer, harvester = self._acquirer, self._harvester
        self._acquirer = self._harvester = None
        for action in (lambda: acquirer and acquirer.stop(), lambda: acquirer and acquirer.destroy(),
                       lambda: harvester and harvester.reset()):  # fmt: skip
            try:
                action()
            except Exception as exc:  # noqa: BLE001  a vanished device must not block closing
                self._note_error(f"GenICam close: {exc}")
        self._set_state("closed")
