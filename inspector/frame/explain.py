"""Grad-CAM for a ranked candidate, as the core sees it (the torch side is models/explain.py).

The target is the candidate's softmax probability among the library's defect labels (see
_softmax_library); for the default tower the map comes from the front end's projected feature maps
(same map as Grad-CAM, at the scoring resolution and across tiles, smoothed by half a feature cell
before the peak); other towers go through pytorch-grad-cam with the same target.

Never called on the capture path: the caller (the operator view's worker, `inspector rank
--heatmap`) asks for it after the ranking is shown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.errors import InspectorError
from inspector.frame.records import InspectionResult


@dataclass(frozen=True)
class Heatmap:
    """A Grad-CAM map at the frame's size, its overlay and the hottest region."""

    heatmap: np.ndarray  # float32 HxW in [0, 1]
    overlay: np.ndarray  # uint8 HxWx3 RGB
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (end-exclusive)
    peak: tuple[int, int]  # x, y
    target: str  # "softmax" / "softmax-contrast" (or "similarity" / "contrast" with a single-label softmax set)
    layer: str
    label_id: str
    versus_label_id: str | None = None


def _label_embedding(index, label_id: str) -> np.ndarray:
    """The label's direction: the normalised mean of its descriptions' embeddings (what ranks it)."""
    li = index.library.label_ids.index(label_id)
    start, count = int(index.starts[li]), int(index.counts[li])
    mean = index.embeddings[start : start + count].mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def explain_candidate(station, result: InspectionResult, rank: int = 1, versus_rank: int | None = None) -> Heatmap:
    """Heatmap of why the frame matches candidate #rank (and, with versus_rank, why it beats that one)."""
    model = station.model  # one snapshot: the station may switch model while this runs
    if model.explainer is None:
        raise InspectorError("this station's model cannot explain its rankings (no Grad-CAM for it)")
    if not model.ranked(result.ranking.model_id):
        raise InspectorError(
            f"this part was ranked by model {result.ranking.model_id[:12]}, the station now runs"
            f" {model.model_id[:12]}: a heatmap from another model would not explain this ranking"
        )
    candidates = result.ranking.candidates
    if not 1 <= rank <= len(candidates) or (versus_rank is not None and not 1 <= versus_rank <= len(candidates)):
        raise InspectorError(f"candidate ranks run from 1 to {len(candidates)}")
    label = candidates[rank - 1].label_id
    versus = candidates[versus_rank - 1].label_id if versus_rank is not None else None
    return _explain(model, model.index, result.frame.rgb, label, versus, _settings(station), result.frame.source_id)


def localize_candidates(station, result: InspectionResult) -> list[Heatmap]:
    """One map per ranked candidate (same order), from ONE forward of the front end where the tower
    allows it (Grad-CAM per candidate otherwise)."""
    model = station.model
    if not model.ranked(result.ranking.model_id):
        raise InspectorError(
            f"this part was ranked by model {result.ranking.model_id[:12]}, the station now runs"
            f" {model.model_id[:12]}: its maps would not explain this ranking"
        )
    features = _dense_features(model, result.frame.rgb, _settings(station), result.frame.source_id)
    crops: dict = {}  # zoom windows shared by candidates whose maps peak at the same place: one forward
    return [
        _explain(
            model,
            model.index,
            result.frame.rgb,
            c.label_id,
            None,
            _settings(station),
            result.frame.source_id,
            features,
            crops,
        )
        for c in result.ranking.candidates
    ]


def explain_record(station, record, rank: int = 1, versus_rank: int | None = None) -> Heatmap:
    """Heatmap of a LOGGED inspection (an inspector.store.audit.InspectionRecord) for its candidate #rank.

    Only with the model that ranked it and the library version it was ranked against: a map from
    another model would explain a ranking the operator never saw, which is worse than none in an audit.
    An earlier model (before a promotion) is loaded again from the registry (inspector.past_models:
    seconds on first use, then cached; call this off the GUI thread). The stored image is the
    lossless PNG of the very frame that was ranked.
    """
    from inspector.store.decision_log import read_evidence_image

    if record.image_path is None:
        raise InspectorError("no image was stored with this inspection, so there is nothing to explain")
    model = station.model  # one snapshot: the station may switch model while this runs
    if not model.ranked(record.model_id):  # another model ranked it (a bound legacy id is this one)
        from inspector.past_models import past_models

        model = past_models(station).get(station, record.model_id, record.library_version)
    if model.explainer is None:
        raise InspectorError("this station's model cannot explain its rankings (no Grad-CAM for it)")
    candidates = record.candidates
    if not 1 <= rank <= len(candidates) or (versus_rank is not None and not 1 <= versus_rank <= len(candidates)):
        raise InspectorError(f"candidate ranks run from 1 to {len(candidates)}")
    index = model.index
    if index.library_version != record.library_version:
        if station.log is None:
            raise InspectorError(f"library v{record.library_version} is not available without the station database")
        from inspector.store.decision_log import DecisionLog

        version = record.library_version
        # Audit views call this from a worker thread, and a sqlite connection belongs to the thread
        # that opened it: read the old version (and cache its embeddings) through one of our own.
        with DecisionLog.open(station.log.sdb.path, create=False) as log:
            index = model.compile(log.library.library(version), version, log)
    label = candidates[rank - 1].label_id
    versus = candidates[versus_rank - 1].label_id if versus_rank is not None else None
    return _explain(
        model,
        index,
        read_evidence_image(record.image_path),
        label,
        versus,
        _settings(station),
        getattr(record, "source_id", "") or "",
    )


def _settings(station):
    from inspector.frame.scoring import ScoringSettings

    return getattr(station, "scoring", None) or ScoringSettings()


def _dense_features(model, rgb: np.ndarray, settings, source_id: str):
    """The front end's features when the scorer has gradient-free maps, else None (Grad-CAM)."""
    if not getattr(model.scorer, "dense", False):
        return None
    from dataclasses import replace

    from inspector.frame.scorer import score_frame

    # Maps run at map_size (finer than the ranking's forward for v1); same tiles and ROI.
    return score_frame(
        model.scorer,
        rgb,
        replace(settings, input_size=settings.map_size or settings.input_size),
        source_id,
        for_maps=True,
    ).features


def _softmax_library(index, label: str, versus: str | None) -> np.ndarray | None:
    """The labels the Grad-CAM target's softmax runs over: the library's defect labels plus the ones
    explained, in library order; None (plain cosine target) when that leaves fewer than two.

    "ok" labels are left out unless explained: with "ok" among them every defect label's map points
    at whatever is not ok (validation: wrong-text hits 0.39 vs 0.24 without), not at its own defect.
    """
    library = index.library
    ok = set(library.ok_label_ids)
    ids = [i for i in library.label_ids if i not in ok or i in (label, versus)]
    if len(ids) < 2:
        return None
    return np.stack([_label_embedding(index, i) for i in ids])


def _explain(
    model,
    index,
    rgb: np.ndarray,
    label: str,
    versus: str | None,
    settings,
    source_id: str = "",
    features=None,
    crops: dict | None = None,
) -> Heatmap:
    from inspector.errors import model_errors

    text = _label_embedding(index, label)
    other = None if versus is None else _label_embedding(index, versus)
    library = _softmax_library(index, label, versus)
    scale = float(getattr(model.scorer, "logit_scale", 1.0))
    features = features if features is not None else _dense_features(model, rgb, settings, source_id)
    with model_errors():
        if features is not None:
            from models.explain import dense_explanation

            e = dense_explanation(rgb, features, text, other, library=library, logit_scale=scale, blur=True)
            if settings.zoom_windows > 0 and other is None and library is not None:
                e = _zoomed(model, e, rgb, text, library, scale, settings, source_id, crops, features.embedding)
        else:
            if model.explainer is None:
                raise InspectorError("this station's model cannot explain its rankings (no Grad-CAM for it)")
            e = model.explainer.explain(rgb, text, other, library=library, logit_scale=scale)
    return Heatmap(e.heatmap, e.overlay, e.bbox, e.peak, e.target, e.layer, label, versus)


def _zoomed(
    model,
    e,
    rgb: np.ndarray,
    text: np.ndarray,
    library: np.ndarray,
    scale: float,
    settings,
    source_id: str,
    crops=None,
    frame_embedding: np.ndarray | None = None,
):
    """The dense explanation refined by the coarse-to-fine zoom ([scoring] zoom_*; models/zoom.py):
    the map's top maxima looked at again, closer, each crop one forward without tiles."""
    from inspector.frame.scoring import roi_mask
    from models.dense_map import FrontEnd
    from models.tiling import TileSpec
    from models.zoom import ZoomSpec, zoom, zoomed_explanation

    spec = ZoomSpec(settings.zoom_windows, settings.zoom_window, settings.zoom_input, settings.zoom_pick)
    front = FrontEnd(settings.zoom_input, TileSpec("off"), settings.flips)
    roi = roi_mask(settings.roi_for(source_id), *rgb.shape[:2])

    crops = {} if crops is None else crops

    def encode(crop: np.ndarray, keep: np.ndarray | None):
        key = (crop.shape, hash(crop.tobytes()), None if keep is None else hash(keep.tobytes()))
        if key not in crops:
            crops[key] = model.scorer.encode_frame(crop, keep, frontend=front)
        return crops[key]

    z = zoom(encode, rgb, e.heatmap, text, library, scale, spec, roi, frame_embedding)
    return e if z is None else zoomed_explanation(e, rgb, z, spec)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as a new PNG file: an existing file or link there is never replaced."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    try:  # O_EXCL: also refuses a dangling symlink, which a plain open would follow
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise InspectorError(f"{path} exists; choose a new file name (never overwritten)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
