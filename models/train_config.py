"""What fit() takes and gives back: TrainConfig, StepInfo, FitResult, the LR schedule and the config check.

Plain data and arithmetic: models.train runs the loop over these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.freeze import TrainError


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
    # Frozen work never changes: with both towers frozen, cache the pooled outputs (no open blocks)
    # or the image activations at the first open block, and the text outputs per caption.
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


def check_config(cfg: TrainConfig, n: int, world: int) -> None:
    """Refuse a config this dataset size and world size cannot run (TrainError, before any work)."""
    if cfg.steps < 1 or cfg.batch_size < 2:
        raise TrainError(f"need steps >= 1 and batch_size >= 2, got steps={cfg.steps}, batch_size={cfg.batch_size}")
    if cfg.batch_size % world:
        raise TrainError(f"batch_size={cfg.batch_size} (global) is not divisible by the world size {world}")
    if cfg.batch_size > n:
        raise TrainError(f"batch_size={cfg.batch_size} exceeds the dataset size {n}: lower batch_size or add data")
    if cfg.resume and cfg.checkpoint_dir is None:
        raise TrainError("resume=True needs checkpoint_dir")
