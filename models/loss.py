"""RANKCLIP loss: symmetric InfoNCE plus list-wise Plackett-Luce ranking-consistency terms.

Follows docs/rankclip-spec.md sections 3.2-3.5: the cross-modal lists compare row i of S = s*U V^T
with row i of S^T, the in-modal lists compare rows of G_I = s*U U^T and G_T = s*V V^T, each in both
directions. Every ListMLE is the full-length Plackett-Luce NLL (sum over positions), averaged over
rows, divided by B and by 32, and scaled by the warm-up weight w (at most 2, i.e. 1/16 per term).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

VARIANTS = ("clip", "rankclip", "rankclip_c", "rankclip_i")
NUMERICS = ("official", "exact")
POSITION_DECAYS = (None, "log2")

# The reference adds this inside log(suffix + eps); it is part of the "official" objective, not a
# mere guard: once a row spreads over ~23 logits the tail terms are dominated by it (spec 3.7).
_OFFICIAL_EPS = 1e-10
# Reference scaling: w(e)/32 per ListMLE direction, so 1/16 per term at the plateau w = 2.
_TERM_DIVISOR = 32.0
# The warm-up reaches its cap at this fraction of training and stays flat afterwards (spec P7).
_RAMP_END = 2.0 / 3.0


def _check_choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _check_progress(progress: float) -> None:
    if not isinstance(progress, numbers.Real) or not 0.0 <= float(progress) <= 1.0:
        raise ValueError(f"progress must be a number in [0, 1] (fraction of training done), got {progress!r}")


def ranking_weight(progress: float, cap: float = 2.0) -> float:
    """Warm-up weight w: 0 at the start, linear to `cap` at 2/3 of training, flat afterwards."""
    _check_progress(progress)
    if not isinstance(cap, numbers.Real) or not math.isfinite(cap) or cap < 0:
        raise ValueError(f"cap must be a finite number >= 0, got {cap!r}")
    return min(cap, cap * float(progress) / _RAMP_END)


def _compute_dtype(t: Tensor) -> torch.dtype:
    # Half/bfloat16 logits create spurious ties and underflow (spec P9): compute in at least fp32.
    # float64 stays float64 so that gradcheck and brute-force comparisons are meaningful.
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _no_autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, enabled=False)


def _random_perm(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    # Drawn on the CPU (or the generator's device) so a seed gives the same tie-break on any device.
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randperm(n, generator=generator, device=gen_device).to(device)


def _pl_rows(
    scores: Tensor, target: Tensor, perm: Tensor, numerics: str, position_decay: str | None
) -> Tensor:
    """Per-row PL NLL of the order of `target` under `scores`; `perm` breaks target ties."""
    with torch.no_grad():
        # Permute columns, sort stably, map back: ties end up in the random order of `perm`, and a
        # checkpoint recomputation reproduces exactly the same order. The list is taken worst ->
        # best, so the suffix sums of the best -> worst list are plain prefix sums: no flips (which
        # cost ~10% of the time), and the same summation order as the reference's flip-cumsum-flip.
        order = perm[torch.argsort(target[:, perm], dim=1, descending=False, stable=True)]
    x = scores.gather(1, order)  # scores listed worst -> best by the target
    if numerics == "exact":
        per_pos = torch.logcumsumexp(x, dim=1) - x
    else:
        # Reference recipe: shift by the (non-detached) row max, suffix sums of exp, log(. + eps).
        x = x - x.max(dim=1, keepdim=True).values
        per_pos = torch.log(torch.exp(x).cumsum(dim=1) + _OFFICIAL_EPS) - x
    if position_decay == "log2":
        # Column j of the reversed list is position k = n - j (1-based) of the ranking.
        k = torch.arange(x.shape[1], 0, -1, device=x.device, dtype=x.dtype)
        per_pos = per_pos / torch.log2(k + 1.0)
    return per_pos.sum(dim=1)


def plackett_luce_nll(
    scores: Tensor,
    target: Tensor,
    numerics: str = "official",
    position_decay: str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Plackett-Luce NLL of each row's target order (descending) under that row's scores.

    Returns the per-row loss [R] (sum over positions). The target is used only through its order
    (no gradient); ties are broken by one random column permutation shared by all rows.
    """
    _check_choice("numerics", numerics, NUMERICS)
    _check_choice("position_decay", position_decay, POSITION_DECAYS)
    if not isinstance(scores, Tensor) or not isinstance(target, Tensor):
        raise ValueError("scores and target must be torch tensors")
    if scores.dim() != 2 or scores.shape != target.shape:
        raise ValueError(
            f"scores and target must be 2-D [rows, items] of the same shape, got "
            f"{tuple(scores.shape)} and {tuple(target.shape)}"
        )
    dtype = _compute_dtype(scores)
    with _no_autocast(scores.device):
        perm = _random_perm(scores.shape[1], scores.device, generator)
        return _pl_rows(scores.to(dtype), target.detach().to(dtype), perm, numerics, position_decay)


def _chunk_sums(
    u: Tensor, v: Tensor, s: Tensor, perms: Tensor, r0: int, r1: int,
    cross: bool, inmodal: bool, numerics: str, position_decay: str | None,
) -> Tensor:
    """Sums over rows r0:r1 of [CE(S) + CE(S^T), PL cross (both directions), PL in-modal (both)]."""
    full = r0 == 0 and r1 == u.shape[0]
    labels = torch.arange(r0, r1, device=u.device)
    img_rows = (u[r0:r1] * s) @ v.T  # rows of S
    txt_rows = img_rows.T if full else (v[r0:r1] * s) @ u.T  # rows of S^T
    ce = (F.cross_entropy(img_rows, labels, reduction="sum")
          + F.cross_entropy(txt_rows, labels, reduction="sum"))
    cross_sum = in_sum = ce.new_zeros(())
    if cross:
        cross_sum = (
            _pl_rows(img_rows, txt_rows.detach(), perms[0], numerics, position_decay).sum()
            + _pl_rows(txt_rows, img_rows.detach(), perms[1], numerics, position_decay).sum()
        )
    if inmodal:
        gi_rows = (u[r0:r1] * s) @ u.T
        gt_rows = (v[r0:r1] * s) @ v.T
        in_sum = (
            _pl_rows(gi_rows, gt_rows.detach(), perms[2], numerics, position_decay).sum()
            + _pl_rows(gt_rows, gi_rows.detach(), perms[3], numerics, position_decay).sum()
        )
    return torch.stack([ce, cross_sum, in_sum])


def _check_features(image_features: Tensor, text_features: Tensor) -> None:
    for name, t in (("image_features", image_features), ("text_features", text_features)):
        if not isinstance(t, Tensor) or t.dim() != 2 or not t.is_floating_point():
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 2-D floating-point tensor [B, d], got {got}")
    if image_features.shape != text_features.shape or image_features.shape[0] < 1:
        raise ValueError(
            f"image_features and text_features must both be [B, d] with B >= 1, got "
            f"{tuple(image_features.shape)} and {tuple(text_features.shape)}"
        )


def _as_scale(logit_scale: Tensor | float, like: Tensor) -> Tensor:
    if isinstance(logit_scale, Tensor):
        if logit_scale.numel() != 1:
            raise ValueError(f"logit_scale must be a scalar, got shape {tuple(logit_scale.shape)}")
        return logit_scale.reshape(()).to(like.dtype)
    if not isinstance(logit_scale, numbers.Real) or not math.isfinite(logit_scale) or logit_scale <= 0:
        raise ValueError(f"logit_scale must be the positive scale s = exp(theta), got {logit_scale!r}")
    return torch.tensor(float(logit_scale), device=like.device, dtype=like.dtype)


class RankClipLoss(nn.Module):
    """CLIP / RANKCLIP loss over an already all-gathered batch; returns named, weighted terms."""

    def __init__(
        self,
        variant: str = "rankclip",
        numerics: str = "official",
        weight_cap: float = 2.0,
        position_decay: str | None = None,
        row_chunk: int | None = None,
    ) -> None:
        super().__init__()
        _check_choice("variant", variant, VARIANTS)
        _check_choice("numerics", numerics, NUMERICS)
        _check_choice("position_decay", position_decay, POSITION_DECAYS)
        ranking_weight(0.0, weight_cap)  # validates the cap
        bad_chunk = isinstance(row_chunk, bool) or not isinstance(row_chunk, int) or row_chunk < 1
        if row_chunk is not None and bad_chunk:
            raise ValueError(f"row_chunk must be None or a positive int, got {row_chunk!r}")
        self.variant, self.numerics, self.weight_cap = variant, numerics, float(weight_cap)
        self.position_decay, self.row_chunk = position_decay, row_chunk

    def extra_repr(self) -> str:
        return (f"variant={self.variant!r}, numerics={self.numerics!r}, weight_cap={self.weight_cap}, "
                f"position_decay={self.position_decay!r}, row_chunk={self.row_chunk}")

    def forward(
        self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor | float, progress: float
    ) -> dict[str, Tensor]:
        """Return {"contrastive_loss", "rank_cross_loss", "rank_in_loss"}; the trainer sums them."""
        _check_features(image_features, text_features)
        w = ranking_weight(progress, self.weight_cap)
        # w == 0 (start of training) or variant "clip": skip the O(B^2 log B) ranking work entirely.
        cross = w > 0 and self.variant in ("rankclip", "rankclip_c")
        inmodal = w > 0 and self.variant in ("rankclip", "rankclip_i")
        device, dtype = image_features.device, _compute_dtype(image_features)
        with _no_autocast(device):
            u, v = image_features.to(dtype), text_features.to(dtype)
            s = _as_scale(logit_scale, u)
            batch = u.shape[0]
            # One tie-break permutation per ListMLE direction (as the reference), shared by all chunks.
            perms = (torch.stack([_random_perm(batch, device, None) for _ in range(4)])
                     if cross or inmodal else torch.empty(0, dtype=torch.long, device=device))
            chunk = self.row_chunk or batch
            use_ckpt = chunk < batch and torch.is_grad_enabled()
            sums = u.new_zeros(3)
            for r0 in range(0, batch, chunk):
                r1 = min(r0 + chunk, batch)
                args = (u, v, s, perms, r0, r1, cross, inmodal, self.numerics, self.position_decay)
                # Checkpointing keeps only the scalar sums: backward recomputes the chunk's
                # [chunk, B] matrices instead of holding B x B activations for the whole batch.
                part = checkpoint(_chunk_sums, *args, use_reentrant=False) if use_ckpt else _chunk_sums(*args)
                sums = sums + part
        scale = w / _TERM_DIVISOR / batch**2  # mean over rows, then / B (per position), then w/32
        return {
            "contrastive_loss": sums[0] / (2 * batch),
            "rank_cross_loss": sums[1] * scale if cross else u.new_zeros(()),
            "rank_in_loss": sums[2] * scale if inmodal else u.new_zeros(()),
        }
