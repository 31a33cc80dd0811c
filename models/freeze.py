"""What trains and what is computed once: tower structure, freezing, and the frozen-work caches.

fit() trains the two projections and the logit scale, optionally the last N blocks of a tower, and
keeps everything else frozen. Frozen work is deterministic (eval mode, the eval transform: spec P12
uses no training augmentation), so it is done once per image or caption and reused every step:

- image tower frozen, no open blocks: its pooled output (before the projection) is cached;
- image tower frozen with its last N blocks open: the activation at the input of the first open
  block is cached, and each step runs only the open blocks, the tail and the projection;
- text tower frozen, no open blocks: its pooled output is cached per caption text.

A whole tower in training (freeze_image=False) is never cached: fit() then feeds images.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from models.errors import ModelError
from models.factory import ModelBundle


class TrainError(ModelError):
    """Training cannot start or continue as configured; the message says what to change."""


Part = nn.Module | nn.Parameter
Slot = tuple[nn.Module, str]  # (parent, attribute or child name): where a module is registered


@dataclass
class Tower:
    """One tower's structure, as far as freezing and partial caching need it."""

    name: str
    kind: str  # "timm" (open_clip TimmModel), "vit" (open_clip VisionTransformer), "hf", "clip-text", "other"
    parts: list[Part]  # everything that belongs to the tower
    blocks: list[Slot] | None  # None: the block structure of this tower type is unknown
    tail: list[nn.Module]  # modules after the last block (final norm / conv head): train with it
    proj: Slot | None  # where the projection into the joint space is registered
    prefix: list[Slot]  # modules before the first block (timm stems); skipped when cached

    def need_blocks(self) -> list[nn.Module]:
        if self.blocks is None:
            raise TrainError(
                f"cannot find the blocks of the {self.name} tower ({type(self.parts[0]).__name__}); "
                "supported: timm trunks with .blocks, open_clip transformers with .resblocks, HF encoders "
                "with .encoder.layer. Freeze or unfreeze the whole tower instead"
            )
        return [getattr(parent, name) for parent, name in self.blocks]

    def need_proj(self) -> Slot:
        if self.proj is None:
            raise TrainError(f"cannot find the projection of the {self.name} tower ({type(self.parts[0]).__name__})")
        return self.proj

    def projection(self) -> Part | None:
        return getattr(*self.need_proj())


def _after(parent: nn.Module, child: str) -> list[nn.Module]:
    """Children registered after `child`; timm and open_clip register modules in forward order."""
    names = [n for n, _ in parent.named_children()]
    return [getattr(parent, n) for n in names[names.index(child) + 1:]]


def _before(parent: nn.Module, child: str) -> list[Slot]:
    names = [n for n, _ in parent.named_children()]
    return [(parent, n) for n in names[:names.index(child)]]


def _slots(container: nn.Module) -> list[Slot]:
    return [(container, n) for n, _ in container.named_children()]


def _flat_blocks(blocks: nn.Module) -> list[Slot]:
    # timm EfficientNet nests blocks per stage (blocks.3.0); count individual blocks.
    out: list[Slot] = []
    for name, b in blocks.named_children():
        out.extend(_slots(b) if isinstance(b, nn.Sequential) else [(blocks, name)])
    return out


def image_tower(model: nn.Module) -> Tower:
    """The image tower of an open_clip model (timm trunk or open_clip ViT)."""
    v = model.visual
    if hasattr(v, "trunk") and hasattr(v, "head"):  # open_clip TimmModel
        if hasattr(v.trunk, "blocks"):
            return Tower("image", "timm", [v], _flat_blocks(v.trunk.blocks), _after(v.trunk, "blocks"), (v, "head"),
                         _before(v.trunk, "blocks"))
        return Tower("image", "other", [v], None, [], (v, "head"), [])
    if hasattr(v, "transformer") and hasattr(v.transformer, "resblocks"):  # open_clip VisionTransformer
        proj = (v, "proj") if isinstance(getattr(v, "proj", None), nn.Parameter) else None
        return Tower("image", "vit", [v], _slots(v.transformer.resblocks), _after(v, "transformer"), proj, [])
    return Tower("image", "other", [v], None, [], None, [])


def text_tower(model: nn.Module) -> Tower:
    """The text tower of an open_clip CLIP or CustomTextCLIP."""
    t = getattr(model, "text", None)
    if t is not None:  # CustomTextCLIP
        enc = getattr(t, "transformer", None)
        if enc is not None and hasattr(getattr(enc, "encoder", None), "layer"):  # open_clip HFTextEncoder
            uses_hf_pooler = getattr(t.pooler, "use_pooler_output", False) and getattr(enc, "pooler", None)
            tail = [enc.pooler] if uses_hf_pooler else []
            return Tower("text", "hf", [t], _slots(enc.encoder.layer), tail, (t, "proj"), [])
        if enc is not None and hasattr(enc, "resblocks"):  # open_clip TextTransformer
            return Tower("text", "clip-text", [t], _slots(enc.resblocks), [t.ln_final], (t, "text_projection"), [])
        return Tower("text", "other", [t], None, [], None, [])
    # open_clip CLIP keeps the text tower's pieces on the model itself.
    names = ("transformer", "token_embedding", "positional_embedding", "ln_final", "text_projection")
    parts = [getattr(model, n) for n in names if getattr(model, n, None) is not None]
    if not hasattr(getattr(model, "transformer", None), "resblocks"):
        raise TrainError(
            f"cannot find the text tower of {type(model).__name__}: expected open_clip CLIP or CustomTextCLIP")
    return Tower("text", "clip-text", parts, _slots(model.transformer.resblocks), [model.ln_final],
                 (model, "text_projection"), [])


def _set_trainable(part: Part) -> None:
    for p in [part] if isinstance(part, nn.Parameter) else part.parameters():
        p.requires_grad_(True)


def apply_freezing(model: nn.Module, cfg: Any) -> tuple[Tower, Tower]:
    """requires_grad per a TrainConfig: towers frozen except the projections and the last N blocks."""
    towers = (image_tower(model), text_tower(model))
    for p in model.parameters():
        p.requires_grad_(False)
    model.logit_scale.requires_grad_(True)
    for tower, frozen, n_open in ((towers[0], cfg.freeze_image, cfg.unfreeze_image_blocks),
                                  (towers[1], cfg.freeze_text, cfg.unfreeze_text_blocks)):
        if not frozen:
            for part in tower.parts:
                _set_trainable(part)
            continue
        _set_trainable(tower.projection())
        if n_open:
            blocks = tower.need_blocks()
            if not 0 < n_open <= len(blocks):
                raise TrainError(
                    f"unfreeze_{tower.name}_blocks={n_open}, but the {tower.name} tower has {len(blocks)} blocks")
            for part in blocks[-n_open:] + tower.tail:
                _set_trainable(part)
    return towers


def eval_frozen(model: nn.Module) -> None:
    """Put every module whose parameters are all frozen in eval mode: BN statistics stay fixed and
    frozen blocks behave as fixed feature extractors (no dropout)."""
    for m in model.modules():
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):
            m.eval()


# ---------------------------------------------------------------- running part of a tower

def _project(proj: Part | None, x: torch.Tensor) -> torch.Tensor:
    if proj is None:
        return x
    return x @ proj if isinstance(proj, nn.Parameter) else proj(x)


@contextmanager
def _replaced(slots: list[Slot], make: Callable[[Any], Any]) -> Iterator[None]:
    """Temporarily set each slot to make(old value); always restored."""
    saved = [(parent, name, getattr(parent, name)) for parent, name in slots]
    try:
        for parent, name, old in saved:
            setattr(parent, name, make(old))
        yield
    finally:
        for parent, name, old in saved:
            setattr(parent, name, old)


@contextmanager
def projections_removed(towers: tuple[Tower, Tower]) -> Iterator[None]:
    """encode_image/encode_text return the pooled outputs before the projections."""
    # A parameter slot accepts None (open_clip then skips the matmul); a module slot gets Identity.
    with _replaced([t.need_proj() for t in towers], lambda old: nn.Identity() if isinstance(old, nn.Module) else None):
        yield


class _Pass(nn.Module):
    """Stands in for a skipped block: returns its first input (open_clip blocks take attn_mask too)."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return x


@contextmanager
def prefix_skipped(tower: Tower, n_open: int) -> Iterator[None]:
    """model.visual(x) takes x = the activation at the input of the first of the last n_open blocks."""
    frozen_blocks = tower.blocks[:len(tower.blocks) - n_open] if tower.blocks else []
    if tower.kind == "timm":
        with _replaced(tower.prefix + frozen_blocks, lambda old: _Pass()):
            yield
    elif tower.kind == "vit":
        visual = tower.parts[0]
        visual._embeds = lambda x: x  # instance attribute shadows the method: no patch embedding, no ln_pre
        try:
            with _replaced(frozen_blocks, lambda old: _Pass()):
                yield
        finally:
            del visual._embeds
    else:
        raise TrainError(f"cannot cache the frozen part of a {tower.kind!r} {tower.name} tower; "
                         "set cache_tower_outputs=False")


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
        return {"image_features": F.normalize(image, dim=-1), "text_features": F.normalize(text, dim=-1),
                "logit_scale": self.model.logit_scale.exp()}


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

    def __init__(self, bundle: ModelBundle, dataset: Any, n_open: int = 0, *, device: torch.device | None = None,
                 autocast: Callable[[], Any] | None = None, chunk: int = 64) -> None:
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
            raise TrainError("the tower cache was built from other frozen weights than this model's: build a new "
                             "TowerCache for it (or pass none and let fit() build one)")
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
            x = self.images[i0:i0 + batch]
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
        live = [image.projection(), *image.tail] + (image.need_blocks()[-self.n_open:] if self.n_open else [])
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
                part = trim_padding(tokens[i0:i0 + chunk], pad).to(self.device)
                self.text.update(zip(missing[i0:i0 + chunk], self._encode(lambda m: m.encode_text(part))))
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
    return tokens[:, :max(1, length)]


@contextmanager
def trained_flags(model: nn.Module, cfg: Any, keep: Any = ()) -> Iterator[None]:
    """requires_grad exactly on what cfg trains, plus the parameters named in keep, restored on exit.

    save_checkpoint(trainable_only=True) stores the parameters that require grad; fit() hands the
    model back with the flags it came in with (usually all True). Inside this context a partial save
    holds what this training changed, plus `keep`: the keys of the partial checkpoint the model was
    loaded from (bundle.metadata["partial_keys"]), whose weights also differ from the base architecture.
    """
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        apply_freezing(model, cfg)
        params = dict(model.named_parameters())
        for key in keep:
            if key in params:
                params[key].requires_grad_(True)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
