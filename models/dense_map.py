"""The frame front end: the image tower run on the frame as delivered, at a chosen input size.

For a tower that pools globally and then projects linearly (the default EfficientNet tower), the
projection commutes with the pooling, so one forward gives both the global embedding (the mean of
the projected feature map, exactly what ``encode_image`` returns) and a projected feature per
location. Those local features keep a small defect's evidence that the mean averages away, and
they give the localization map without a backward pass (see models/explain.py).

Views: the whole frame resized so its short side is the input size (no crop: the tower is fully
convolutional), plus, for large frames, overlapping native-resolution tiles (models/tiling.py).
Pixels outside the region of interest are set to the normalisation mean (zero input), and
locations that see none of it are dropped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from open_clip.timm_model import TimmModel

from models.fused import fused_for_inference
from models.tiling import (
    Box,
    TileSpec,
    cell_boxes,
    resized_shape,
    tile_boxes,
    wants_tiles,
)
from models.trunk_features import DEFAULT_STAGES, DEFAULT_STATS, UnsupportedTower, capture, pooled_stats, stages
from models.trunk_features import spec as stage_spec

CAM_KINDS = ("gradcam", "softmax", "similarity", "pixel-softmax")
FLIPS = {"none": ((),), "h": ((), (3,)), "hv": ((), (3,), (2,))}  # torch dims flipped per extra pass


@dataclass(frozen=True)
class FrontEnd:
    """How a frame reaches the image tower (each field is part of the scoring configuration)."""

    input_size: int = 448  # short side of the whole-frame view, px
    tiles: TileSpec = field(default_factory=TileSpec)
    flips: str = "none"  # test-time flip averaging: "none", "h" (identity + h-flip), "hv" (+ v-flip)

    def __post_init__(self) -> None:
        if self.input_size < 32:
            raise ValueError(f"input size must be >= 32 px, got {self.input_size}")
        if self.flips not in FLIPS:
            raise ValueError(f"flips must be one of {sorted(FLIPS)}, got {self.flips!r}")


@dataclass
class View:
    """One forward: the frame box it covers, its projected feature map [D, h, w] and mean [D]."""

    box: Box
    dense: np.ndarray
    mean: np.ndarray
    mid: np.ndarray | None = None  # pooled mid-level stage statistics (models.trunk_features) of this view


@dataclass
class FrameFeatures:
    """A frame as the ranking sees it: unit global embedding [D], unit local features [K, D] and the
    frame box each local feature stands for; `views` keep the raw maps for localization."""

    embedding: np.ndarray
    local: np.ndarray
    local_boxes: list[Box]
    views: list[View]
    tiled: bool
    # The whole-frame view's pooled mid-level statistics [F], read off the same forward (no second
    # one); None for towers without listed stages.
    mid: np.ndarray | None = None
    mid_spec: str = ""  # which stages and statistics `mid` holds (models.trunk_features.spec)


def supports_dense(visual: torch.nn.Module) -> bool:
    """Whether the tower is global average pooling then a bias-free linear projection (so the
    projected map's mean is the embedding, and Grad-CAM is a function of that map)."""
    if not isinstance(visual, TimmModel):
        return False
    trunk, head = visual.trunk, visual.head
    pooled = getattr(getattr(trunk, "global_pool", None), "pool_type", None) == "avg"
    proj = getattr(head, "proj", None)
    linear = isinstance(proj, torch.nn.Linear) and proj.bias is None
    only = all(name in ("drop", "proj") for name, _ in head.named_children())
    return pooled and linear and only and hasattr(trunk, "forward_features")


def roi_box(mask: np.ndarray | None, height: int, width: int) -> Box:
    """Bounding box of the ROI mask (the whole frame without one)."""
    if mask is None:
        return (0, 0, width, height)
    if mask.shape != (height, width):
        raise ValueError(f"the region-of-interest mask is {mask.shape[1]}x{mask.shape[0]}, the frame {width}x{height}")
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("the region-of-interest mask is empty: nothing of the frame would be scored")
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


class DenseEncoder:
    """Runs a dense-capable image tower on frames; numpy in, numpy out."""

    def __init__(
        self,
        visual: torch.nn.Module,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        frontend: FrontEnd,
        batch_size: int | None = None,
        channels_last: bool | None = None,
        fuse: bool = True,
    ) -> None:
        if not supports_dense(visual):
            raise ValueError(f"the image tower {type(visual).__name__} is not global-average-pool + linear projection")
        # On a CPU one view per forward is fastest (batch 8 was 1.9x slower per 448-px view on the
        # 2-core development machine: the activations stop fitting in cache); a GPU wants batches.
        if batch_size is None:
            batch_size = 1 if device.type == "cpu" else 8
        # `fuse`: BatchNorms folded into their convolutions (an inference copy, models/fused.py).
        self.visual = fused_for_inference(visual) if fuse else visual
        self.device, self.frontend, self.batch_size = device, frontend, batch_size
        # channels_last input: depthwise convs ran ~1.3-1.6x faster on this CPU, same outputs (weights untouched).
        self.channels_last = device.type == "cpu" if channels_last is None else channels_last
        self._mean = np.asarray(mean, np.float32) * 255.0
        self._std = np.asarray(std, np.float32) * 255.0
        try:  # the mid-level statistics ride on the ranking's forward (hooks); skipped for other trunks
            stages(visual)
            self.mid_stages: tuple[int, ...] | None = DEFAULT_STAGES
        except UnsupportedTower:
            self.mid_stages = None

    def _tensor(self, crop: np.ndarray, keep: np.ndarray | None, shape: tuple[int, int]) -> torch.Tensor:
        h, w = shape
        if crop.shape[:2] != (h, w):
            crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if h < crop.shape[0] else cv2.INTER_CUBIC)
        x = (crop.astype(np.float32) - self._mean) / self._std
        if keep is not None:  # outside the ROI: the normalisation mean, i.e. zero input
            if keep.shape != (h, w):
                keep = cv2.resize(keep.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            x[~keep] = 0.0
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> projected feature maps [B, D, h, w] in fp32, flips averaged."""
        return self._forward_mid(batch, False)[0]

    def _forward_mid(self, batch: torch.Tensor, mid: bool) -> tuple[torch.Tensor, np.ndarray | None]:
        """The projected maps and, with `mid`, from the same passes, the pooled mid-level statistics
        [B, F] (flips averaged; None without `mid` or when the trunk lists no stages)."""
        passes, mids = [], []
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            maps = stack.enter_context(capture(self.visual, self.mid_stages)) if mid and self.mid_stages else None
            for dims in FLIPS[self.frontend.flips]:
                x = batch.flip(dims) if dims else batch
                x = x.to(self.device)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                feats = self.visual.trunk.forward_features(x).float()
                dense = torch.einsum("bchw,dc->bdhw", feats, self.visual.head.proj.weight.float())
                passes.append(dense.flip(dims) if dims else dense)
                if maps is not None:
                    mids.append(pooled_stats(maps, DEFAULT_STATS))
                    maps.clear()
        return torch.stack(passes).mean(0), (np.mean(mids, axis=0) if mids else None)

    def _run(self, crops: list[tuple[Box, np.ndarray, np.ndarray | None, tuple[int, int]]], mid: bool) -> list[View]:
        views = []
        for start in range(0, len(crops), self.batch_size):
            part = crops[start : start + self.batch_size]
            # Same-shaped inputs share a batch; the whole-frame view usually differs from the tiles.
            shapes = {c[3] for c in part}
            for shape in shapes:
                group = [c for c in part if c[3] == shape]
                out, stats = self._forward_mid(torch.stack([self._tensor(c[1], c[2], shape) for c in group]), mid)
                dense = out.cpu().numpy()
                mids = [None] * len(group) if stats is None else list(stats)
                views += [View(c[0], d, d.mean(axis=(1, 2)), m) for c, d, m in zip(group, dense, mids)]
        return views

    def encode(self, rgb: np.ndarray, roi: np.ndarray | None = None, mid: bool = False) -> FrameFeatures:
        """Global and local features of one uint8 HxWx3 frame (ROI: bool HxW, True = scored; `mid`:
        the whole-frame view's mid-level statistics too, where the trunk lists its stages)."""
        height, width = rgb.shape[:2]
        rx0, ry0, rx1, ry1 = region = roi_box(roi, height, width)
        size = self.frontend.input_size

        def crop(box: Box) -> tuple[np.ndarray, np.ndarray | None]:
            x0, y0, x1, y1 = box
            return rgb[y0:y1, x0:x1], None if roi is None else roi[y0:y1, x0:x1]

        whole = crop(region)
        crops = [(region, *whole, resized_shape(ry1 - ry0, rx1 - rx0, size))]
        tiled = wants_tiles(ry1 - ry0, rx1 - rx0, size, self.frontend.tiles)
        if tiled:
            spec = self.frontend.tiles
            for x0, y0, x1, y1 in tile_boxes(ry1 - ry0, rx1 - rx0, spec.size, spec.overlap):
                box = (x0 + rx0, y0 + ry0, x1 + rx0, y1 + ry0)
                piece = crop(box)
                if piece[1] is not None and not piece[1].any():
                    continue  # a tile that sees nothing of the ROI
                shape = resized_shape(y1 - y0, x1 - x0, size) if spec.size != size else (y1 - y0, x1 - x0)
                crops.append((box, *piece, shape))
        views = self._run(crops, mid)
        global_view = views[0]
        local, boxes = [], []
        for view in views:
            _, rows, cols = view.dense.shape
            cells = cell_boxes(view.box, rows, cols)
            flat = view.dense.reshape(view.dense.shape[0], -1).T
            for k, box in enumerate(cells):
                if roi is None or roi[box[1] : box[3], box[0] : box[2]].any():
                    local.append(flat[k])
                    boxes.append(box)
        local_arr = np.stack(local).astype(np.float32)
        local_arr /= np.maximum(np.linalg.norm(local_arr, axis=1, keepdims=True), 1e-12)
        emb = global_view.mean / max(float(np.linalg.norm(global_view.mean)), 1e-12)
        mid_spec = stage_spec(self.mid_stages, DEFAULT_STATS) if global_view.mid is not None else ""
        return FrameFeatures(emb.astype(np.float32), local_arr, boxes, views, tiled, global_view.mid, mid_spec)


def _view_direction(
    unit_mean: np.ndarray,
    direction: np.ndarray,
    versus: np.ndarray | None,
    kind: str,
    library: np.ndarray | None,
    logit_scale: float,
) -> np.ndarray:
    """d target / d e (up to a positive constant shared by all views) for one view's unit mean e^."""
    if kind == "similarity":  # plain dense similarity t . P_ij (not Grad-CAM: no -cos e^ term); benches only
        return direction - (versus if versus is not None else 0.0)
    if kind == "softmax":
        # Target p_c = softmax_k(s t_k . e^)[c]: d p_c / d e^ = s p_c (t_c - sum_k p_k t_k), a per-view
        # weight p_c times a direction that subtracts what the view looks like among the library's labels.
        logits = logit_scale * (library @ unit_mean)
        top = float(logits.max())
        denom = float(np.exp(logits - top).sum())
        mean_text = (np.exp(logits - top) / denom) @ library

        def prob(t: np.ndarray) -> float:
            return float(np.exp(logit_scale * float(t @ unit_mean) - top) / denom)

        grad = prob(direction) * (direction - mean_text)
        if versus is not None:  # d (p_c - p_v): why c and not v, in probability
            grad = grad - prob(versus) * (versus - mean_text)
    else:
        grad = direction - (versus if versus is not None else 0.0)
    return grad - float(unit_mean @ grad) * unit_mean  # through e^ = e / |e|


def cam_map(
    features: FrameFeatures,
    direction: np.ndarray,
    versus: np.ndarray | None,
    height: int,
    width: int,
    kind: str = "gradcam",
    library: np.ndarray | None = None,
    logit_scale: float = 1.0,
) -> np.ndarray:
    """Grad-CAM of the frame's score for a description, at the frame's size, computed from the maps.

    kind "gradcam": target cos(image, text) (or cos1 - cos2). With e = mean_ij(P_ij) the pre-norm
    embedding, d cos / d P_ij = g / (h w), g = (t - cos e^) / |e|; Grad-CAM's channel weights are the
    spatial mean of the gradient at the feature layer, which through the linear projection makes the
    map relu(g . P_ij) up to a positive constant.
    kind "softmax": target the softmax probability of the description among `library` (rows: unit
    label embeddings, the description one of them) at `logit_scale`, as pytorch-grad-cam's
    ClassifierOutputSoftmaxTarget on the logits; same algebra with g = p_c (t_c - sum_k p_k t_k),
    projected and divided by |e| (tests/models/test_cam_softmax.py checks it against pytorch-grad-cam).
    kind "pixel-softmax": each location's own softmax over the library (dense classification; not
    Grad-CAM, benches only). kind "similarity": t . P_ij (not Grad-CAM; benches only).
    Each view (whole frame or tile) is mapped into frame pixels; overlaps keep the stronger response.
    """
    if kind not in CAM_KINDS:
        raise ValueError(f"map kind must be one of {CAM_KINDS}, got {kind!r}")
    if kind in ("softmax", "pixel-softmax") and (library is None or len(library) < 2):
        raise ValueError(f"a {kind} map needs the library's label embeddings (at least 2)")
    out = np.zeros((height, width), np.float32)
    views = features.views[1:] if features.tiled else features.views[:1]
    for view in views:
        if kind == "pixel-softmax":
            flat = view.dense.reshape(view.dense.shape[0], -1)
            flat = flat / np.maximum(np.linalg.norm(flat, axis=0, keepdims=True), 1e-12)
            logits = logit_scale * (library @ flat)
            cam = np.exp(logit_scale * (direction @ flat) - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
            cam = cam.reshape(view.dense.shape[1:]).astype(np.float32)
        else:
            norm = max(float(np.linalg.norm(view.mean)), 1e-12)
            g = _view_direction(view.mean / norm, direction, versus, kind, library, logit_scale)
            cam = np.maximum(np.einsum("d,dhw->hw", g / norm, view.dense), 0.0).astype(np.float32)
        x0, y0, x1, y1 = view.box
        up = cv2.resize(cam, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        np.maximum(out[y0:y1, x0:x1], up, out=out[y0:y1, x0:x1])
    return out


def unit(vector: np.ndarray) -> np.ndarray:
    """A float32 unit vector (zero stays zero)."""
    v = np.asarray(vector, np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def cell_px(features: FrameFeatures) -> float:
    """Frame pixels per feature cell in the views the map uses (tiles when tiled, else the whole frame)."""
    view = features.views[1] if features.tiled else features.views[0]
    return (view.box[2] - view.box[0]) / view.dense.shape[2]
