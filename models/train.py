"""fit(): one readable CLIP / RANKCLIP training loop (nanoGPT-style), torchrun/DDP aware.

A step: global batch -> this rank's slice -> forward -> all-gather features -> RankClipLoss terms
-> sum -> backward -> clip -> AdamW -> clamp the logit scale. With both towers frozen the pooled
tower outputs are computed once and only the projections and the logit scale train ("cache mode").
Resumable state is safetensors + JSON only (see _save_state); nothing is pickled.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from models.device import select_device
from models.distributed import DistInfo, all_agree, barrier, broadcast_module, gather_features, init_distributed
from models.errors import ModelError
from models.factory import ModelBundle
from models.loss import RankClipLoss, ranking_weight

MAX_LOG_SCALE = math.log(100.0)  # s = exp(theta) <= 100 after every step (spec 2, P18)
STATE_FORMAT = "inspector-train-state/1"
# Config fields that change the optimisation trajectory: resuming with other values is refused.
_TRAJECTORY_FIELDS = (
    "steps", "batch_size", "lr", "weight_decay", "warmup_steps", "grad_clip", "loss_variant",
    "numerics", "weight_cap", "position_decay", "freeze_image", "freeze_text",
    "unfreeze_image_blocks", "unfreeze_text_blocks", "seed", "cache_tower_outputs",
)


class TrainError(ModelError):
    """Training cannot start or continue as configured; the message says what to change."""


@dataclass
class TrainConfig:
    """Everything fit() needs besides the model and the data. batch_size is the GLOBAL batch."""

    steps: int = 1000
    batch_size: int = 64  # global; each rank gets batch_size // world_size
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    grad_clip: float | None = 1.0
    loss_variant: str = "rankclip"
    numerics: str = "official"
    weight_cap: float = 2.0
    position_decay: str | None = None
    row_chunk: int | None = None
    freeze_image: bool = True  # projections and the logit scale always train
    freeze_text: bool = True
    unfreeze_image_blocks: int = 0  # the last N blocks of a frozen tower train
    unfreeze_text_blocks: int = 0
    # Frozen towers with no open blocks never change: embed each image/caption once (~20x faster).
    cache_tower_outputs: bool = True
    amp: bool = True  # bf16 (else fp16) autocast on CUDA only; ignored on CPU
    seed: int = 0
    num_workers: int = 0
    log_path: str | None = None  # JSONL, one line per step with every loss term
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    max_wall_seconds: float | None = None
    device: str | None = None
    progress_bar: bool = True


@dataclass(frozen=True)
class StepInfo:
    """What the loop reports to on_step after each optimizer step (step is 1-based)."""

    step: int
    total_steps: int
    lr: float
    losses: dict[str, float]
    total_loss: float
    logit_scale: float
    ranking_weight: float
    elapsed_s: float
    samples_per_s: float


@dataclass(frozen=True)
class FitResult:
    """How a fit() call ended."""

    steps_done: int
    completed: bool
    cancelled: bool
    reason: str
    final_losses: dict[str, float]
    history_path: str | None
    wall_s: float
    checkpoint_path: str | None = None


def lr_at(step: int, cfg: TrainConfig) -> float:
    """LR for 0-based step: linear warm-up, then cosine to 0; identical for every loss variant (P11)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * min(1.0, t)))


# ---------------------------------------------------------------- towers: blocks, projections, freezing

Part = nn.Module | nn.Parameter


@dataclass
class _Tower:
    name: str
    parts: list[Part]  # everything that belongs to the tower
    blocks: list[nn.Module] | None  # None: the block structure of this tower type is unknown
    tail: list[nn.Module]  # modules after the last block (final norm / conv head): train with it
    proj: tuple[nn.Module, str] | None  # (owner, attribute) of the projection into the joint space

    def need_blocks(self) -> list[nn.Module]:
        if self.blocks is None:
            raise TrainError(
                f"cannot find the blocks of the {self.name} tower ({type(self.parts[0]).__name__}); "
                "supported: timm trunks with .blocks, open_clip transformers with .resblocks, HF encoders "
                "with .encoder.layer. Freeze or unfreeze the whole tower instead"
            )
        return self.blocks

    def need_proj(self) -> tuple[nn.Module, str]:
        if self.proj is None:
            raise TrainError(f"cannot find the projection of the {self.name} tower ({type(self.parts[0]).__name__})")
        return self.proj


def _after(parent: nn.Module, child: str) -> list[nn.Module]:
    """Children registered after `child`; timm and open_clip register modules in forward order."""
    names = [n for n, _ in parent.named_children()]
    return [getattr(parent, n) for n in names[names.index(child) + 1:]]


def _flat_blocks(blocks: nn.Module) -> list[nn.Module]:
    # timm EfficientNet nests blocks per stage (blocks.3.0); count individual blocks.
    out: list[nn.Module] = []
    for b in blocks.children():
        out.extend(b.children() if isinstance(b, nn.Sequential) else [b])
    return out


def _image_tower(model: nn.Module) -> _Tower:
    v = model.visual
    if hasattr(v, "trunk") and hasattr(v, "head"):  # open_clip TimmModel
        has = hasattr(v.trunk, "blocks")
        blocks, tail = (_flat_blocks(v.trunk.blocks), _after(v.trunk, "blocks")) if has else (None, [])
        return _Tower("image", [v], blocks, tail, (v, "head"))
    if hasattr(v, "transformer") and hasattr(v.transformer, "resblocks"):  # open_clip VisionTransformer
        proj = (v, "proj") if isinstance(getattr(v, "proj", None), nn.Parameter) else None
        return _Tower("image", [v], list(v.transformer.resblocks), _after(v, "transformer"), proj)
    return _Tower("image", [v], None, [], None)


def _text_tower(model: nn.Module) -> _Tower:
    t = getattr(model, "text", None)
    if t is not None:  # CustomTextCLIP
        enc = getattr(t, "transformer", None)
        if enc is not None and hasattr(getattr(enc, "encoder", None), "layer"):  # open_clip HFTextEncoder
            uses_hf_pooler = getattr(t.pooler, "use_pooler_output", False) and getattr(enc, "pooler", None)
            tail = [enc.pooler] if uses_hf_pooler else []
            return _Tower("text", [t], list(enc.encoder.layer), tail, (t, "proj"))
        if enc is not None and hasattr(enc, "resblocks"):  # open_clip TextTransformer
            return _Tower("text", [t], list(enc.resblocks), [t.ln_final], (t, "text_projection"))
        return _Tower("text", [t], None, [], None)
    # open_clip CLIP keeps the text tower's pieces on the model itself.
    names = ("transformer", "token_embedding", "positional_embedding", "ln_final", "text_projection")
    parts = [getattr(model, n) for n in names if getattr(model, n, None) is not None]
    if not hasattr(getattr(model, "transformer", None), "resblocks"):
        raise TrainError(
            f"cannot find the text tower of {type(model).__name__}: expected open_clip CLIP or CustomTextCLIP")
    return _Tower("text", parts, list(model.transformer.resblocks), [model.ln_final], (model, "text_projection"))


def _set_trainable(part: Part) -> None:
    for p in [part] if isinstance(part, nn.Parameter) else part.parameters():
        p.requires_grad_(True)


def _apply_freezing(model: nn.Module, cfg: TrainConfig) -> tuple[_Tower, _Tower]:
    """requires_grad per TrainConfig: towers frozen except the projections and the last N blocks."""
    towers = (_image_tower(model), _text_tower(model))
    for p in model.parameters():
        p.requires_grad_(False)
    model.logit_scale.requires_grad_(True)
    for tower, frozen, n_open in ((towers[0], cfg.freeze_image, cfg.unfreeze_image_blocks),
                                  (towers[1], cfg.freeze_text, cfg.unfreeze_text_blocks)):
        if not frozen:
            for part in tower.parts:
                _set_trainable(part)
            continue
        owner, attr = tower.need_proj()
        _set_trainable(getattr(owner, attr))
        if n_open:
            blocks = tower.need_blocks()
            if not 0 < n_open <= len(blocks):
                raise TrainError(
                    f"unfreeze_{tower.name}_blocks={n_open}, but the {tower.name} tower has {len(blocks)} blocks")
            for part in blocks[-n_open:] + tower.tail:
                _set_trainable(part)
    return towers


def _eval_frozen(model: nn.Module) -> None:
    """Put every module whose parameters are all frozen in eval mode: BN statistics stay fixed and
    frozen blocks behave as fixed feature extractors (no dropout)."""
    for m in model.modules():
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):
            m.eval()


class _ProjectionHeads(nn.Module):
    """The trainable part in cache mode: both projections and the logit scale, over pooled features."""

    def __init__(self, model: nn.Module, towers: tuple[_Tower, _Tower]) -> None:
        super().__init__()
        self.image_proj = getattr(*towers[0].need_proj())  # shared with the model, not copied
        self.text_proj = getattr(*towers[1].need_proj())
        self.logit_scale = model.logit_scale

    @staticmethod
    def _project(proj: Part | None, x: torch.Tensor) -> torch.Tensor:
        if proj is None:
            return x
        return x @ proj if isinstance(proj, nn.Parameter) else proj(x)

    def forward(self, image_pooled: torch.Tensor, text_pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "image_features": F.normalize(self._project(self.image_proj, image_pooled), dim=-1),
            "text_features": F.normalize(self._project(self.text_proj, text_pooled), dim=-1),
            "logit_scale": self.logit_scale.exp(),
        }


class _ProjectionsRemoved:
    """Context manager: encode_image/encode_text return the pooled outputs before the projections."""

    def __init__(self, towers: tuple[_Tower, _Tower]) -> None:
        self.slots = [t.need_proj() for t in towers]
        self.saved: list[Part | None] = []

    def __enter__(self) -> None:
        for owner, attr in self.slots:
            self.saved.append(getattr(owner, attr))
            # A parameter slot accepts None (open_clip then skips the matmul); a module slot gets Identity.
            setattr(owner, attr, nn.Identity() if isinstance(self.saved[-1], nn.Module) else None)

    def __exit__(self, *exc: object) -> None:
        for (owner, attr), value in zip(self.slots, self.saved):
            setattr(owner, attr, value)


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
        yield epoch, step, [perm[p * batch:(p + 1) * batch] for p in range(first_pos, first_pos + last - step)]
        step = last


class _Collate:
    """(PIL image, caption) samples -> (image tensor batch, token batch), with the bundle's transforms."""

    def __init__(self, preprocess: Callable[[Image.Image], torch.Tensor],
                 tokenizer: Callable[[list[str]], torch.Tensor]) -> None:
        self.preprocess, self.tokenizer = preprocess, tokenizer

    def __call__(self, samples: Sequence[tuple[Any, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = [Image.fromarray(im) if isinstance(im, np.ndarray) else im for im, _ in samples]
        return torch.stack([self.preprocess(im) for im in images]), self.tokenizer([c for _, c in samples])


def _caption(dataset: Any, index: int) -> str:
    return dataset.caption(index) if hasattr(dataset, "caption") else dataset[index][1]


class _TowerCache:
    """Pooled (pre-projection) tower outputs: images by dataset index, captions by text, each computed once."""

    def __init__(self, bundle: ModelBundle, towers: tuple[_Tower, _Tower], dataset: Any,
                 device: torch.device, autocast: Callable[[], Any], chunk: int = 64) -> None:
        self.model, self.towers, self.tokenizer = bundle.model, towers, bundle.tokenizer
        self.device, self.autocast = device, autocast
        self.text: dict[str, torch.Tensor] = {}
        rows = []
        # The eval transform, not train_preprocess: one cached view must be deterministic (spec P12:
        # the reference uses no training augmentation anyway).
        for i0 in range(0, len(dataset), chunk):
            ids = range(i0, min(len(dataset), i0 + chunk))
            ims = [dataset.load_image(i) if hasattr(dataset, "load_image") else dataset[i][0] for i in ids]
            ims = [Image.fromarray(im) if isinstance(im, np.ndarray) else im for im in ims]
            batch = torch.stack([bundle.preprocess(im) for im in ims]).to(device)
            rows.append(self._encode(lambda m: m.encode_image(batch)))
        self.images = torch.cat(rows)

    @torch.no_grad()
    def _encode(self, fn: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            with _ProjectionsRemoved(self.towers), self.autocast():
                return fn(self.model).float()
        finally:
            for m, training in modes:  # restore per module: frozen parts stay in eval mode
                m.training = training

    def texts(self, captions: list[str]) -> torch.Tensor:
        missing = sorted(set(captions) - self.text.keys())
        if missing:
            pooled = self._encode(lambda m: m.encode_text(self.tokenizer(missing).to(self.device)))
            self.text.update(zip(missing, pooled))
        return torch.stack([self.text[c] for c in captions])


# ---------------------------------------------------------------- resumable state (safetensors + JSON)

def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters plus every persistent buffer (BN statistics of unfrozen blocks change)."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n for n, _ in model.named_buffers()}
    return {k: v for k, v in model.state_dict().items() if k in trainable or k in buffers}


def _save_state(directory: Path, step: int, cfg: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler | None, meta: dict[str, Any]) -> Path:
    """Write step-NNNNNNNN/{model,state}.safetensors + state.json atomically; keep the last two."""
    final = directory / f"step-{step:08d}"
    tmp = directory / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # clone: safetensors refuses tensors that share storage (tied weights would)
    weights = {k: v.detach().cpu().clone().contiguous() for k, v in _trainable_state(model).items()}
    save_file(weights, str(tmp / "model.safetensors"))
    osd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {"rng.torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in osd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"opt.{pid}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    save_file(tensors, str(tmp / "state.safetensors"))
    index = {
        "format": STATE_FORMAT, "step": step, "config": asdict(cfg), **meta,
        "optimizer": {"param_groups": osd["param_groups"], "scalars": scalars},
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    (tmp / "state.json").write_text(json.dumps(index, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    (directory / "latest.tmp").write_text(final.name)
    (directory / "latest.tmp").replace(directory / "latest")  # the pointer moves only once complete
    for old in sorted(directory.glob("step-*"))[:-2]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _load_state(directory: Path, cfg: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler | None) -> int:
    """Restore the latest state in `directory`; return its step (0 when there is none yet)."""
    pointer = directory / "latest"
    if not pointer.is_file():
        return 0
    path = directory / pointer.read_text().strip()
    try:
        index = json.loads((path / "state.json").read_text())
        weights = load_file(str(path / "model.safetensors"))
        tensors = load_file(str(path / "state.safetensors"))
    except (OSError, ValueError) as e:
        raise TrainError(f"cannot read the training state in {path}: {e}; delete it to start over") from e
    if index.get("format") != STATE_FORMAT:
        raise TrainError(f"{path} is not a training state of format {STATE_FORMAT}")
    saved = index["config"]
    diff = [f"{k}: saved {saved.get(k)!r}, now {getattr(cfg, k)!r}"
            for k in _TRAJECTORY_FIELDS if saved.get(k) != getattr(cfg, k)]
    if diff:
        raise TrainError(f"cannot resume from {path}: the config differs ({'; '.join(diff)}); "
                         "use the same config or a new checkpoint_dir")
    expected = _trainable_state(model)
    if set(weights) != set(expected) or any(weights[k].shape != expected[k].shape for k in weights):
        raise TrainError(
            f"the trainable weights in {path} do not match this model (was it trained from another architecture?)")
    model.load_state_dict(weights, strict=False)
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, extra in index["optimizer"]["scalars"].items():
        state.setdefault(int(pid), {}).update(extra)
    groups = index["optimizer"]["param_groups"]
    for g in groups:
        g["betas"] = tuple(g["betas"])  # JSON turned the tuple into a list
    opt.load_state_dict({"state": state, "param_groups": groups})
    if scaler is not None and index.get("scaler"):
        scaler.load_state_dict(index["scaler"])
    torch.set_rng_state(tensors["rng.torch_cpu"])
    cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    cuda_states = [tensors[k] for k in cuda_keys]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    return int(index["step"])


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
            self.log.write(json.dumps({"step": r.step, "lr": r.lr, **r.losses, "total_loss": r.total_loss,
                                       "logit_scale": r.logit_scale, "ranking_weight": r.ranking_weight,
                                       "samples_per_s": r.samples_per_s, "elapsed_s": r.elapsed_s}) + "\n")
            self.log.flush()
        if self.show:
            sys.stderr.write(f"\rstep {r.step}/{r.total_steps}  loss {r.total_loss:.4f}  lr {r.lr:.2e}  "
                             f"s {r.logit_scale:.1f}  {r.samples_per_s:.0f} samples/s ")
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


def _check_config(cfg: TrainConfig, n: int, world: int) -> None:
    if cfg.steps < 1 or cfg.batch_size < 2:
        raise TrainError(f"need steps >= 1 and batch_size >= 2, got steps={cfg.steps}, batch_size={cfg.batch_size}")
    if cfg.batch_size % world:
        raise TrainError(f"batch_size={cfg.batch_size} (global) is not divisible by the world size {world}")
    if cfg.batch_size > n:
        raise TrainError(f"batch_size={cfg.batch_size} exceeds the dataset size {n}: lower batch_size or add data")
    if cfg.resume and cfg.checkpoint_dir is None:
        raise TrainError("resume=True needs checkpoint_dir")


def fit(bundle: ModelBundle, dataset: Any, cfg: TrainConfig,
        on_step: Callable[[StepInfo], bool | None] | None = None) -> FitResult:
    """Train bundle.model in place on (image, caption) samples; on_step returning False cancels.

    The model comes back in the train/eval mode and with the requires_grad flags it came in with
    (the factory hands out eval-mode models ready for inference). Seeds torch's global RNG.
    """
    model = bundle.model
    flags = [(p, p.requires_grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        return _fit(bundle, dataset, cfg, on_step)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in modes:
            m.training = training


def _fit(bundle: ModelBundle, dataset: Any, cfg: TrainConfig,
         on_step: Callable[[StepInfo], bool | None] | None) -> FitResult:
    t0 = time.monotonic()
    info = init_distributed(cfg.device)
    if not info.distributed:
        device = select_device(cfg.device) if cfg.device else next(bundle.model.parameters()).device
        info = DistInfo(device=device)
    _check_config(cfg, len(dataset), info.world_size)
    loss_fn = RankClipLoss(cfg.loss_variant, cfg.numerics, cfg.weight_cap, cfg.position_decay, cfg.row_chunk)
    model = bundle.model.to(info.device)
    bundle.device = info.device  # keep the bundle truthful for the scorer that uses it afterwards
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise TrainError("fit() needs fp32 weights (AMP handles low precision); build the model with precision=None")
    broadcast_module(model, info)  # the frozen towers must match too, not only what DDP wraps
    towers = _apply_freezing(model, cfg)
    cached = cfg.cache_tower_outputs and cfg.freeze_image and cfg.freeze_text and not (
        cfg.unfreeze_image_blocks or cfg.unfreeze_text_blocks)
    use_amp = cfg.amp and info.device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    autocast = lambda: torch.autocast("cuda", dtype=amp_dtype, enabled=use_amp)  # noqa: E731
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    trainable = [p for g in opt.param_groups for p in g["params"]]
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    torch.manual_seed(cfg.seed)  # same on every rank: the loss's tie-break permutations must agree
    start = _load_state(ckpt_dir, cfg, model, opt, scaler) if cfg.resume and ckpt_dir else 0
    meta = {"model_id": getattr(bundle, "model_id", None), "arch": getattr(bundle, "arch", None)}

    model.train()
    _eval_frozen(model)
    cache = _TowerCache(bundle, towers, dataset, info.device, autocast) if cached and start < cfg.steps else None
    net: nn.Module = _ProjectionHeads(model, towers) if cached else model
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
            loader = DataLoader(dataset, batch_sampler=mine, collate_fn=collate, num_workers=cfg.num_workers,
                                generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch),
                                pin_memory=info.device.type == "cuda")
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
                    captions = [_caption(dataset, i) for i in batch]
                    out = net(cache.images[batch], cache.texts(captions))
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
            report = StepInfo(step, cfg.steps, lr, terms, float(total.detach()), scale, w, now - t0,
                              cfg.batch_size / max(now - t_step, 1e-9))
            t_step = now
            stop = reporter.after_step(report) if reporter else None
            if all_agree(stop is not None, info) and stop is None:  # every rank stops at rank 0's step
                stop = ("stopped by rank 0", False)
            periodic = cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0
            if ckpt_dir and (periodic or stop or step == cfg.steps):
                if info.is_main:
                    last_ckpt = _save_state(ckpt_dir, step, cfg, model, opt, scaler, meta)
                barrier(info)
            if stop:
                reason, cancelled = stop
                break
    finally:
        if reporter:
            reporter.close()
    final = dict(terms, total_loss=sum(terms.values())) if terms else {}
    return FitResult(step, step >= cfg.steps, cancelled, reason, final, cfg.log_path, time.monotonic() - t0,
                     str(last_ckpt) if last_ckpt else None)
