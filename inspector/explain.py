"""Grad-CAM for a ranked candidate, as the core sees it (the torch side is models/explain.py).

Never called on the capture path: the caller (the operator view's worker, `inspector rank
--heatmap`) asks for it after the ranking is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.errors import InspectorError
from inspector.records import InspectionResult


@dataclass(frozen=True)
class Heatmap:
    """A Grad-CAM map at the frame's size, its overlay and the hottest region."""

    heatmap: np.ndarray  # float32 HxW in [0, 1]
    overlay: np.ndarray  # uint8 HxWx3 RGB
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (end-exclusive)
    peak: tuple[int, int]  # x, y
    target: str  # "similarity" or "contrast"
    layer: str
    label_id: str
    versus_label_id: str | None = None


def _label_embedding(station, label_id: str) -> np.ndarray:
    """The label's direction: the normalised mean of its descriptions' embeddings (what ranks it)."""
    index = station.index
    li = index.library.label_ids.index(label_id)
    start, count = int(index.starts[li]), int(index.counts[li])
    mean = index.embeddings[start : start + count].mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def explain_candidate(station, result: InspectionResult, rank: int = 1, versus_rank: int | None = None) -> Heatmap:
    """Heatmap of why the frame matches candidate #rank (and, with versus_rank, why it beats that one)."""
    explainer = getattr(station, "explainer", None)
    if explainer is None:
        raise InspectorError("this station's model cannot explain its rankings (no Grad-CAM for it)")
    candidates = result.ranking.candidates
    if not 1 <= rank <= len(candidates) or (versus_rank is not None and not 1 <= versus_rank <= len(candidates)):
        raise InspectorError(f"candidate ranks run from 1 to {len(candidates)}")
    label = candidates[rank - 1].label_id
    versus = candidates[versus_rank - 1].label_id if versus_rank is not None else None
    from inspector.training import model_errors

    with model_errors():
        e = explainer.explain(
            result.frame.rgb, _label_embedding(station, label),
            None if versus is None else _label_embedding(station, versus),
        )
    return Heatmap(e.heatmap, e.overlay, e.bbox, e.peak, e.target, e.layer, label, versus)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (refuses to overwrite nothing: plain write)."""
    from PIL import Image

    Image.fromarray(rgb).save(Path(path), format="PNG")
