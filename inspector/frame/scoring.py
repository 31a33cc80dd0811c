"""How frames are scored: the station's [scoring] settings and the hashed scoring configuration.

Every inspection records the ScoringConfig it was ranked with (model id, input size, tiling,
region of interest, test-time options) as canonical JSON and its SHA-256, so a record always
says exactly how its scores were made.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import ConfigError, InspectorError

Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class CameraRoi:
    """A region of interest: rectangles (x0, y0, x1, y1, half-open, frame pixels) and/or a mask image
    (non-zero = scored). Both empty: the whole frame."""

    rects: tuple[Rect, ...] = ()
    mask: str = ""

    @property
    def empty(self) -> bool:
        return not self.rects and not self.mask


@dataclass(frozen=True)
class ScoringSettings:
    """The [scoring] section of the station TOML. Defaults suit 640x480 (one whole-frame forward; maps
    at 448 px short side) and 2448x2048 (maps from 42 native 448-px tiles; tiles also feed the ranking
    when local_weight > 0)."""

    input_size: int = 0  # short side px of the whole-frame view; 0 = the model's native size (sidecar)
    # Short side px of the localization maps' forward (>= 14x14 map); 0 = input_size. Separate from the
    # ranking's size: v1 (trained at 224) ranks worse at 448 (validation top-1 0.706 -> 0.438) but
    # localizes better there.
    map_size: int = 448
    tiling: str = "auto"  # auto: tile frames whose short side > 2 x input size; on; off
    tile_size: int = 448
    tile_overlap: int = 64
    # description score = (1-w) global cosine + w max local cosine; 0 for v1 (the blend lowered its
    # validation top-1 at every weight tried, see BENCHMARKS.md)
    local_weight: float = 0.0
    flips: str = "none"  # test-time flip averaging: none, h, hv
    # Coarse-to-fine zoom of the localization map (models/zoom.py): the map's top zoom_windows maxima
    # cropped (zoom_window frame px), scored again at zoom_input px, the window with the highest
    # zoom_pick ("prob", "max", "agree": prob among windows whose crop ranks the label first, "rise":
    # prob among windows where it beats the whole frame's, "auto": "agree" for a window covering at
    # least a quarter of the frame, or of the roi's box, else "prob"; models.zoom.PICKS) gives peak
    # and region. 0 = off.
    # One extra forward per window.
    # Default 1 x 176 px at 448, "auto": on validation (seeds 0 / 1) 224-px frames 0.79/0.78 ->
    # 0.85/0.83 with the true/wrong-text ratio 3.2x/3.5x -> 3.1x/3.2x ("prob" at 128 px, the former
    # default: 0.84/0.84 but 2.2x/2.1x), small defects on 1024-px frames 0.20/0.17 -> 0.33/0.35
    # (BENCHMARKS.md, "zoom pick auto").
    zoom_windows: int = 1
    zoom_window: int = 176
    zoom_input: int = 448
    zoom_pick: str = "auto"
    caption_templates: tuple[str, ...] = ()  # e.g. ("close-up of {}",): averaged with the plain description
    # The example probe's prior shift toward the plant's decided label mix (inspector/frame/example_probe.py).
    # It raises accuracy where the mix is steady, but where defects are rare it moves borderline parts
    # toward "ok": a plant that would rather review more parts than pass a defect sets it false.
    example_prior: bool = True
    roi: CameraRoi = field(default_factory=CameraRoi)  # every camera without its own
    cameras: tuple[tuple[str, CameraRoi], ...] = ()  # per source id

    def roi_for(self, source_id: str) -> CameraRoi:
        return dict(self.cameras).get(source_id, self.roi)


def _rects(value: Any, where: str) -> tuple[Rect, ...]:
    if not isinstance(value, list) or not all(
        isinstance(r, list) and len(r) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
        for r in value
    ):
        raise ConfigError(f"{where} must be a list of [x0, y0, x1, y1] integer rectangles")
    for r in value:
        if not (0 <= r[0] < r[2] and 0 <= r[1] < r[3]):
            raise ConfigError(f"{where}: rectangle {r} must have 0 <= x0 < x1 and 0 <= y0 < y1")
    return tuple(tuple(r) for r in value)


def _roi(section: dict[str, Any], where: str, base: Path | None) -> CameraRoi:
    mask = section.get("roi_mask", "")
    if not isinstance(mask, str):
        raise ConfigError(f"{where} roi_mask must be a path string")
    if mask and base is not None and not Path(mask).is_absolute():
        mask = str(base / mask)  # relative to the TOML file, like a person reading it expects
    return CameraRoi(_rects(section.get("roi", []), f"{where} roi"), mask)


_TYPES = {
    "input_size": int,
    "map_size": int,
    "tiling": str,
    "tile_size": int,
    "tile_overlap": int,
    "local_weight": (int, float),
    "flips": str,
    "zoom_windows": int,
    "zoom_window": int,
    "zoom_input": int,
    "zoom_pick": str,
}


def parse_scoring(section: dict[str, Any], source: str) -> ScoringSettings:
    """ScoringSettings from a parsed [scoring] table; every key and type is checked."""
    allowed = {f.name for f in fields(ScoringSettings)} - {"roi"} | {"roi", "roi_mask"}
    bad = set(section) - allowed
    if bad:
        raise ConfigError(f"{source}: unknown keys in [scoring]: {sorted(bad)}; known: {sorted(allowed)}")
    values: dict[str, Any] = {}
    for key, kind in _TYPES.items():
        if key in section:
            if not isinstance(section[key], kind) or isinstance(section[key], bool):
                raise ConfigError(f"{source}: [scoring] {key} has the wrong type ({type(section[key]).__name__})")
            values[key] = section[key]
    if "example_prior" in section:
        if not isinstance(section["example_prior"], bool):
            raise ConfigError(f"{source}: [scoring] example_prior must be true or false")
        values["example_prior"] = section["example_prior"]
    templates = section.get("caption_templates", [])
    if not isinstance(templates, list) or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates):
        raise ConfigError(f"{source}: [scoring] caption_templates must be strings with one '{{}}' each")
    cameras = section.get("cameras", {})
    if not isinstance(cameras, dict) or not all(
        isinstance(v, dict) and set(v) <= {"roi", "roi_mask"} for v in cameras.values()
    ):
        raise ConfigError(f"{source}: [scoring.cameras.<source id>] tables take roi and roi_mask only")
    base = Path(source).parent if source and not source.startswith("<") else None
    settings = ScoringSettings(
        **values,
        caption_templates=tuple(templates),
        roi=_roi(section, f"{source}: [scoring]", base),
        cameras=tuple((k, _roi(v, f"{source}: [scoring.cameras.{k}]", base)) for k, v in sorted(cameras.items())),
    )
    check_settings(settings, source)
    return settings


def check_settings(s: ScoringSettings, source: str = "[scoring]") -> None:
    """Refuse values the front end cannot use, naming the key."""
    problems = []
    for key in ("input_size", "map_size"):
        if getattr(s, key) != 0 and getattr(s, key) < 32:
            problems.append(f"{key} {getattr(s, key)} (0 for the default, else >= 32)")
    if s.tiling not in ("auto", "on", "off"):
        problems.append(f"tiling {s.tiling!r} (auto, on or off)")
    if s.tile_size < 32 or not 0 <= s.tile_overlap < s.tile_size:
        problems.append(f"tile_size {s.tile_size} / tile_overlap {s.tile_overlap} (size >= 32, 0 <= overlap < size)")
    if not 0.0 <= s.local_weight <= 1.0:
        problems.append(f"local_weight {s.local_weight} (0..1)")
    if s.flips not in ("none", "h", "hv"):
        problems.append(f"flips {s.flips!r} (none, h or hv)")
    if (
        s.zoom_windows < 0
        or s.zoom_window < 16
        or s.zoom_input < 32
        or s.zoom_pick not in ("prob", "max", "agree", "rise", "auto")
    ):
        problems.append(
            f"zoom_windows {s.zoom_windows} / zoom_window {s.zoom_window} / zoom_input {s.zoom_input} / zoom_pick "
            f"{s.zoom_pick!r} (windows >= 0, window >= 16, input >= 32, pick prob, max, agree, rise or auto)"
        )
    if problems:
        raise ConfigError(f"{source}: [scoring] " + "; ".join(problems))


def roi_mask(roi: CameraRoi, height: int, width: int) -> np.ndarray | None:
    """The ROI as a bool HxW mask for a frame of this size (None: the whole frame)."""
    if roi.empty:
        return None
    mask = np.zeros((height, width), bool)
    if roi.mask:
        image = _mask_image(roi.mask, *_stamp(roi.mask))
        if image.shape[:2] != (height, width):
            raise InspectorError(
                f"ROI mask {roi.mask} is {image.shape[1]}x{image.shape[0]}, the frame "
                f"{width}x{height}: draw the mask at the camera's resolution"
            )
        mask |= image.max(axis=2) > 0
    for x0, y0, x1, y1 in roi.rects:
        mask[y0 : min(y1, height), x0 : min(x1, width)] = True
    if not mask.any():
        raise InspectorError(f"the region of interest leaves nothing of this {width}x{height} frame to score")
    return mask


def _stamp(path: str) -> tuple[int, int]:
    """(mtime ns, size): the cache key of a mask file, so an edited mask is read again."""
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise InspectorError(f"ROI mask {path} cannot be read: {exc}") from None
    return st.st_mtime_ns, st.st_size


@lru_cache(maxsize=16)
def _mask_image(path: str, _mtime: int, _size: int) -> np.ndarray:
    # Read once per file version, not per frame (the capture path calls this for every frame).
    from inspector.frame.imageio import read_image_file

    return read_image_file(path)


@lru_cache(maxsize=16)
def _mask_sha256(path: str, _mtime: int, _size: int) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise InspectorError(f"ROI mask {path} cannot be read: {exc}") from None


def _file_sha256(path: str) -> str:
    return _mask_sha256(path, *_stamp(path))


@dataclass(frozen=True)
class ScoringConfig:
    """Exactly how a frame's scores were made; `id` is the SHA-256 of the canonical JSON."""

    model_id: str
    front_end: tuple[tuple[str, Any], ...]  # the scorer's own description (input size, tiles, flips)
    local_weight: float
    caption_templates: tuple[str, ...]
    roi: tuple[tuple[str, Any], ...]
    map_size: int = 0  # the localization maps' short side (0: the ranking's)
    good_model: str = ""  # SHA-256 of the good-part model the verdict consulted (inspector.frame.good_parts)
    # How the labels' example images entered the scores (ExampleCache.describe: method, parameters,
    # example set); empty when the library has none.
    examples: tuple[tuple[str, Any], ...] = ()
    zoom: tuple[tuple[str, Any], ...] = ()  # the maps' coarse-to-fine zoom (empty: off)

    def as_dict(self) -> dict[str, Any]:
        # good_model / examples / zoom only when used: configurations recorded before them keep their ids.
        extra: dict[str, Any] = {"good_model": self.good_model} if self.good_model else {}
        if self.examples:
            extra["examples"] = dict(self.examples)
        if self.zoom:
            extra["zoom"] = dict(self.zoom)
        return {
            **extra,
            "model_id": self.model_id,
            "front_end": json.loads(json.dumps(dict(self.front_end))),
            "local_weight": self.local_weight,
            "caption_templates": list(self.caption_templates),
            "map_size": self.map_size,
            "roi": json.loads(json.dumps(dict(self.roi))) or None,
        }

    @cached_property
    def json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, UTF-8 (what the id hashes)."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @cached_property
    def id(self) -> str:
        return hashlib.sha256(self.json.encode("utf-8")).hexdigest()


def make_config(
    model_id: str, front_end: dict[str, Any], settings: ScoringSettings, roi: CameraRoi, local: bool
) -> ScoringConfig:
    """The record for one camera; `local` False when the scorer has no local features to blend."""
    roi_part: dict[str, Any] = {}
    if roi.rects:
        roi_part["rects"] = [list(r) for r in roi.rects]
    if roi.mask:
        roi_part["mask"], roi_part["mask_sha256"] = roi.mask, _file_sha256(roi.mask)
    return ScoringConfig(
        model_id,
        tuple(sorted(front_end.items())),
        float(settings.local_weight) if local else 0.0,
        tuple(settings.caption_templates),
        tuple(sorted(roi_part.items())),
        int(settings.map_size),
        zoom=zoom_record(settings) if local else (),
    )


def zoom_record(settings: ScoringSettings) -> tuple[tuple[str, Any], ...]:
    """The zoom options as recorded in the configuration (empty when zoom is off)."""
    if settings.zoom_windows <= 0:
        return ()
    return (
        ("input", settings.zoom_input),
        ("pick", settings.zoom_pick),
        ("window", settings.zoom_window),
        ("windows", settings.zoom_windows),
    )
