"""An inference copy of an image tower with each BatchNorm folded into the convolution before it.

In eval mode a BatchNorm is a per-channel affine map, so it can be folded into the preceding
convolution's weights and bias: W' = W * g / sqrt(v + eps), b' = beta + (b - m) * g / sqrt(v + eps).
The frame path runs a memory-bound EfficientNet-Lite on a CPU, where the separate BatchNorm passes
cost about a sixth of the forward (`python -m bench.frontend_cost` measures it). The copy is only
used for inference (the frame path); training, Grad-CAM through pytorch-grad-cam and saved weights
use the tower itself, so the model's weights and identity are untouched.

Folding is generic over timm towers whose normalisation layers (timm `BatchNormAct2d`, or plain
`BatchNorm2d`) each directly follow their convolution in registration order. The copy is checked
against the original on a probe input; any tower it does not fit is returned unchanged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

TOLERANCE = 1e-3  # relative max difference to the original on the probe input (float32 sums reordered)


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        conv.bias = nn.Parameter(bn.bias + (bias - bn.running_mean) * scale)


def _after_norm(bn: nn.BatchNorm2d) -> nn.Module:
    """What is left of a norm layer once folded: timm's BatchNormAct2d keeps its dropout and activation."""
    parts = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
    return nn.Sequential(*parts) if parts else nn.Identity()


def fold_batchnorm(module: nn.Module) -> tuple[nn.Module, int]:
    """An eval-mode copy of `module` with its conv -> BatchNorm pairs folded; (copy, pairs folded)."""
    out = copy.deepcopy(module).eval()
    last: nn.Conv2d | None = None
    folded = 0
    for name, mod in list(out.named_modules()):
        if isinstance(mod, nn.Conv2d):
            last = mod
        elif isinstance(mod, nn.BatchNorm2d) and mod.track_running_stats and mod.affine:
            if last is None or last.out_channels != mod.num_features or last.groups < 1:
                last = None
                continue
            _fold(last, mod)
            parent_name, _, child = name.rpartition(".")
            setattr(out.get_submodule(parent_name) if parent_name else out, child, _after_norm(mod))
            folded += 1
            last = None  # one norm per convolution
    return out, folded


def fused_for_inference(visual: nn.Module, probe_size: int = 64) -> nn.Module:
    """`visual` with its trunk's BatchNorms folded, if the folded copy matches it; else `visual`."""
    trunk = getattr(visual, "trunk", None)
    if trunk is None or not hasattr(trunk, "forward_features"):
        return visual
    folded, count = fold_batchnorm(trunk)
    if count == 0:
        return visual
    device = next(trunk.parameters()).device
    probe = torch.randn(1, 3, probe_size, probe_size, generator=torch.Generator().manual_seed(0)).to(device)
    was_training = trunk.training
    trunk.eval()
    try:
        with torch.inference_mode():
            want, got = trunk.forward_features(probe).float(), folded.forward_features(probe).float()
    finally:
        trunk.train(was_training)
    if want.shape != got.shape or float((want - got).abs().max()) > TOLERANCE * max(float(want.abs().max()), 1.0):
        return visual
    out = copy.copy(visual)  # shallow: shares the head and every other submodule with the tower
    out._modules = dict(visual._modules)
    out._modules["trunk"] = folded
    return out
