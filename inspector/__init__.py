"""The inspection core: no Qt here, and torch only through `models`."""

import os

# OpenCV reads its decoder pixel cap once, when cv2 is first imported: set it before anything in
# the station can import cv2, so no code path can decode a decompression bomb.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "50000000")
