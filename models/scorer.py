"""The model as the core sees it: numpy in, L2-normalised float32 numpy embeddings out."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models.device import inference_dtype
from models.factory import ModelBundle


def _check_image(i: int, image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image {i} is a {type(image).__name__}, expected a numpy uint8 array (HxWx3 RGB or HxW gray)")
    if image.dtype != np.uint8:
        raise ValueError(f"image {i} has dtype {image.dtype}, expected uint8: convert with np.clip(...).astype(np.uint8)")
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

    def __init__(self, bundle: ModelBundle, batch_size: int = 32) -> None:
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
