"""What trains: tower structure, freezing, and running only part of a tower.

fit() trains the two projections and the logit scale, optionally the last N blocks of a tower, and
keeps everything else frozen. Frozen work is deterministic (eval mode, the eval transform: spec P12
uses no training augmentation), so it is done once per image or caption and reused every step: the
caches live in models/tower_cache.py, which runs parts of a tower with the contexts defined here.
A whole tower in training (freeze_image=False) is never cached: fit() then feeds images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from models.errors import ModelError


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
    return [getattr(parent, n) for n in names[names.index(child) + 1 :]]


def _before(parent: nn.Module, child: str) -> list[Slot]:
    names = [n for n, _ in parent.named_children()]
    return [(parent, n) for n in names[: names.index(child)]]


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
            return Tower(
                "image",
                "timm",
                [v],
                _flat_blocks(v.trunk.blocks),
                _after(v.trunk, "blocks"),
                (v, "head"),
                _before(v.trunk, "blocks"),
            )
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
            f"cannot find the text tower of {type(model).__name__}: expected open_clip CLIP or CustomTextCLIP"
        )
    return Tower(
        "text",
        "clip-text",
        parts,
        _slots(model.transformer.resblocks),
        [model.ln_final],
        (model, "text_projection"),
        [],
    )


def _set_trainable(part: Part) -> None:
    for p in [part] if isinstance(part, nn.Parameter) else part.parameters():
        p.requires_grad_(True)


def apply_freezing(model: nn.Module, cfg: Any) -> tuple[Tower, Tower]:
    """requires_grad per a TrainConfig: towers frozen except the projections and the last N blocks."""
    towers = (image_tower(model), text_tower(model))
    for p in model.parameters():
        p.requires_grad_(False)
    model.logit_scale.requires_grad_(True)
    for tower, frozen, n_open in (
        (towers[0], cfg.freeze_image, cfg.unfreeze_image_blocks),
        (towers[1], cfg.freeze_text, cfg.unfreeze_text_blocks),
    ):
        if not frozen:
            for part in tower.parts:
                _set_trainable(part)
            continue
        _set_trainable(tower.projection())
        if n_open:
            blocks = tower.need_blocks()
            if not 0 < n_open <= len(blocks):
                raise TrainError(
                    f"unfreeze_{tower.name}_blocks={n_open}, but the {tower.name} tower has {len(blocks)} blocks"
                )
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
    frozen_blocks = tower.blocks[: len(tower.blocks) - n_open] if tower.blocks else []
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
        raise TrainError(
            f"cannot cache the frozen part of a {tower.kind!r} {tower.name} tower; set cache_tower_outputs=False"
        )


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
