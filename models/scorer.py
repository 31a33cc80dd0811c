"""The model as the core sees it: numpy in, L2-normalised float32 numpy embeddings out."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models.dense_map import DenseEncoder, FrameFeatures, FrontEnd, supports_dense
from models.device import inference_dtype
from models.factory import ModelBundle, native_input_size


def _check_image(i: int, image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image {i} is a {type(image).__name__}, expected a numpy uint8 array (HxWx3 RGB or HxW gray)")
    if image.dtype != np.uint8:
        raise ValueError(
            f"image {i} has dtype {image.dtype}, expected uint8: convert with np.clip(...).astype(np.uint8)"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(
            f"image {i} has shape {image.shape}, expected HxWx3 (RGB) or HxW (gray); convert RGBA/BGR frames "
            "to RGB before scoring"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image {i} is empty (shape {image.shape})")
    return np.ascontiguousarray(image)


class TorchScorer:
    """Embeds images and descriptions with a ModelBundle, in batches, without exposing torch types."""

    def __init__(self, bundle: ModelBundle, batch_size: int = 32, frontend: FrontEnd | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._bundle = bundle
        self._model = bundle.model.eval()
        self._device = bundle.device
        self._dtype = inference_dtype(bundle.device, bundle.precision)
        self.batch_size = batch_size
        self.model_id: str = bundle.model_id
        self.embed_dim: int = int(bundle.model_cfg["embed_dim"])
        with torch.no_grad():
            self.logit_scale: float = float(bundle.model.logit_scale.exp().item())
        size = bundle.model.visual.preprocess_cfg["size"]
        self.image_size: int = int(size if isinstance(size, int) else size[0])  # the height for non-square towers
        self.device: str = str(bundle.device)
        # The frame path (encode_frame): the model's native input size unless the station sets one.
        self.input_size: int = native_input_size(bundle)
        self._frontend = frontend
        self._encoders: dict[FrontEnd, DenseEncoder] = {}
        self.dense: bool = supports_dense(bundle.model.visual)

    def _autocast(self) -> contextlib.AbstractContextManager:
        # Weights stay fp32 (they are also trained and saved); autocast runs the matmuls/convs in half.
        if self._dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._device.type, dtype=self._dtype)

    def _batches(self, n: int) -> Iterator[slice]:
        for start in range(0, n, self.batch_size):
            yield slice(start, min(start + self.batch_size, n))

    def _run(self, encode: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), self._autocast():
            features = encode(batch.to(self._device, non_blocking=True))
        # Normalise in fp32: half-precision norms lose the last digits the ranking compares.
        return F.normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)

    @property
    def bundle(self) -> ModelBundle:
        """The model bundle behind this scorer (Grad-CAM explains the same model it ranks with)."""
        return self._bundle

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 HxWx3 RGB (or HxW gray) images -> [N, D] float32, L2-normalised."""
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise ValueError(
                f"got a single array of shape {images.shape}; pass a list of images (or an NxHxWx3 batch array)"
            )
        checked = [_check_image(i, im) for i, im in enumerate(images)]
        out = [np.zeros((0, self.embed_dim), np.float32)]
        for part in self._batches(len(checked)):
            # Same PIL pipeline as training (bundle.preprocess), so scores match what the model learned.
            batch = torch.stack([self._bundle.preprocess(Image.fromarray(im).convert("RGB")) for im in checked[part]])
            out.append(self._run(self._model.encode_image, batch))
        return np.concatenate(out)

    @property
    def frontend(self) -> FrontEnd:
        """The default frame front end (built on first use: evaluation-only scorers never need one)."""
        if self._frontend is None:
            self._frontend = FrontEnd(input_size=self.input_size)
        return self._frontend

    def _encoder(self, frontend: FrontEnd) -> DenseEncoder:
        if frontend not in self._encoders:  # a few front ends per process at most (one per station setting)
            visual = self._bundle.model.visual
            self._encoders[frontend] = DenseEncoder(
                visual,
                tuple(visual.preprocess_cfg["mean"]),
                tuple(visual.preprocess_cfg["std"]),
                self._device,
                frontend,
            )
        return self._encoders[frontend]

    def encode_frame(
        self, rgb: np.ndarray, roi: np.ndarray | None = None, frontend: FrontEnd | None = None, mid: bool = False
    ) -> FrameFeatures:
        """One frame as delivered -> global and local features (front end: input size, tiles, flips, ROI;
        `mid`: the trunk's mid-level statistics too, from the same forward, models.trunk_features).

        Towers without a dense map fall back to the training pipeline (resize + centre crop); their
        only local feature is the global one.
        """
        frame = _check_image(0, rgb)
        if frame.ndim == 2:
            frame = np.repeat(frame[:, :, None], 3, axis=2)
        if self.dense:
            with self._autocast():
                return self._encoder(frontend or self.frontend).encode(frame, roi, mid)
        if roi is not None:
            frame = np.where(roi[:, :, None], frame, np.uint8(127))
        emb = self.embed_images([frame])
        h, w = frame.shape[:2]
        return FrameFeatures(emb[0], emb, [(0, 0, w, h)], [], False)

    def frontend_record(self, frontend: FrontEnd | None = None) -> dict:
        """The front end as plain JSON values (part of the scoring configuration)."""
        fe = frontend or self.frontend
        if not self.dense:
            return {"path": "centre-crop", "input_size": self.image_size}
        return {
            "path": "dense",
            "input_size": fe.input_size,
            "flips": fe.flips,
            "tiling": {"mode": fe.tiles.mode, "size": fe.tiles.size, "overlap": fe.tiles.overlap},
        }

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Descriptions -> [N, D] float32, L2-normalised."""
        if isinstance(texts, str):
            raise ValueError("got a single string; pass a list of descriptions, e.g. [text]")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"description {i} is a {type(text).__name__}, expected str")
        out = [np.zeros((0, self.embed_dim), np.float32)]
        for part in self._batches(len(texts)):
            tokens = self._bundle.tokenizer(texts[part])
            out.append(self._run(self._model.encode_text, tokens))
        return np.concatenate(out)
