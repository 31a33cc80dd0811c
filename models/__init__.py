"""The model side: all torch, open_clip and pytorch-grad-cam code. Knows nothing of inspector/ui."""

import os

# See inspector/__init__.py: OpenCV reads this cap only at its first import.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "50000000")
