"""Choose the device and the inference dtype, with clear errors instead of silent fallbacks."""

from __future__ import annotations

import torch

from models.errors import ModelError

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


def select_device(pref: str | torch.device | None = None) -> torch.device:
    """Return CUDA when available (else CPU) or the device asked for; a device that is absent is an error."""
    if pref is None or (isinstance(pref, str) and pref.strip().lower() == "auto"):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(pref.strip().lower() if isinstance(pref, str) else pref)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(
            f"unknown device {pref!r}: use 'cpu', 'cuda', 'cuda:N' or leave it unset to pick automatically"
        ) from exc
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ModelError(f"device {pref!r} is not supported here: use 'cpu', 'cuda' or 'cuda:N'")
    # Why refuse rather than fall back to CPU: a station configured for a GPU that silently runs
    # 20x slower on the CPU misses its cycle time with no hint of the cause.
    if not torch.cuda.is_available():
        raise ModelError(
            f"device {pref!r} was requested but CUDA is not available on this machine "
            "(no GPU, or torch was built without CUDA): set the device to 'cpu' or leave it unset"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ModelError(
            f"device {pref!r} was requested but this machine has {count} CUDA device(s) "
            f"(cuda:0 .. cuda:{count - 1}): pick one of those"
        )
    return device


def inference_dtype(device: str | torch.device, precision: str | None = None) -> torch.dtype:
    """Return the dtype to run inference in: float16 on CUDA, float32 on CPU, unless precision says otherwise."""
    if precision is not None:
        try:
            return PRECISIONS[precision]
        except KeyError:
            raise ModelError(
                f"unknown precision {precision!r}: use one of {sorted(PRECISIONS)} or leave it unset"
            ) from None
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32
