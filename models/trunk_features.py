"""Mid-level features of the image tower: its trunk's intermediate stages, pooled per channel.

The global embedding is the last stage averaged over the frame; fine texture (a few-pixel noise
patch on a textile) lives in the earlier, higher-resolution stages and is averaged away by then.
PaDiM and PatchCore read those mid-level layers for the same reason. Here each chosen stage's map
is reduced to generic per-channel statistics (mean, standard deviation, maximum, generalised mean)
and the stages are concatenated: a fixed-length vector per image, no hand-made image statistic.

Works for any timm trunk that lists its stages in ``feature_info`` (timm's own convention; the
default EfficientNet-Lite trunk does). Stages are captured with forward hooks, so the features can
be read off a forward that runs anyway (the ranking's: models.dense_map) at no extra forward.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import cv2
import numpy as np
import torch

STATS = ("mean", "std", "max", "gem")
# What the frame path (models.dense_map) captures: strides 4, 8 and 16 of the default trunk,
# chosen on validation (bench.textile_midlayer, bench.goodpart_mid; BENCHMARKS.md).
DEFAULT_STAGES = (1, 2, 3)
DEFAULT_STATS = ("mean", "std", "max")
GEM_P = 3.0  # the generalised-mean exponent of Radenović et al. (2018)


class UnsupportedTower(ValueError):
    """The image tower has no trunk with listed stages, so its mid-level features cannot be read."""


def _trunk(tower: torch.nn.Module) -> torch.nn.Module:
    trunk = getattr(tower, "trunk", tower)  # open_clip's TimmModel keeps the timm model as .trunk
    info = getattr(trunk, "feature_info", None)
    if not info:
        raise UnsupportedTower(
            f"the image tower {type(tower).__name__} has no timm trunk with feature_info stages: "
            "mid-level features need a timm CNN trunk (e.g. the default tf_efficientnet_lite0)"
        )
    return trunk


def stages(tower: torch.nn.Module) -> list[dict]:
    """The trunk's stages in order: {"module", "reduction" (stride), "num_chs"} each."""
    info = _trunk(tower).feature_info
    dicts = info.get_dicts() if hasattr(info, "get_dicts") else list(info)
    return [{"module": d["module"], "reduction": int(d["reduction"]), "num_chs": int(d["num_chs"])} for d in dicts]


def feature_dim(tower: torch.nn.Module, picks: Sequence[int], stats: Sequence[str]) -> int:
    """Length of the vector pooled_stats returns for these stages and statistics."""
    info = stages(tower)
    return sum(info[i]["num_chs"] for i in picks) * len(stats)


def spec(picks: Sequence[int], stats: Sequence[str]) -> str:
    """A short name for a choice of stages and statistics (recorded where the rows are used)."""
    return f"stages={','.join(map(str, picks))};stats={','.join(stats)}"


def _check(tower: torch.nn.Module, picks: Sequence[int], stats: Sequence[str]) -> list[dict]:
    info = stages(tower)
    bad = [i for i in picks if not 0 <= i < len(info)]
    if bad or not picks:
        raise ValueError(f"stages must be a non-empty subset of 0..{len(info) - 1}, got {list(picks)}")
    unknown = [s for s in stats if s not in STATS]
    if unknown or not stats:
        raise ValueError(f"statistics must be a non-empty subset of {STATS}, got {list(stats)}")
    return [info[i] for i in picks]


@contextmanager
def capture(tower: torch.nn.Module, picks: Sequence[int]) -> Iterator[list[torch.Tensor]]:
    """While open, each trunk forward appends the chosen stages' outputs [B, C, h, w] (in `picks`
    order) to the yielded list; the hooks are removed on exit, whatever happens."""
    chosen = _check(tower, picks, STATS[:1])
    modules = dict(_trunk(tower).named_modules())
    maps: list[torch.Tensor] = []
    handles = [
        modules[d["module"]].register_forward_hook(lambda _m, _i, out: maps.append(out.detach())) for d in chosen
    ]
    try:
        yield maps
    finally:
        for h in handles:
            h.remove()


def pooled_stats(maps: Sequence[torch.Tensor], stats: Sequence[str]) -> np.ndarray:
    """Stage maps [B, C_i, h_i, w_i] -> [B, sum_i C_i * len(stats)] float32: for each stage in
    order, each statistic over all locations, one value per channel."""
    unknown = [s for s in stats if s not in STATS]
    if unknown or not stats:
        raise ValueError(f"statistics must be a non-empty subset of {STATS}, got {list(stats)}")
    out = []
    for m in maps:
        flat = m.float().flatten(2)  # [B, C, h*w]
        for s in stats:
            if s == "mean":
                out.append(flat.mean(-1))
            elif s == "std":
                out.append(flat.std(-1, unbiased=False))
            elif s == "max":
                out.append(flat.amax(-1))
            else:  # gem: the stage outputs are signed (linear bottlenecks), so only the positive part
                out.append(flat.clamp(min=1e-6).pow(GEM_P).mean(-1).pow(1.0 / GEM_P))
    return torch.cat(out, dim=1).cpu().numpy().astype(np.float32)


def _tensor(rgb: np.ndarray, size: int | None, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    h, w = rgb.shape[:2]
    if size and min(h, w) != size:  # short side to `size`, aspect kept (no crop: the trunk is convolutional)
        scale = size / min(h, w)
        shape = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, shape, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    x = (rgb.astype(np.float32) - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def trunk_features(
    tower: torch.nn.Module,
    images: Sequence[np.ndarray],
    picks: Sequence[int] = (1, 2, 3),
    stats: Sequence[str] = ("mean", "std", "max"),
    input_size: int | None = None,
    batch_size: int = 16,
) -> np.ndarray:
    """uint8 HxWx3 RGB images -> [N, feature_dim] float32 pooled stage statistics.

    `input_size` None keeps each image at its native resolution; else its short side is resized to
    it. Images of one shape share a batch. Normalisation is the tower's own (preprocess_cfg)."""
    _check(tower, picks, stats)
    cfg = getattr(tower, "preprocess_cfg", {}) or {}
    mean = np.asarray(cfg.get("mean", (0.5, 0.5, 0.5)), np.float32) * 255.0
    std = np.asarray(cfg.get("std", (0.5, 0.5, 0.5)), np.float32) * 255.0
    device = next(tower.parameters()).device
    out = np.zeros((len(images), feature_dim(tower, picks, stats)), np.float32)
    tensors = [_tensor(np.asarray(im, np.uint8), input_size, mean, std) for im in images]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(tensors):
        by_shape.setdefault(tuple(t.shape), []).append(i)
    trunk = _trunk(tower)
    with torch.inference_mode(), capture(tower, picks) as maps:
        for idx in by_shape.values():
            for start in range(0, len(idx), batch_size):
                part = idx[start : start + batch_size]
                maps.clear()
                trunk.forward_features(torch.stack([tensors[i] for i in part]).to(device))
                out[part] = pooled_stats(maps, stats)
    return out
