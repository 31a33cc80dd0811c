"""Grad-CAM for a description ("why this frame matches it") and for "#1 and not #2".

One forward and one backward pass of the image tower in fp32, on request only: Grad-CAM must
never run on the capture path (the caller's job). Heatmaps come back at the frame's size; parts
of the frame the model never saw (cut off by the centre crop) get zero heat.

Towers that pool globally and then project linearly (the default EfficientNet tower) get the same
map from the front end's projected feature maps (`dense_explanation`, no backward pass, at the
front end's resolution and across tiles); pytorch-grad-cam stays the path for every other tower.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.timm_model import TimmModel
from open_clip.transformer import VisionTransformer
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.utils.image import show_cam_on_image

from models.cam_targets import ContrastTarget, SimilarityTarget, SoftmaxTarget, TokensToGrid
from models.dense_map import FrameFeatures, cam_map, cell_px, unit
from models.errors import ModelError
from models.factory import ModelBundle

# Sigma of the Gaussian that smooths a dense map before its peak, in feature cells: the bilinear
# upsampling of a 14x14 map puts the peak on one cell's centre; half a cell of smoothing lets the
# neighbours vote (validation seeds 0/1: 0.69/0.71 -> 0.79/0.78 hits with the softmax target).
PEAK_BLUR_CELLS = 0.5
BBOX_THRESHOLD = 0.5  # of the peak: the hottest region is the peak's connected component above it
OVERLAY_IMAGE_WEIGHT = 0.5  # share of the frame in the overlay; the rest is the colour map
# One CAM at a time in the process: hooks and frozen flags live on models that explainers may share.
_CAM_LOCK = threading.Lock()


@dataclass(frozen=True)
class Explanation:
    """A Grad-CAM heatmap at the frame's size, its overlay, hottest region and provenance."""

    heatmap: np.ndarray  # float32 HxW in [0, 1]
    overlay: np.ndarray  # uint8 HxWx3 RGB
    bbox: tuple[int, int, int, int]  # (x0, y0, x1, y1), end-exclusive
    peak: tuple[int, int]  # (x, y)
    target: str  # "similarity" or "contrast" (cosine targets), "softmax" or "softmax-contrast"
    layer: str  # e.g. "visual.trunk.bn2"

    def __post_init__(self) -> None:
        h, w = self.heatmap.shape[:2]
        if self.heatmap.dtype != np.float32 or self.heatmap.ndim != 2:
            raise ValueError(f"heatmap must be float32 HxW, got {self.heatmap.dtype} {self.heatmap.shape}")
        if self.overlay.dtype != np.uint8 or self.overlay.shape != (h, w, 3):
            raise ValueError(f"overlay must be uint8 {(h, w, 3)}, got {self.overlay.dtype} {self.overlay.shape}")
        if not (np.isfinite(self.heatmap).all() and self.heatmap.min() >= 0.0 and self.heatmap.max() <= 1.0):
            raise ValueError("heatmap values must be finite and in [0, 1]")
        x0, y0, x1, y1 = self.bbox
        px, py = self.peak
        if not (0 <= x0 <= px < x1 <= w and 0 <= y0 <= py < y1 <= h):
            raise ValueError(f"bbox {self.bbox} must lie inside the {w}x{h} frame and contain the peak {self.peak}")


class _ImageEmbedding(torch.nn.Module):
    """The 'model' Grad-CAM sees: image -> unit image embedding [B, D] in fp32."""

    def __init__(self, visual: torch.nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(x).float(), dim=-1)

    def zero_grad(self, set_to_none: bool = True) -> None:
        # BaseCAM calls this before backward; the tower's parameters are frozen during a CAM, so
        # there is nothing of ours to clear, and clearing would drop gradients a caller holds.
        return None


def _default_layer(visual: torch.nn.Module) -> tuple[str | None, Callable | None]:
    """(target layer name relative to the CLIP model, reshape transform) for a known tower type."""
    if isinstance(visual, VisionTransformer):
        last = len(visual.transformer.resblocks) - 1
        reshape = TokensToGrid(tuple(visual.grid_size), getattr(visual.transformer, "batch_first", True))
        return f"visual.transformer.resblocks.{last}.ln_1", reshape
    if isinstance(visual, ModifiedResNet):
        return "visual.layer4", None
    if isinstance(visual, TimmModel):
        trunk = visual.trunk
        if hasattr(trunk, "patch_embed") and hasattr(trunk, "blocks"):  # timm ViT family
            reshape = TokensToGrid(tuple(trunk.patch_embed.grid_size))
            return f"visual.trunk.blocks.{len(trunk.blocks) - 1}.norm1", reshape
        if hasattr(trunk, "conv_head") and hasattr(trunk, "bn2"):
            return "visual.trunk.bn2", None  # EfficientNet: the 1x1 head conv + BN/act is the last map
        info = getattr(trunk, "feature_info", None)
        if info:
            return f"visual.trunk.{info[-1]['module']}", None  # ResNet layer4, ConvNeXt stages.3, ...
        return None, None
    return None, None


def _frame_to_input(frame_hw: tuple[int, int], input_hw: tuple[int, int], resize_mode: str) -> np.ndarray:
    """2x3 affine taking frame pixel indices to input pixel indices, as open_clip's transform does."""
    (fh, fw), (ih, iw) = frame_hw, input_hw
    if resize_mode == "shortest":  # resize so the frame covers the input, then centre crop
        sx = sy = max(ih / fh, iw / fw)
    elif resize_mode == "longest":  # resize so the frame fits inside, then centre pad
        sx = sy = min(ih / fh, iw / fw)
    elif resize_mode == "squash":
        sx, sy = iw / fw, ih / fh
    else:
        raise ModelError(f"unknown preprocess resize_mode {resize_mode!r}: expected shortest, longest or squash")
    tx, ty = (iw - fw * sx) / 2, (ih - fh * sy) / 2
    # Pixel centres: index j sits at j + 0.5 in edge coordinates on both sides.
    return np.array([[sx, 0, tx + 0.5 * sx - 0.5], [0, sy, ty + 0.5 * sy - 0.5]], dtype=np.float64)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(
            f"image must be a uint8 numpy array (HxWx3 RGB or HxW gray), got {type(image).__name__} "
            f"{getattr(image, 'dtype', '')}"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image has shape {image.shape}, expected a non-empty HxWx3 (RGB) or HxW (gray) array")
    return np.ascontiguousarray(image)


def _hottest_region(heatmap: np.ndarray) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """(peak (x, y), bbox of the peak's connected component above BBOX_THRESHOLD of the peak)."""
    top = heatmap.max()
    py, px = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    # Upsampled coarse maps have flat tops; argmax alone would pick the plateau's top-left corner.
    # Take the plateau pixel nearest the plateau's centroid instead.
    _, labels, _, centroids = cv2.connectedComponentsWithStats(
        (heatmap >= top * (1 - 1e-4)).astype(np.uint8), connectivity=8
    )
    ys, xs = np.nonzero(labels == labels[py, px])
    cx, cy = centroids[labels[py, px]]
    nearest = int(np.argmin((xs - cx) ** 2 + (ys - cy) ** 2))
    px, py = int(xs[nearest]), int(ys[nearest])
    hot = (heatmap >= BBOX_THRESHOLD * top).astype(np.uint8)  # an all-zero map: the whole frame
    _, labels, stats, _ = cv2.connectedComponentsWithStats(hot, connectivity=8)
    x, y, w, h = (int(v) for v in stats[labels[py, px], :4])
    return (int(px), int(py)), (x, y, x + w, y + h)


@contextlib.contextmanager
def _cam_state(visual: torch.nn.Module) -> Iterator[None]:
    """Freeze the tower's parameters for the call; restore requires_grad and train/eval flags after."""
    modes = [(m, m.training) for m in visual.modules()]
    flags = [(p, p.requires_grad) for p in visual.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)  # gradients flow from the target layer up, never into weights
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in modes:
            m.training = training  # set directly: train() would recurse and overwrite children


class _OwnThreadHooks(ActivationsAndGradients):
    """Grad-CAM's activation/gradient hooks, deaf to forwards from other threads.

    The capture loop may score with the same model while a heatmap is computed; its forwards pass
    through the hooked layer too and must neither be recorded nor altered.
    """

    def __init__(self, model: torch.nn.Module, layer: torch.nn.Module, reshape: Callable | None) -> None:
        self.owner = threading.get_ident()
        # Registered first, so Grad-CAM's hooks below see (and hook) the graph's new start.
        self.start = layer.register_forward_hook(self._start_graph)
        super().__init__(model, [layer], reshape, detach=True)
        self.handles.append(self.start)

    def _start_graph(self, _module: torch.nn.Module, _inputs: object, output: object) -> object:
        # The autograd graph starts at the target layer, so backward stops there (not at the pixels).
        if threading.get_ident() != self.owner:
            return None
        if not isinstance(output, torch.Tensor):
            raise ModelError(f"the target layer returns {type(output).__name__}, not a tensor: choose another layer")
        return output.detach().requires_grad_(True)

    def save_activation(self, module: torch.nn.Module, input: object, output: torch.Tensor) -> None:
        if threading.get_ident() == self.owner:
            super().save_activation(module, input, output)

    def save_gradient(self, module: torch.nn.Module, input: object, output: torch.Tensor) -> None:
        if threading.get_ident() == self.owner:
            super().save_gradient(module, input, output)


class Explainer:
    """Grad-CAM heatmaps for a ModelBundle's image tower; the layer is picked per tower type."""

    def __init__(self, bundle: ModelBundle, target_layer: str | None = None) -> None:
        self._bundle = bundle
        visual = bundle.model.visual
        default, self._reshape = _default_layer(visual)
        self.layer: str = target_layer or default or ""
        if not self.layer:
            raise ModelError(
                f"no default Grad-CAM layer for an image tower of type {type(visual).__name__}: supported are "
                "open_clip VisionTransformer and ModifiedResNet, and timm CNN/ViT trunks; pass target_layer="
                "'visual.<module path>' naming a layer that outputs a [B, C, H, W] feature map"
            )
        try:
            self._layer_module = bundle.model.get_submodule(self.layer)
        except AttributeError as exc:
            raise ModelError(f"target layer {self.layer!r} does not exist in the model ({exc})") from exc
        self._wrapper = _ImageEmbedding(visual)
        self._embed_dim = int((bundle.model_cfg or {}).get("embed_dim", 0))  # 0: unknown, not checked

    def _vector(self, value: np.ndarray, what: str) -> torch.Tensor:
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim != 1 or (self._embed_dim and arr.shape[0] != self._embed_dim):
            raise ModelError(
                f"{what} must be a 1-D embedding of length {self._embed_dim or 'embed_dim'}, got shape {arr.shape}"
            )
        return torch.from_numpy(arr.copy())

    def _input(self, frame: np.ndarray) -> torch.Tensor:
        return self._bundle.preprocess(Image.fromarray(frame)).unsqueeze(0).to(self._bundle.device, torch.float32)

    def _cam(self, x: torch.Tensor, target: Callable) -> np.ndarray:
        """The Grad-CAM map at the model's input size, float32 [H, W] in [0, 1]."""
        visual = self._bundle.model.visual
        with _CAM_LOCK, _cam_state(visual):
            cam = GradCAM(model=self._wrapper, target_layers=[self._layer_module], reshape_transform=self._reshape)
            # Swap in thread-aware hooks (BaseCAM.forward uses this attribute) before any forward.
            cam.activations_and_grads.release()
            cam.activations_and_grads = _OwnThreadHooks(self._wrapper, self._layer_module, self._reshape)
            try:
                maps = cam(input_tensor=x, targets=[target])
                seen = len(cam.activations_and_grads.activations), len(cam.activations_and_grads.gradients)
            except (ValueError, RuntimeError) as exc:  # e.g. Grad-CAM's "Invalid activation shape"
                raise ModelError(
                    f"Grad-CAM failed at layer {self.layer!r} ({type(exc).__name__}: {exc}); a "
                    "target layer must output [B, C, H, W] feature maps (or ViT tokens) that no later "
                    "layer modifies in place"
                ) from exc
            finally:
                cam.activations_and_grads.release()
                cam.outputs = None  # drop the graph now, not when the CAM object is collected
        if seen != (1, 1):
            # A layer run twice in one forward (a shared module) would pair activations with the
            # wrong gradients: refuse, don't guess.
            raise ModelError(
                f"layer {self.layer!r} ran {seen[0]} times in one forward pass: choose a layer "
                "that runs once (pass target_layer)"
            )
        return np.asarray(maps[0], dtype=np.float32)

    def explain(
        self,
        image: np.ndarray,
        text_embedding: np.ndarray,
        versus: np.ndarray | None = None,
        library: np.ndarray | None = None,
        logit_scale: float = 1.0,
    ) -> Explanation:
        """Heatmap of sim(image, text_embedding), or of sim#1 - sim#2 when `versus` is given; with
        `library` ([K, D] label embeddings, the text and versus among its rows) of their softmax
        probabilities over the library instead (models.cam_targets.SoftmaxTarget)."""
        frame = _as_rgb(image)
        first = self._vector(text_embedding, "text_embedding")
        if library is not None:
            rows = torch.from_numpy(np.asarray(library, np.float32).copy())
            target = SoftmaxTarget(
                rows,
                _row_of(library, text_embedding),
                logit_scale,
                None if versus is None else _row_of(library, versus),
            )
        elif versus is None:
            target = SimilarityTarget(first)
        else:
            target = ContrastTarget(first, self._vector(versus, "versus"))
        x = self._input(frame)
        small = self._cam(x, target)
        resize_mode = getattr(self._bundle.model.visual, "preprocess_cfg", {}).get("resize_mode", "shortest")
        matrix = _frame_to_input(frame.shape[:2], small.shape, resize_mode)
        heat = cv2.warpAffine(
            small,
            matrix,
            (frame.shape[1], frame.shape[0]),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        # Interpolation can shave the peak: _explanation rescales to max == 1.
        heat = np.clip(np.nan_to_num(heat, nan=0.0), 0.0, None)
        return _explanation(frame, heat, versus, self.layer, library is not None)


def _row_of(library: np.ndarray, vector: np.ndarray) -> int:
    """Index of the library row that is `vector` (a softmax target explains one of its own labels)."""
    lib = np.asarray(library, np.float32)
    v = unit(vector)
    rows = lib / np.maximum(np.linalg.norm(lib, axis=1, keepdims=True), 1e-12)
    k = int(np.argmax(rows @ v))
    if float(rows[k] @ v) < 1 - 1e-4:
        raise ModelError("the explained embedding is not one of the library's labels")
    return k


DENSE_LAYER = "visual.trunk.bn2 (dense)"  # Grad-CAM's layer for this tower, computed without a backward pass


def dense_explanation(
    image: np.ndarray,
    features: FrameFeatures,
    text_embedding: np.ndarray,
    versus: np.ndarray | None = None,
    kind: str = "gradcam",
    library: np.ndarray | None = None,
    logit_scale: float = 1.0,
    blur: bool = False,
) -> Explanation:
    """Grad-CAM from a dense-capable tower's projected maps (models.dense_map.cam_map): same map as
    the autograd path up to scale (tests/models/test_dense_map.py), at the front end's resolution and
    stitched across tiles, for any number of descriptions per forward. With `library` the target is
    the softmax probability over it (kind "softmax"). `blur`: smooth the map with a Gaussian of half
    a feature cell before the peak is taken (PEAK_BLUR_CELLS; chosen on validation, BENCHMARKS.md)."""
    frame = _as_rgb(image)
    h, w = frame.shape[:2]
    if library is not None and kind == "gradcam":
        kind = "softmax"
    lib = None if library is None else np.stack([unit(row) for row in library])
    heat = cam_map(
        features, unit(text_embedding), None if versus is None else unit(versus), h, w, kind, lib, logit_scale
    )
    if blur:
        heat = cv2.GaussianBlur(heat, (0, 0), PEAK_BLUR_CELLS * cell_px(features))
    return _explanation(frame, heat, versus, DENSE_LAYER, kind == "softmax")


def _explanation(
    frame: np.ndarray, heat: np.ndarray, versus: np.ndarray | None, layer: str, softmax: bool = False
) -> Explanation:
    """A frame-sized map scaled to max 1 (NaN -> 0), its hottest region and the overlay: both paths end here."""
    heat = np.nan_to_num(heat, nan=0.0)
    if heat.max() > 0:
        heat = heat / heat.max()
    heat = heat.astype(np.float32)
    peak, bbox = _hottest_region(heat)
    overlay = show_cam_on_image(frame.astype(np.float32) / 255.0, heat, use_rgb=True, image_weight=OVERLAY_IMAGE_WEIGHT)
    return Explanation(
        heatmap=heat,
        overlay=overlay,
        bbox=bbox,
        peak=peak,
        target=("softmax" if softmax else "similarity")
        if versus is None
        else ("softmax-contrast" if softmax else "contrast"),
        layer=layer,
    )
