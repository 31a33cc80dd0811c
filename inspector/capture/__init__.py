"""Frame sources: one interface (FrameSource) over folders, OpenCV, GenICam and a simulator."""

from inspector.capture.base import FrameSource, SourceHealth, SourceState
from inspector.capture.factory import build_source, open_source

__all__ = ["FrameSource", "SourceHealth", "SourceState", "build_source", "open_source"]
