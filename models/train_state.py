"""Resumable training state: safetensors + JSON only (nothing is pickled), written atomically.

A state folder step-NNNNNNNN/ holds the trainable weights (model.safetensors), the optimizer moments
and RNG states (state.safetensors) and everything else as JSON (state.json); the file `latest` points
at the newest complete one, and only the last two are kept. Resuming with a config that would change
the optimisation trajectory is refused.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from models.freeze import TrainError

STATE_FORMAT = "inspector-train-state/1"
# Config fields that change the optimisation trajectory: resuming with other values is refused.
TRAJECTORY_FIELDS = (
    "steps",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_steps",
    "grad_clip",
    "loss_variant",
    "numerics",
    "weight_cap",
    "position_decay",
    "freeze_image",
    "freeze_text",
    "unfreeze_image_blocks",
    "unfreeze_text_blocks",
    "seed",
    "cache_tower_outputs",
)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters plus every persistent buffer (BN statistics of unfrozen blocks change)."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n for n, _ in model.named_buffers()}
    return {k: v for k, v in model.state_dict().items() if k in trainable or k in buffers}


def save_state(
    directory: Path,
    step: int,
    cfg: Any,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    meta: dict[str, Any],
) -> Path:
    """Write step-NNNNNNNN/{model,state}.safetensors + state.json atomically; keep the last two."""
    final = directory / f"step-{step:08d}"
    tmp = directory / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # clone: safetensors refuses tensors that share storage (tied weights would)
    weights = {k: v.detach().cpu().clone().contiguous() for k, v in trainable_state(model).items()}
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
        "format": STATE_FORMAT,
        "step": step,
        "config": asdict(cfg),
        **meta,
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


def load_state(
    directory: Path, cfg: Any, model: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> int:
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
    diff = [
        f"{k}: saved {saved.get(k)!r}, now {getattr(cfg, k)!r}"
        for k in TRAJECTORY_FIELDS
        if saved.get(k) != getattr(cfg, k)
    ]
    if diff:
        raise TrainError(
            f"cannot resume from {path}: the config differs ({'; '.join(diff)}); "
            "use the same config or a new checkpoint_dir"
        )
    expected = trainable_state(model)
    if set(weights) != set(expected) or any(weights[k].shape != expected[k].shape for k in weights):
        raise TrainError(
            f"the trainable weights in {path} do not match this model (was it trained from another architecture?)"
        )
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
