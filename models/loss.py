"""RANKCLIP loss: symmetric InfoNCE plus list-wise Plackett-Luce ranking-consistency terms.

Follows the RANKCLIP formulation: the cross-modal lists compare row i of S = s*U V^T
with row i of S^T, the in-modal lists compare rows of G_I = s*U U^T and G_T = s*V V^T, each in both
directions. Every ListMLE is the full-length Plackett-Luce NLL (sum over positions), averaged over
rows, divided by B and by 32, and scaled by the warm-up weight w (at most 2, i.e. 1/16 per term).
"""

from __future__ import annotations

import math
import numbers
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable
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
# Sort CPU keys with numpy (SIMD); False forces torch.sort, the CUDA branch, so tests can pin it.
_NUMPY_CPU_SORT = True
# CPU sort blocks of about this many bytes stay in L2 for the masking pass that follows the sort.
_SORT_BLOCK_BYTES = 1 << 20
# Below this many keys per thread, handing work to another thread costs more than it saves.
_SORT_MIN_PER_THREAD = 1 << 17
# (pid, pool) of the CPU sort threads, created on first use.
_SORT_POOL: tuple[int, ThreadPoolExecutor] | None = None


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


def _float_order_bits(target: Tensor, scratch: Tensor) -> Tensor:
    """int32 copy of float32 `target`, rows contiguous, whose integer order is the float order.

    `scratch` is an int32 tensor of the same shape that this overwrites.
    """
    bits = torch.empty(target.shape, dtype=torch.float32, device=target.device)
    # + 0.0 turns -0.0 into +0.0: floats that compare equal must get equal bits (and so tie).
    if target.is_contiguous():
        torch.add(target, 0.0, out=bits)
    else:  # e.g. a transposed view: copy_ transposes blockwise, an add would read with a stride
        bits.copy_(target).add_(0.0)
    bits = bits.view(torch.int32)
    # IEEE floats are sign-magnitude: flipping the magnitude bits of negatives makes them ordered as
    # two's-complement integers (-inf lowest, then the negatives, 0, the positives).
    sign = torch.bitwise_right_shift(bits, 31, out=scratch)
    bits ^= sign.bitwise_and_(0x7FFFFFFF)
    return bits


def _sort_pool() -> ThreadPoolExecutor:
    """The process's pool of CPU sort threads (a forked child, whose threads are gone, makes its own)."""
    global _SORT_POOL
    if _SORT_POOL is None or _SORT_POOL[0] != os.getpid():
        pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="rankclip-sort")
        _SORT_POOL = (os.getpid(), pool)
    return _SORT_POOL[1]


def _numpy_sort_low_bits_(keys: np.ndarray, mask: int) -> None:
    """Sort every row of `keys` in place, then keep the bits in `mask`: numpy's SIMD sort.

    Rows go in blocks of about 1 MiB, so the masking pass finds its block still in cache; the blocks
    are shared among torch's intra-op thread count (numpy releases the GIL while it sorts).
    """
    rows_per_block = max(1, _SORT_BLOCK_BYTES // max(1, keys.itemsize * keys.shape[1]))
    blocks = [keys[r : r + rows_per_block] for r in range(0, keys.shape[0], rows_per_block)]

    def sort_blocks(part: list[np.ndarray]) -> None:
        for block in part:
            block.sort(axis=1)
            np.bitwise_and(block, mask, out=block)

    workers = min(torch.get_num_threads(), len(blocks), keys.size // _SORT_MIN_PER_THREAD)
    if workers < 2:
        sort_blocks(blocks)
        return
    for done in [_sort_pool().submit(sort_blocks, blocks[w::workers]) for w in range(workers)]:
        done.result()


def _sorted_low_bits(keys: Tensor, width: int) -> Tensor:
    """Rows of int64 `keys` sorted ascending, reduced to their low `width` bits (in place on the CPU)."""
    mask = (1 << width) - 1
    if keys.device.type == "cpu" and _NUMPY_CPU_SORT:
        # ~10x torch's CPU row sort. The keys of a row are distinct, so every correct sort gives the
        # same result: this branch and the torch.sort one (CUDA) agree exactly.
        _numpy_sort_low_bits_(keys.numpy(), mask)
        return keys
    return torch.sort(keys, dim=1).values.bitwise_and_(mask)


def _order_and_scratch(target: Tensor, perm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Columns of each row listed by ascending `target` (worst -> best), ties in the order of `perm`.

    That is exactly perm[argsort(target[:, perm], stable=True)], the reference's random tie-break,
    computed by one unstable sort of distinct int64 keys [float order bits | rank in perm | column]:
    the rank decides ties and the column is read back from the sorted key's low bits, so a
    checkpoint recomputation reproduces the same order. (NaN targets, which make the loss NaN
    anyway, have no defined place.) Also returns two [R, n] scratch tensors of target's dtype
    (contents undefined) left over from building the keys: a fresh B x B tensor costs page faults
    on the CPU, so the caller reuses them.
    """
    n = target.shape[1]
    width = max(1, (n - 1).bit_length())
    if target.dtype != torch.float32 or 32 + 2 * width > 63:
        # float64 (tests, gradcheck) or n > 32768: the key does not fit in an int64.
        order = perm[torch.argsort(target[:, perm], dim=1, stable=True)]
        return order, *torch.empty((2, *target.shape), dtype=target.dtype, device=target.device)
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(n, device=perm.device)
    column_code = (rank << width) | torch.arange(n, device=perm.device)
    scratch = torch.empty(target.shape, dtype=torch.int32, device=target.device)
    bits = _float_order_bits(target, scratch)
    keys = torch.empty(target.shape, dtype=torch.int64, device=target.device)
    keys.copy_(bits)
    # keys = bits * 2^(2 width) + column_code in one pass (a multiply, as the bits may be negative).
    torch.add(column_code, keys, alpha=1 << 2 * width, out=keys)
    order = _sorted_low_bits(keys, width)
    return order, bits.view(torch.float32), scratch.view(torch.float32)


class _OfficialListMLE(torch.autograd.Function):
    """Per-row official ListMLE of `scores` in the order of `target`, with a hand-written backward.

    Forward is the reference recipe (shift by the non-detached row max, exp, suffix sums of the
    best -> worst list, log(. + eps)) on the list taken worst -> best, where those suffix sums are
    plain prefix sums c: no flips, and the reference's flip-cumsum-flip summation order. Autograd
    would save and create several more [R, n] tensors; this backward needs only e = exp(x - max)
    and c (at large B each [R, n] pass and each fresh [R, n] tensor costs milliseconds on a CPU):
        d/dx_j = e_j * sum_{k >= j} w_k / (c_k + eps) - w_j, plus, through the max,
        sum_k w_k * eps / (c_k + eps) on the row's argmax (0 without eps: PL is shift-invariant).
    Differentiable once: a second derivative through the official numerics raises (none is used).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, scores: Tensor, target: Tensor, perm: Tensor, weights: Tensor | None
    ) -> Tensor:
        order, x, c_eps = _order_and_scratch(target, perm)
        torch.gather(scores, 1, order, out=x)  # scores listed worst -> best by the target
        top, arg = x.max(dim=1, keepdim=True)  # the reference's max: same argmax on tied scores
        x.sub_(top)
        # Sum_k w_k (log(c_k + eps) - x_k), with the x part summed before exp overwrites x.
        linear = x.sum(dim=1) if weights is None else (x * weights).sum(dim=1)
        e = x.exp_()
        torch.cumsum(e, dim=1, out=c_eps).add_(_OFFICIAL_EPS)
        logs = torch.log(c_eps)
        if weights is not None:
            logs.mul_(weights)
        ctx.save_for_backward(order, arg, e, c_eps, weights)
        return logs.sum(dim=1).sub_(linear)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rows: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        order, arg, e, c_eps, weights = ctx.saved_tensors
        gw = grad_rows[:, None] if weights is None else grad_rows[:, None] * weights
        # Suffix sums from the best end (adds the small terms first, like autograd's cumsum backward),
        # computed on a flipped copy: torch has no reverse cumsum.
        flipped = c_eps.flip(1)
        torch.div(gw.flip(1), flipped, out=flipped)
        tail = flipped.cumsum_(1).flip(1)
        shift = tail[:, :1] * _OFFICIAL_EPS  # eps * sum_k g w_k / (c_k + eps): the max's share
        g = torch.addcmul(-gw, tail, e, out=tail)  # e_j * tail_j - g w_j
        g.scatter_add_(1, arg, shift)
        # Every row of `order` is a permutation, so the scatter overwrites all of `flipped`.
        return flipped.scatter_(1, order, g), None, None, None


def _decay_weights(n: int, position_decay: str | None, like: Tensor) -> Tensor | None:
    """Per-column weights of the worst -> best list: column j is position k = n - j (1-based)."""
    if position_decay is None:
        return None
    k = torch.arange(n, 0, -1, device=like.device, dtype=like.dtype)
    return 1.0 / torch.log2(k + 1.0)


def _pl_rows(scores: Tensor, target: Tensor, perm: Tensor, numerics: str, position_decay: str | None) -> Tensor:
    """Per-row PL NLL of the order of `target` under `scores`; `perm` breaks target ties."""
    weights = _decay_weights(scores.shape[1], position_decay, scores)
    target = target.detach()  # used only through its order
    if numerics == "official":
        return _OfficialListMLE.apply(scores, target, perm, weights)
    with torch.no_grad():
        order = _order_and_scratch(target, perm)[0]
    x = scores.gather(1, order)  # listed worst -> best: logcumsumexp gives the suffix sums
    per_pos = torch.logcumsumexp(x, dim=1) - x
    return (per_pos if weights is None else per_pos * weights).sum(dim=1)


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
    u: Tensor,
    v: Tensor,
    s: Tensor,
    perms: Tensor,
    r0: int,
    r1: int,
    cross: bool,
    inmodal: bool,
    numerics: str,
    position_decay: str | None,
) -> Tensor:
    """Sums over rows r0:r1 of [CE(S) + CE(S^T), PL cross (both directions), PL in-modal (both)]."""
    full = r0 == 0 and r1 == u.shape[0]
    labels = torch.arange(r0, r1, device=u.device)
    img_rows = (u[r0:r1] * s) @ v.T  # rows of S
    # Rows of S^T. One contiguous copy serves the cross-entropy (which would copy a transposed view
    # itself), the ranking keys and the score gathers.
    txt_rows = img_rows.T.contiguous() if full else (v[r0:r1] * s) @ u.T
    ce = F.cross_entropy(img_rows, labels, reduction="sum") + F.cross_entropy(txt_rows, labels, reduction="sum")
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
        return (
            f"variant={self.variant!r}, numerics={self.numerics!r}, weight_cap={self.weight_cap}, "
            f"position_decay={self.position_decay!r}, row_chunk={self.row_chunk}"
        )

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
            perms = (
                torch.stack([_random_perm(batch, device, None) for _ in range(4)])
                if cross or inmodal
                else torch.empty(0, dtype=torch.long, device=device)
            )
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
