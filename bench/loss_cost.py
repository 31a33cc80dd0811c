"""Cost of the loss alone: CLIP vs RANKCLIP (official numerics), forward + backward.

    python -m bench.loss_cost [--batches 64,256,1024] [--dim 256] [--repeats N] [--out PATH]

Features are random, L2-normalised and require grad; s = 1/0.07 and progress = 1 (full ranking
weight). Memory: on CUDA, torch.cuda.max_memory_allocated over one step minus what was allocated
before it; on CPU (where tracemalloc cannot see torch's allocator) the growth of the process's peak
RSS (ru_maxrss) over the first step, measured in a fresh process per configuration with glibc's
mmap threshold lowered so that freed tensors leave the RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F

from models.loss import RankClipLoss

VARIANTS = ("clip", "rankclip")
_MIB = 2**20


def _measure(
    variant: str, batch: int, dim: int, repeats: int, device: str, row_chunk: int | None, threads: int
) -> tuple[float, int]:
    """Return (median ms per forward+backward, peak extra bytes of one step) for one configuration."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    u = F.normalize(torch.randn(batch, dim, generator=gen), dim=1).to(dev).requires_grad_()
    v = F.normalize(torch.randn(batch, dim, generator=gen), dim=1).to(dev).requires_grad_()
    scale = torch.tensor(1 / 0.07, device=dev, requires_grad=True)
    loss = RankClipLoss(variant, numerics="official", row_chunk=row_chunk)

    def step() -> None:
        u.grad = v.grad = scale.grad = None
        sum(loss(u, v, scale, progress=1.0).values()).backward()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    if dev.type == "cuda":
        step()  # warm-up: kernels, allocator
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        step()
        peak = torch.cuda.max_memory_allocated(dev) - base
    else:
        # ru_maxrss is a high-water mark in KiB (Linux): only the first full-size step in a fresh
        # process shows, so warm the code paths (lazy inits) up on a tiny batch first.
        small = [t.detach()[:8].clone().requires_grad_() for t in (u, v)]
        warm = RankClipLoss(variant, numerics="official", row_chunk=None if row_chunk is None else 4)
        sum(warm(*small, scale, progress=1.0).values()).backward()
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step()
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    # The median resists the odd slow call when other jobs share the machine.
    return statistics.median(times) * 1000, peak


def _run(variant: str, batch: int, args: argparse.Namespace) -> tuple[float, int]:
    params = (variant, batch, args.dim, args.repeats, args.device, args.row_chunk, args.threads)
    if args.device.startswith("cuda"):
        return _measure(*params)
    # Large blocks straight from mmap go back to the OS when freed, so the child's peak RSS tracks the
    # live tensors rather than glibc's heap fragmentation (the child inherits this at start-up).
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_measure, *params).result()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="64,128,256,512,1024,2048,4096", help="comma-separated batch sizes")
    p.add_argument("--dim", type=int, default=256, help="embedding dimension d")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per configuration (after a warm-up)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    # Fewer threads than cores gives steadier CPU figures when other jobs share the machine.
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    p.add_argument("--row-chunk", type=int, default=None, help="RankClipLoss row_chunk (default: unchunked)")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown table to this file")
    args = p.parse_args(argv)
    try:
        args.batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        p.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if min(args.repeats, args.dim, args.threads, *args.batches) < 1:
        p.error("--repeats, --dim, --threads and every batch must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Time both variants at every batch size and print a markdown table."""
    args = _parse(argv)
    on_cuda = args.device.startswith("cuda")
    where = torch.cuda.get_device_name(args.device) if on_cuda else platform.processor() or platform.machine()
    memory_kind = "CUDA max_memory_allocated" if on_cuda else "peak RSS growth (ru_maxrss)"
    lines = [
        "`" + " ".join(["python -m bench.loss_cost", *(sys.argv[1:] if argv is None else argv)]) + "`",
        f"torch {torch.__version__}, device {args.device} ({where}), {args.threads} threads, "
        f"d = {args.dim}, row_chunk = {args.row_chunk}, median of {args.repeats} calls after a warm-up; "
        f"memory = {memory_kind} of one forward+backward; load average at start "
        f"{os.getloadavg()[0]:.2f} (other jobs on the machine inflate CPU timings).",
        "",
        "| B | clip ms | rankclip ms | ratio | clip peak MiB | rankclip peak MiB | one B×B fp32 MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for batch in args.batches:
        (t_clip, m_clip), (t_rank, m_rank) = (_run(v, batch, args) for v in VARIANTS)
        row = (f"| {batch} | {t_clip:.1f} | {t_rank:.1f} | {t_rank / t_clip:.1f}× | {m_clip / _MIB:.1f} | "
               f"{m_rank / _MIB:.1f} | {4 * batch * batch / _MIB:.2f} |")
        print(row, flush=True)
        lines.append(row)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
