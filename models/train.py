"""fit(): one readable CLIP / RANKCLIP training loop (nanoGPT-style), torchrun/DDP aware.

A step: global batch -> this rank's slice -> forward -> all-gather features -> RankClipLoss terms
-> sum -> backward -> clip -> AdamW -> clamp the logit scale. Frozen work is computed once
(models.freeze, models.tower_cache): with both towers frozen the pooled outputs are cached, and with the image tower's
last N blocks open the activations at the first open block are cached, so a step runs only what
trains. Resumable state is safetensors + JSON only (models.train_state); nothing is pickled.
TrainConfig, StepInfo, FitResult, the LR schedule and the config check live in models.train_config.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from models.device import select_device
from models.distributed import DistInfo, all_agree, barrier, broadcast_module, gather_features, init_distributed
from models.factory import ModelBundle
from models.freeze import TrainError, apply_freezing, eval_frozen
from models.loss import RankClipLoss, ranking_weight
from models.tower_cache import CachedForward, TowerCache, caption_of, pad_token_id, trim_padding
from models.train_config import FitResult, StepInfo, TrainConfig, check_config, lr_at
from models.train_state import load_state, save_state

__all__ = ["FitResult", "StepInfo", "TrainConfig", "TrainError", "fit", "lr_at"]

MAX_LOG_SCALE = math.log(100.0)  # s = exp(theta) <= 100 after every step (spec 2, P18)


# ---------------------------------------------------------------- data: a pure (seed, step) -> batch schedule


def _epochs(n: int, batch: int, seed: int, start: int, stop: int) -> Iterator[tuple[int, int, list[np.ndarray]]]:
    """Yield (epoch, first step, global batches) covering steps [start, stop).

    Batch t is a pure function of (seed, t): each epoch is a seeded permutation cut into
    n // batch full batches (drop_last, so B is constant and nothing repeats within a batch).
    This is what makes resume exact and the global batch independent of the world size.
    """
    per_epoch = n // batch
    step = start
    while step < stop:
        epoch = step // per_epoch
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        last = min(stop, (epoch + 1) * per_epoch)
        first_pos = step - epoch * per_epoch
        yield epoch, step, [perm[p * batch : (p + 1) * batch] for p in range(first_pos, first_pos + last - step)]
        step = last


class _Collate:
    """(PIL image, caption) samples -> (image tensor batch, token batch), with the bundle's transforms."""

    def __init__(
        self, preprocess: Callable[[Image.Image], torch.Tensor], tokenizer: Callable[[list[str]], torch.Tensor]
    ) -> None:
        self.preprocess, self.tokenizer = preprocess, tokenizer

    def __call__(self, samples: Sequence[tuple[Any, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = [Image.fromarray(im) if isinstance(im, np.ndarray) else im for im, _ in samples]
        return torch.stack([self.preprocess(im) for im in images]), self.tokenizer([c for _, c in samples])


# ---------------------------------------------------------------- logging


def _open_log(path: str | None, start: int) -> Any:
    """Open the JSONL log; on resume keep only lines up to the resumed step (a crash may have logged more)."""
    if path is None:
        return None
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    if start > 0 and p.is_file():
        kept = [ln for ln in p.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= start]
    f = open(p, "w", encoding="utf-8")
    f.writelines(ln + "\n" for ln in kept)
    f.flush()
    return f


class _Reporter:
    """Rank 0's duties after each step: JSONL line, progress line, on_step, the wall-clock limit."""

    def __init__(self, cfg: TrainConfig, start: int, on_step: Callable[[StepInfo], bool | None] | None) -> None:
        self.cfg, self.on_step = cfg, on_step
        self.log = _open_log(cfg.log_path, start)
        self.show = cfg.progress_bar and sys.stderr.isatty()  # a \r line only makes sense on a terminal

    def after_step(self, r: StepInfo) -> tuple[str, bool] | None:
        """Record the step; return (reason, cancelled) to stop, None to go on."""
        if self.log:
            self.log.write(
                json.dumps(
                    {
                        "step": r.step,
                        "lr": r.lr,
                        **r.losses,
                        "total_loss": r.total_loss,
                        "logit_scale": r.logit_scale,
                        "ranking_weight": r.ranking_weight,
                        "samples_per_s": r.samples_per_s,
                        "elapsed_s": r.elapsed_s,
                    }
                )
                + "\n"
            )
            self.log.flush()
        if self.show:
            sys.stderr.write(
                f"\rstep {r.step}/{r.total_steps}  loss {r.total_loss:.4f}  lr {r.lr:.2e}  "
                f"s {r.logit_scale:.1f}  {r.samples_per_s:.0f} samples/s "
            )
            sys.stderr.flush()
        if self.on_step is not None and self.on_step(r) is False:
            return f"cancelled by on_step after step {r.step}", True
        limit = self.cfg.max_wall_seconds
        if limit is not None and r.elapsed_s >= limit:
            return f"stopped at the time limit (max_wall_seconds={limit}) after step {r.step}", False
        return None

    def close(self) -> None:
        if self.show:
            sys.stderr.write("\n")
        if self.log:
            self.log.close()


# ---------------------------------------------------------------- the loop


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only: no decay on norms, biases (ndim < 2), embeddings and the logit scale."""
    no_decay_names = ("logit_scale", "logit_bias", "embedding", "embeddings", "pos_embed", "cls_token")
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or any(k in name for k in no_decay_names) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _check_cache(cache: TowerCache, bundle: ModelBundle, dataset: Any, cfg: TrainConfig) -> None:
    if cache.size != len(dataset) or cache.n_open != cfg.unfreeze_image_blocks:
        raise TrainError(
            f"the tower cache holds {cache.size} items with {cache.n_open} open image blocks, but this run has "
            f"{len(dataset)} items and unfreeze_image_blocks={cfg.unfreeze_image_blocks}: build a matching cache"
        )
    cache.bind(bundle)


def fit(
    bundle: ModelBundle,
    dataset: Any,
    cfg: TrainConfig,
    on_step: Callable[[StepInfo], bool | None] | None = None,
    *,
    cache: TowerCache | None = None,
) -> FitResult:
    """Train bundle.model in place on (image, caption) samples; on_step returning False cancels.

    cache: frozen work from an earlier run on the same dataset (TowerCache(bundle, dataset,
    cfg.unfreeze_image_blocks)); fit() builds one itself when it is None and caching applies.

    The model comes back in the train/eval mode and with the requires_grad flags it came in with
    (the factory hands out eval-mode models ready for inference). Seeds torch's global RNG.
    """
    model = bundle.model
    flags = [(p, p.requires_grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        return _fit(bundle, dataset, cfg, on_step, cache)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in modes:
            m.training = training


def _fit(
    bundle: ModelBundle,
    dataset: Any,
    cfg: TrainConfig,
    on_step: Callable[[StepInfo], bool | None] | None,
    cache: TowerCache | None,
) -> FitResult:
    t0 = time.monotonic()
    info = init_distributed(cfg.device)
    if not info.distributed:
        device = select_device(cfg.device) if cfg.device else next(bundle.model.parameters()).device
        info = DistInfo(device=device)
    check_config(cfg, len(dataset), info.world_size)
    loss_fn = RankClipLoss(cfg.loss_variant, cfg.numerics, cfg.weight_cap, cfg.position_decay, cfg.row_chunk)
    model = bundle.model.to(info.device)
    bundle.device = info.device  # keep the bundle truthful for the scorer that uses it afterwards
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise TrainError("fit() needs fp32 weights (AMP handles low precision); build the model with precision=None")
    broadcast_module(model, info)  # the frozen towers must match too, not only what DDP wraps
    towers = apply_freezing(model, cfg)
    # Caching needs a frozen image tower (open blocks are fine) and a frozen text tower; text with
    # open blocks is then run from tokens each step, while the image side stays cached.
    cached = cfg.cache_tower_outputs and cfg.freeze_image and cfg.freeze_text
    text_cached = cached and not cfg.unfreeze_text_blocks
    use_amp = cfg.amp and info.device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    autocast = lambda: torch.autocast("cuda", dtype=amp_dtype, enabled=use_amp)  # noqa: E731
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    trainable = [p for g in opt.param_groups for p in g["params"]]
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    torch.manual_seed(cfg.seed)  # same on every rank: the loss's tie-break permutations must agree
    start = load_state(ckpt_dir, cfg, model, opt, scaler) if cfg.resume and ckpt_dir else 0
    meta = {"model_id": getattr(bundle, "model_id", None), "arch": getattr(bundle, "arch", None)}

    model.train()
    eval_frozen(model)
    if not cached or start >= cfg.steps:
        cache = None
    elif cache is None:
        cache = TowerCache(bundle, dataset, cfg.unfreeze_image_blocks, device=info.device, autocast=autocast)
    else:
        _check_cache(cache, bundle, dataset, cfg)
    net: nn.Module = CachedForward(model, towers, cfg.unfreeze_image_blocks, text_cached) if cached else model
    if info.distributed:
        net = DistributedDataParallel(net, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    collate = _Collate(bundle.train_preprocess, bundle.tokenizer)
    reporter = _Reporter(cfg, start, on_step) if info.is_main else None
    local = cfg.batch_size // info.world_size
    lo, hi = info.rank * local, (info.rank + 1) * local

    def batches() -> Iterator[tuple[int, Any]]:
        for epoch, first, global_batches in _epochs(len(dataset), cfg.batch_size, cfg.seed, start, cfg.steps):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)  # e.g. LabelledFolderDataset draws a new paraphrase per epoch
            mine = [b[lo:hi].tolist() for b in global_batches]
            if cached:
                yield from ((first + i, ids) for i, ids in enumerate(mine))
                continue
            # Own generator: creating a loader must not consume the global RNG (exact resume).
            loader = DataLoader(
                dataset,
                batch_sampler=mine,
                collate_fn=collate,
                num_workers=cfg.num_workers,
                generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch),
                pin_memory=info.device.type == "cuda",
            )
            yield from ((first + i, b) for i, b in enumerate(loader))

    step, terms, reason, cancelled = start, {}, "completed", False
    last_ckpt: Path | None = None
    t_step = time.monotonic()
    try:
        for index, batch in batches():
            lr = lr_at(index, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            progress = index / cfg.steps  # drives the ranking warm-up: 0 at the first step
            with autocast():
                if cached:
                    captions = [caption_of(dataset, i) for i in batch]
                    texts = (
                        cache.texts(captions)
                        if text_cached
                        else trim_padding(bundle.tokenizer(captions), pad_token_id(towers[1])).to(info.device)
                    )
                    out = net(cache.images[batch], texts)
                else:
                    images, tokens = batch
                    out = net(images.to(info.device, non_blocking=True), tokens.to(info.device, non_blocking=True))
                if not isinstance(out, dict):  # open_clip models without output_dict return a tuple
                    out = {"image_features": out[0], "text_features": out[1], "logit_scale": out[2]}
                all_img, all_txt = gather_features(out["image_features"], out["text_features"], info)
                loss_terms = loss_fn(all_img, all_txt, out["logit_scale"], progress)
                total = sum(loss_terms.values())
            opt.zero_grad(set_to_none=True)
            (scaler.scale(total) if scaler else total).backward()
            if scaler:
                scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            scaler.step(opt) if scaler else opt.step()
            if scaler:
                scaler.update()
            with torch.no_grad():
                model.logit_scale.clamp_(0.0, MAX_LOG_SCALE)
            step = index + 1

            now = time.monotonic()
            terms = {k: float(v.detach()) for k, v in loss_terms.items()}
            w = ranking_weight(progress, cfg.weight_cap) if cfg.loss_variant != "clip" else 0.0
            scale = float(model.logit_scale.detach().exp())
            report = StepInfo(
                step,
                cfg.steps,
                lr,
                terms,
                float(total.detach()),
                scale,
                w,
                now - t0,
                cfg.batch_size / max(now - t_step, 1e-9),
            )
            t_step = now
            stop = reporter.after_step(report) if reporter else None
            if all_agree(stop is not None, info) and stop is None:  # every rank stops at rank 0's step
                stop = ("stopped by rank 0", False)
            periodic = cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0
            if ckpt_dir and (periodic or stop or step == cfg.steps):
                if info.is_main:
                    last_ckpt = save_state(ckpt_dir, step, cfg, model, opt, scaler, meta)
                barrier(info)
            if stop:
                reason, cancelled = stop
                break
    finally:
        if reporter:
            reporter.close()
    final = dict(terms, total_loss=sum(terms.values())) if terms else {}
    return FitResult(
        step,
        step >= cfg.steps,
        cancelled,
        reason,
        final,
        cfg.log_path,
        time.monotonic() - t0,
        str(last_ckpt) if last_ckpt else None,
    )
