"""OpenCV VideoCapture as a frame source: a device index, an RTSP/HTTP URL or a video file.

The capture handle lives in its own grab thread, for two documented reasons: `read()` can block
far past any timeout (opencv#22677, #24393), so the caller must be able to abandon it; and
backends buffer frames, so a thread that keeps only the newest frame fixes stale frames
(opencv#13145). Open/read timeouts are FFmpeg-only and must be passed as params at open (#23207).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from pathlib import Path

import numpy as np

from inspector.capture.base import FrameSource
from inspector.errors import CameraError
from inspector.frame.imageio import cv2  # through imageio: OPENCV_IO_MAX_IMAGE_PIXELS must be set first
from inspector.frame.records import Frame

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)([^/?#@]*)@", re.IGNORECASE)
_SECRET_QUERY = re.compile(
    r"([?&;](?:password|passwd|pwd|pass|token|key|auth|secret|signature|sig)=)[^&;#]*", re.IGNORECASE
)


def redact_url(text: str) -> str:
    """The source text as it may be logged or shown: a URL's password (or lone user token) and secret
    query values become '***'. The camera is opened with the original; nothing stores that one."""
    found = _USERINFO.match(text)
    if found:
        user, colon, _ = found.group(2).partition(":")
        userinfo = f"{user}:***" if colon else "***"
        text = f"{found.group(1)}{userinfo}@{text[found.end() :]}"
    return _SECRET_QUERY.sub(r"\1***", text)


_JOIN_S = 1.0  # how long close() waits for a grab thread stuck in the backend before abandoning it


class OpenCVSource(FrameSource):
    """Frames from cv2.VideoCapture, grabbed in a thread into a bounded queue.

    Live sources (devices, URLs) keep the newest `queue_size` frames and count the rest as
    dropped; video files are replayed completely (the grab thread waits for the consumer).
    """

    def __init__(
        self,
        spec: str | int,
        *,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        queue_size: int = 1,
        drop_old: bool | None = None,
        loop: bool = False,
        source_id: str | None = None,
    ) -> None:
        text = str(spec).strip()
        self.kind = "device" if text.isdigit() else "url" if text.lower().startswith(URL_SCHEMES) else "file"
        super().__init__(source_id or (f"camera:{text}" if self.kind == "device" else redact_url(text)))
        self._target: str | int = int(text) if self.kind == "device" else text
        self._open_timeout_s, self._read_timeout_s = open_timeout_s, read_timeout_s
        self._queue_size = max(1, queue_size)
        self._drop_old = self.kind != "file" if drop_old is None else drop_old
        self._loop = loop
        self._cond = threading.Condition(self._lock)
        self._queue: deque[Frame] = deque()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._fault = ""

    def open(self) -> None:
        with self._lock:
            if self._state == "connected":
                return
        if self.kind == "file" and not Path(str(self._target)).is_file():
            raise CameraError(f"video file {self._target!r} does not exist; check the SOURCE path")
        self._stop = stop = threading.Event()
        opened, outcome = threading.Event(), {}
        self._queue.clear()
        self._fault = ""
        self._thread = threading.Thread(
            target=self._grab_loop, args=(stop, opened, outcome), name=f"grab-{self.source_id}", daemon=True
        )
        self._thread.start()
        # The constructor itself can hang (opencv#22677): wait a bounded time, then abandon it.
        if not opened.wait(self._open_timeout_s + 2.0):
            stop.set()
            message = f"{self._describe()} did not open within {self._open_timeout_s:.0f} s; check that it is reachable"
            self._set_state("closed", message)
            raise CameraError(message)
        if "error" in outcome:
            self._set_state("closed", outcome["error"])
            raise CameraError(outcome["error"])
        self.backend = outcome.get("backend", "")
        self._set_state("connected")

    def read(self, timeout: float) -> Frame | None:
        self._require_open()
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._fault, timeout=max(0.0, timeout))
            if self._queue:
                frame = self._queue.popleft()
                self._cond.notify_all()  # a file replay may be waiting for room
                return self._delivered_frame(frame)
            if self._fault:
                self._state = "failed"
                raise CameraError(self._fault)
            return None

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_S)  # a thread still inside the backend is abandoned (daemon)
        self._set_state("closed")

    # --- grab thread --------------------------------------------------------------------------

    def _describe(self) -> str:
        return (
            f"camera device {self._target}"
            if self.kind == "device"
            else f"{self.kind} {redact_url(str(self._target))!r}"
        )

    def _create(self) -> cv2.VideoCapture:
        if self.kind == "device":
            # FFmpeg cannot open device indices in the pip wheels (no libavdevice): let OpenCV pick V4L2.
            cap = cv2.VideoCapture(self._target, cv2.CAP_ANY)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # honoured by V4L2 only; the grab thread does the rest
            return cap
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self._open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self._read_timeout_s * 1000),
        ]  # fmt: skip
        return cv2.VideoCapture(str(self._target), cv2.CAP_FFMPEG, params)

    def _grab_loop(self, stop: threading.Event, opened: threading.Event, outcome: dict[str, str]) -> None:
        cap = None
        try:
            cap = self._create()
            if not cap.isOpened():
                outcome["error"] = f"{self._describe()} could not be opened; {self._hint()}"
                return
            outcome["backend"] = cap.getBackendName()
            opened.set()
            while not stop.is_set():
                ok, bgr = cap.read()
                if stop.is_set():
                    break
                if not ok or bgr is None:
                    if self.kind == "file" and self._loop and cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                        continue
                    self._finish_stream()
                    break
                self._push(bgr, stop)
        except cv2.error as exc:
            outcome.setdefault("error", f"{self._describe()}: OpenCV error {exc}")
            self._post_fault(f"{self._describe()} failed in OpenCV: {exc}; close and reopen it")
        finally:
            opened.set()
            if cap is not None:
                cap.release()

    def _hint(self) -> str:
        if self.kind == "device":
            return "check the index (ls /dev/video*) and that no other program holds the camera"
        if self.kind == "url":
            return "check the URL, the network and the credentials"
        return "the file may be corrupt or in a codec this OpenCV build cannot read"

    def _push(self, bgr: np.ndarray, stop: threading.Event) -> None:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
        frame = self._make_frame(rgb, origin=redact_url(str(self._target)))
        if frame is None:
            return
        with self._cond:
            if not self._drop_old:
                self._cond.wait_for(lambda: len(self._queue) < self._queue_size or stop.is_set())
                if stop.is_set():
                    return
            elif len(self._queue) >= self._queue_size:
                self._queue.popleft()  # keep the newest: a stale frame is worse than a missing one
                self._dropped += 1
            self._queue.append(frame)
            self._queue_peak = max(self._queue_peak, len(self._queue))
            self._cond.notify_all()

    def _finish_stream(self) -> None:
        if self.kind == "file":
            return  # end of the file: reads return None (nothing arrives), not an error
        self._post_fault(
            f"{self._describe()} stopped delivering frames (stream ended or read timed out after "
            f"{self._read_timeout_s:.0f} s); close and reopen it"
        )

    def _post_fault(self, message: str) -> None:
        with self._cond:
            self._fault = message
            self._last_error = message
            self._cond.notify_all()
