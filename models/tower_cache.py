"""Frozen work computed once and reused every training step (see models/freeze.py for what is frozen).

- image tower frozen, no open blocks: its pooled output (before the projection) is cached;
- image tower frozen with its last N blocks open: the activation at the input of the first open
  block is cached, and each step runs only the open blocks, the tail and the projection;
- text tower frozen, no open blocks: its pooled output is cached per caption text.

CachedForward is the trainable remainder of the model that fit() runs on these caches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from models.factory import ModelBundle
from models.freeze import Part, Tower, TrainError, image_tower, prefix_skipped, projections_removed, text_tower


def _project(proj: Part | None, x: torch.Tensor) -> torch.Tensor:
    if proj is None:
        return x
    return x @ proj if isinstance(proj, nn.Parameter) else proj(x)


class _Captured(Exception):
    def __init__(self, value: torch.Tensor) -> None:
        super().__init__("captured")
        self.value = value


def _input_of(module: nn.Module, fn: Callable[[], Any]) -> torch.Tensor:
    """Run fn() only up to `module` and return module's first input (the rest of the forward is skipped)."""

    def hook(_mod: nn.Module, args: tuple) -> None:
        raise _Captured(args[0])

    handle = module.register_forward_pre_hook(hook)
    try:
        fn()
    except _Captured as c:
        return c.value
    finally:
        handle.remove()
    raise TrainError(f"the forward pass never reached {type(module).__name__}: cannot cache its input")


class CachedForward(nn.Module):
    """The trainable remainder of the model, fed with cached frozen work.

    image_in: pooled image features (n_open == 0) or the activation at the input of the first open
    block. text_in: pooled text features (text_cached) or token ids (the text tower has open blocks).
    """

    def __init__(self, model: nn.Module, towers: tuple[Tower, Tower], n_open: int, text_cached: bool) -> None:
        super().__init__()
        self.model = model
        self.towers, self.n_open, self.text_cached = towers, n_open, text_cached

    def forward(self, image_in: torch.Tensor, text_in: torch.Tensor) -> dict[str, torch.Tensor]:
        image_tower_, text_tower_ = self.towers
        if self.n_open:
            with prefix_skipped(image_tower_, self.n_open):
                image = self.model.encode_image(image_in)
        else:
            image = _project(image_tower_.projection(), image_in)
        text = _project(text_tower_.projection(), text_in) if self.text_cached else self.model.encode_text(text_in)
        return {
            "image_features": F.normalize(image, dim=-1),
            "text_features": F.normalize(text, dim=-1),
            "logit_scale": self.model.logit_scale.exp(),
        }


# ---------------------------------------------------------------- the caches


def caption_of(dataset: Any, index: int) -> str:
    return dataset.caption(index) if hasattr(dataset, "caption") else dataset[index][1]


def _image_of(dataset: Any, index: int) -> Image.Image:
    im = dataset.load_image(index) if hasattr(dataset, "load_image") else dataset[index][0]
    return Image.fromarray(im) if isinstance(im, np.ndarray) else im


class TowerCache:
    """Frozen work computed once: per dataset index for images, per caption text for the text tower.

    images[i] is dataset item i's pooled image feature (n_open == 0) or its activation at the input
    of the first of the last n_open image blocks. A cache can be reused for another run on the same
    dataset (a benchmark trains several losses on the same data): fit() re-binds it to the new model
    and refuses it unless that model's frozen weights are exactly the ones the cache was built from.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        dataset: Any,
        n_open: int = 0,
        *,
        device: torch.device | None = None,
        autocast: Callable[[], Any] | None = None,
        chunk: int = 64,
    ) -> None:
        self.n_open, self.size = int(n_open), len(dataset)
        self.device = device or next(bundle.model.parameters()).device
        self.autocast = autocast or nullcontext
        self.text: dict[str, torch.Tensor] = {}
        self.bind(bundle, check=False)
        self.image_sha256, self.text_sha256 = self._digests()
        first_open = self.towers[0].need_blocks()[-self.n_open] if self.n_open else None
        rows = []
        # The eval transform (bundle.preprocess), not train_preprocess: one cached view must be
        # deterministic (spec P12: the reference uses no training augmentation anyway).
        for i0 in range(0, len(dataset), chunk):
            ims = [_image_of(dataset, i) for i in range(i0, min(len(dataset), i0 + chunk))]
            batch = torch.stack([bundle.preprocess(im) for im in ims]).to(self.device)
            batch = batch.contiguous(memory_format=torch.channels_last)  # ~1.5x faster convolutions on CPU
            if first_open is None:
                rows.append(self._encode(lambda m: m.encode_image(batch)))
            else:
                rows.append(self._encode(lambda m: _input_of(first_open, lambda: m.visual(batch))))
        self.images = torch.cat(rows)
        if self.images.dim() == 4:  # conv activations: the open conv blocks run ~1.4x faster channels-last
            self.images = self.images.contiguous(memory_format=torch.channels_last)

    def bind(self, bundle: ModelBundle, check: bool = True) -> None:
        """Use this cache with bundle's model. With check: refuse a model whose frozen image weights
        differ from the ones the image cache was built from; forget cached captions if its text tower differs."""
        self.model, self.tokenizer = bundle.model, bundle.tokenizer
        self.towers = (image_tower(self.model), text_tower(self.model))
        if not check:
            return
        image_sha, text_sha = self._digests()
        if image_sha != self.image_sha256:
            raise TrainError(
                "the tower cache was built from other frozen weights than this model's: build a new "
                "TowerCache for it (or pass none and let fit() build one)"
            )
        if text_sha != self.text_sha256:
            self.text, self.text_sha256 = {}, text_sha

    def subset(self, index: Any) -> TowerCache:
        """A cache of the items at `index` (for a dataset made of those items), sharing the caption cache."""
        sub = copy.copy(self)
        sub.images = self.images[torch.as_tensor(np.asarray(index), dtype=torch.long)]
        sub.size = len(sub.images)
        return sub

    @torch.no_grad()
    def pooled(self, batch: int = 256) -> TowerCache:
        """The n_open == 0 cache of the same items: runs the (frozen) rest of the bound model's image
        tower once over the cached activations, instead of the whole tower over the images again."""
        if not self.n_open:
            return self
        sub = copy.copy(self)
        rows = []
        for i0 in range(0, self.size, batch):
            x = self.images[i0 : i0 + batch]
            with prefix_skipped(self.towers[0], self.n_open):
                rows.append(self._encode(lambda m: m.encode_image(x)))
        sub.images, sub.n_open = torch.cat(rows), 0
        sub.image_sha256 = sub._digests()[0]
        return sub

    def _digests(self) -> tuple[str, str]:
        """SHA-256 of what the image cache depends on (the frozen image prefix) and of the text tower."""
        from models.checkpoint import state_digest  # lazy: checkpoint is only needed for this check

        names = {id(m): n for n, m in self.model.named_modules()}
        names.update({id(p): n for n, p in self.model.named_parameters()})
        image, text = self.towers
        live = [image.projection(), *image.tail] + (image.need_blocks()[-self.n_open :] if self.n_open else [])
        skip = tuple(names[id(x)] for x in live if x is not None and id(x) in names)
        text_parts = tuple(names[id(x)] for x in text.parts if id(x) in names)
        text_proj = names.get(id(text.projection()), "\0")
        state = self.model.state_dict()
        image_keys = [k for k in state if k.startswith(names[id(image.parts[0])] + ".") and not k.startswith(skip)]
        text_keys = [k for k in state if k.startswith(text_parts) and not k.startswith(text_proj)]
        return state_digest(state, image_keys), state_digest(state, text_keys)

    @torch.no_grad()
    def _encode(self, fn: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            with projections_removed(self.towers), self.autocast():
                return fn(self.model).float()
        finally:
            for m, training in modes:  # restore per module: frozen parts stay in eval mode
                m.training = training

    def texts(self, captions: list[str], chunk: int = 256) -> torch.Tensor:
        """Pooled text features of each caption, encoding each distinct text once."""
        missing = sorted(set(captions) - self.text.keys())
        if missing:
            tokens = self.tokenizer(missing)
            pad = pad_token_id(self.towers[1])
            if pad is not None:  # similar lengths together, so trimming the padding saves the most
                order = torch.argsort((tokens != pad).sum(1), stable=True).tolist()
                missing, tokens = [missing[i] for i in order], tokens[order]
            for i0 in range(0, len(missing), chunk):
                part = trim_padding(tokens[i0 : i0 + chunk], pad).to(self.device)
                self.text.update(zip(missing[i0 : i0 + chunk], self._encode(lambda m: m.encode_text(part))))
        return torch.stack([self.text[c] for c in captions])


def pad_token_id(tower: Tower) -> int | None:
    """The pad id of a Hugging Face text tower (whose output ignores padding), else None."""
    if tower.kind != "hf":
        return None
    return getattr(getattr(tower.parts[0], "config", None), "pad_token_id", None)


def trim_padding(tokens: torch.Tensor, pad: int | None) -> torch.Tensor:
    """Drop the columns that are padding in every row. For an HF tower with masked mean pooling the
    output is unchanged (padding is masked out of attention and pooling); only the cost shrinks
    (captions average ~11 of the 32 tokens). None: the tower's output depends on the length; keep all."""
    if pad is None:
        return tokens
    length = int((tokens != pad).sum(1).max()) if tokens.numel() else 0
    return tokens[:, : max(1, length)]
