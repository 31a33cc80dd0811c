"""Cost of RANKCLIP vs CLIP: one whole training step (same model, same batch), and the loss alone.

    python -m bench.loss_cost [--quick] [--models inspector-tiny,inspector-default-v1]
                              [--batches 64,128,256,512,1024,2048,4096] [--repeats 5] [--step-repeats 3]
                              [--device cpu|cuda] [--row-chunk N] [--threads T] [--parts step,loss]

Whole step: models.train.fit(), the real training loop, for 2 + --step-repeats steps at global
batch B with loss_variant "clip" or "rankclip" and nothing else changed. Each model trains as its
recipe does (models.recipes): towers frozen, the last image block open (unfreeze_image_blocks=1),
frozen work cached (models.tower_cache.TowerCache: the activation at the input of the last image block,
the pooled text output per caption), so a step runs the open block, the image tail, both
projections, the loss, the backward and AdamW. The timed steps are the third onwards: the first has
ranking weight 0 (progress 0: RANKCLIP skips its ranking terms) and the second warms the ranking
path. The data are 64 distinct generated parts repeated to B items (fit needs B items; cost does
not depend on the pixels), their captions fixed, so no step encodes new text.

Loss alone: RankClipLoss forward + backward on random L2-normalised features [B, d] (d = 256, the
default model's embedding size), s = 1/0.07, progress = 1 (full ranking weight).

Each configuration runs in a fresh process (CPU). Memory, measured after the timings: on CUDA,
torch.cuda.max_memory_allocated minus what was allocated before; on CPU (where tracemalloc cannot
see torch's allocator) the growth of the resident set's high-water mark over one loss call or a
2-step fit() run (bench.perf_common.PeakRSS: glibc mmaps every block over 64 KiB, so freed tensors
leave the RSS; the kernel's mark is reset first). For the whole step that peak includes AdamW's
state of the trained parameters (listed). Times are medians.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch
import torch.nn.functional as F

from bench.perf_common import (
    NO_GPU,
    PeakRSS,
    Target,
    command_line,
    int_list,
    machine,
    md_table,
    write_results,
)
from models.loss import RankClipLoss

VARIANTS = ("clip", "rankclip")
LOSS_VARIANTS = ("clip", "rankclip_c", "rankclip_i", "rankclip")
_MIB = 2**20
DISTINCT = 64  # distinct generated parts behind every whole-step batch
TARGET_STEP_RATIO, TARGET_STEP_BATCH, TARGET_LOSS_RATIO = 1.10, 256, 4.0


# ---------------------------------------------------------------- the loss alone


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

    step()  # warm-up: kernels, allocator, lazy inits
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    # Memory after the timings (PeakRSS slows small allocations).
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        step()
        peak = torch.cuda.max_memory_allocated(dev) - base
    else:
        with PeakRSS() as rss:
            step()
        peak = rss.peak
    # The median resists the odd slow call when other jobs share the machine.
    return statistics.median(times) * 1000, peak


# ---------------------------------------------------------------- one whole training step


class _Repeated:
    """`n` items cycling through a small dataset, with each item's caption fixed (epoch 0)."""

    def __init__(self, base: Any, n: int) -> None:
        self.base, self.n = base, n
        self.captions = [base.caption(i) for i in range(len(base))]

    def __len__(self) -> int:
        return self.n

    def caption(self, index: int) -> str:
        return self.captions[index % len(self.captions)]

    def __getitem__(self, index: int) -> tuple[Any, str]:
        return self.base.load_image(index % len(self.base)), self.caption(index)


def _step_measure(
    ref: str,
    variant: str,
    batch: int,
    steps: int,
    device: str,
    row_chunk: int | None,
    threads: int,
    n_open: int | None = None,
) -> dict[str, Any]:
    """Median ms of a fit() step and the peak memory growth of the run, in this (fresh) process."""
    import numpy as np

    from models.factory import load_model
    from models.recipes import RECIPES
    from models.synth import SyntheticDefectDataset, generate
    from models.tower_cache import TowerCache
    from models.train import TrainConfig, fit

    torch.set_num_threads(threads)
    if n_open is None:  # as the model's recipe trains it (inspector-default*: the default recipe)
        recipe = next((r for r in RECIPES.values() if ref.startswith(r.arch)), RECIPES["default"])
        n_open = recipe.unfreeze_image_blocks
    bundle = load_model(ref, device=device)
    size = bundle.model.visual.preprocess_cfg["size"]
    base = SyntheticDefectDataset(
        generate(
            DISTINCT, seed=0, size=size if isinstance(size, int) else size[0], split="train", textile_fraction=0.0
        ),
        seed=0,
    )
    cache = TowerCache(bundle, base, n_open)
    dev = torch.device(device)

    def config(b: int, n_steps: int) -> TrainConfig:
        return TrainConfig(
            steps=n_steps,
            batch_size=b,
            lr=1e-4,
            warmup_steps=1,
            loss_variant=variant,
            unfreeze_image_blocks=n_open,
            device=device,
            progress_bar=False,
            row_chunk=row_chunk,
            seed=0,
        )

    def run(b: int, n_steps: int) -> list[float]:
        stamps: list[float] = []
        fit(
            bundle,
            _Repeated(base, b),
            config(b, n_steps),
            lambda _info: stamps.append(time.perf_counter()),
            cache=cache.subset(np.arange(b) % DISTINCT),
        )
        return [1000 * (t1 - t0) for t0, t1 in zip(stamps[1:], stamps[2:])]  # steps 3.. (see the docstring)

    run(8, 3)  # warm the code paths (autograd, AdamW, the ranking terms) on a tiny batch
    times = run(batch, steps)
    # Memory after the timings (PeakRSS slows small allocations): a fresh 2-step run at batch B, whose
    # second step has the full ranking weight.
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        run(batch, 2)
        peak = torch.cuda.max_memory_allocated(dev) - before
    else:
        with PeakRSS() as rss:
            run(batch, 2)
        peak = rss.peak
    trained = sum(p.numel() for p in _trained_params(bundle.model, n_open))
    return {
        "ms": statistics.median(times),
        "all_ms": times,
        "peak_bytes": peak,
        "n_open": n_open,
        "trained_params": trained,
        "adamw_state_bytes": 2 * 4 * trained,
    }


def _trained_params(model: torch.nn.Module, n_open: int) -> list[torch.nn.Parameter]:
    from models.freeze import apply_freezing
    from models.train import TrainConfig

    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        apply_freezing(model, TrainConfig(unfreeze_image_blocks=n_open))
        return [p for p in model.parameters() if p.requires_grad]
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _attempt(run: Any, fn: Any, *params: Any) -> Any:
    """run(fn, *params), or {"error": ...} when it runs out of memory or its process dies."""
    try:
        return run(fn, *params)
    except (RuntimeError, MemoryError, BrokenProcessPool) as exc:  # CUDA OOM is a RuntimeError
        return {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"}


def _in_child(fn: Any, *params: Any) -> Any:
    """Run fn(*params) in a fresh spawned process: each configuration starts from the same state."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *params).result()


# ---------------------------------------------------------------- the command


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.loss_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: batches 64 and 256, few repeats")
    p.add_argument("--parts", default="step,loss", help="step (whole training step), loss (the loss alone)")
    p.add_argument("--models", default="inspector-tiny,inspector-default-v1", help="models for the whole step")
    p.add_argument(
        "--batches",
        default=None,
        help="comma-separated global batch sizes (default: 64 ... 4096 on CPU, 64 ... 32768 on CUDA)",
    )
    p.add_argument("--dim", type=int, default=256, help="embedding dimension d for the loss alone")
    p.add_argument("--repeats", type=int, default=5, help="timed calls of the loss alone (after a warm-up)")
    p.add_argument("--step-repeats", type=int, default=3, help="timed training steps (after 2 untimed ones)")
    p.add_argument(
        "--unfreeze-image-blocks",
        type=int,
        default=None,
        help="open image blocks in the whole step (default: the model's recipe, 1)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    # Fewer threads than cores gives steadier CPU figures when other jobs share the machine.
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    p.add_argument(
        "--row-chunk",
        type=int,
        default=None,
        help="RankClipLoss row_chunk, for both variants (default: unchunked; use e.g. 4096 for B >= 16384 on a GPU)",
    )
    args = p.parse_args(argv)
    on_cuda = args.device.startswith("cuda")
    default = "64,128,256,512,1024,2048,4096" + (",8192,16384,32768" if on_cuda else "")
    try:
        args.batches = int_list(args.batches or ("64,256" if args.quick else default))
    except ValueError as exc:
        p.error(f"--batches: {exc}")
    args.parts = {x.strip() for x in args.parts.split(",") if x.strip()}
    if not args.parts or args.parts - {"step", "loss"}:
        p.error("--parts takes step and/or loss")
    if args.quick:
        args.repeats, args.step_repeats = 2, 1
    if min(args.repeats, args.step_repeats, args.dim, args.threads) < 1:
        p.error("--repeats, --step-repeats, --dim and --threads must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Time both variants at every batch size; write bench/results/loss_cost.{json,md}."""
    args = _parse(argv)
    started = time.monotonic()
    on_cuda = args.device.startswith("cuda")
    info = machine(args.device, args.threads)
    run = (lambda fn, *a: fn(*a)) if on_cuda else _in_child
    figures: dict[str, Any] = {"step": {}, "loss": [], "row_chunk": args.row_chunk}
    body: list[str] = []
    body_errors: list[str] = []
    memory_kind = (
        "CUDA max_memory_allocated growth" if on_cuda else "growth of the RSS high-water mark (VmHWM, reset first)"
    )

    if "step" in args.parts:
        for ref in [m for m in args.models.split(",") if m]:
            rows, entries = [], []
            for batch in args.batches:
                pair = {
                    v: _attempt(
                        run,
                        _step_measure,
                        ref,
                        v,
                        batch,
                        2 + args.step_repeats,
                        args.device,
                        args.row_chunk,
                        args.threads,
                        args.unfreeze_image_blocks,
                    )
                    for v in VARIANTS
                }
                c, r = pair["clip"], pair["rankclip"]
                failed = [f"{v}: {x['error']}" for v, x in pair.items() if "error" in x]
                entry = {"batch": batch, **pair, "ratio": None if failed else r["ms"] / c["ms"]}
                entries.append(entry)
                if failed:
                    rows.append(
                        [
                            batch,
                            *(f"{x['ms']:.1f}" if "ms" in x else "failed" for x in (c, r)),
                            "",
                            *(f"{x['peak_bytes'] / _MIB:.1f}" if "ms" in x else "" for x in (c, r)),
                        ]
                    )
                    print(f"step {ref} B={batch}: FAILED {'; '.join(failed)}", flush=True)
                    body_errors.append(f"{ref}, B = {batch}: " + "; ".join(failed))
                    continue
                rows.append(
                    [
                        batch,
                        f"{c['ms']:.1f}",
                        f"{r['ms']:.1f}",
                        f"{entry['ratio']:.2f}",
                        f"{c['peak_bytes'] / _MIB:.1f}",
                        f"{r['peak_bytes'] / _MIB:.1f}",
                    ]
                )
                print(
                    f"step {ref} B={batch}: clip {c['ms']:.1f} ms, rankclip {r['ms']:.1f} ms (x{entry['ratio']:.2f})",
                    flush=True,
                )
            figures["step"][ref] = entries
            ok = next((e["clip"] for e in entries if "ms" in e["clip"]), None)
            what = (
                ""
                if ok is None
                else (
                    f"; last {ok['n_open']} image block(s) open; {ok['trained_params']:,} trained parameters, AdamW state "
                    f"{ok['adamw_state_bytes'] / _MIB:.1f} MiB"
                )
            )
            body += [
                f"## One training step, {ref} (fit(); towers frozen, frozen work cached{what})",
                "",
                md_table(["B", "clip ms", "rankclip ms", "ratio", "clip peak MiB", "rankclip peak MiB"], rows),
                "",
            ]
    if "loss" in args.parts:
        rows = []
        for batch in args.batches:
            m = {
                v: _attempt(run, _measure, v, batch, args.dim, args.repeats, args.device, args.row_chunk, args.threads)
                for v in LOSS_VARIANTS
            }
            failed = [f"{v}: {x['error']}" for v, x in m.items() if isinstance(x, dict)]
            if failed:
                print(f"loss B={batch}: FAILED {'; '.join(failed)}", flush=True)
                body_errors.append(f"loss alone, B = {batch}: " + "; ".join(failed))
                rows.append([batch, *(["failed"] * 8)])
                continue
            (t_clip, m_clip), (t_rank, m_rank) = m["clip"], m["rankclip"]
            figures["loss"].append(
                {
                    "batch": batch,
                    "clip_ms": t_clip,
                    "rankclip_ms": t_rank,
                    "ratio": t_rank / t_clip,
                    "clip_peak_bytes": m_clip,
                    "rankclip_peak_bytes": m_rank,
                    "rankclip_c_ms": m["rankclip_c"][0],
                    "rankclip_i_ms": m["rankclip_i"][0],
                }
            )
            rows.append(
                [
                    batch,
                    f"{t_clip:.1f}",
                    f"{m['rankclip_c'][0]:.1f}",
                    f"{m['rankclip_i'][0]:.1f}",
                    f"{t_rank:.1f}",
                    f"{t_rank / t_clip:.2f}",
                    f"{m_clip / _MIB:.1f}",
                    f"{m_rank / _MIB:.1f}",
                    f"{4 * batch * batch / _MIB:.2f}",
                ]
            )
            print(
                f"loss B={batch}: clip {t_clip:.1f} ms, rankclip {t_rank:.1f} ms (x{t_rank / t_clip:.2f})", flush=True
            )
        body += [
            f"## The loss alone (forward + backward, d = {args.dim}, random features)",
            "",
            md_table(
                [
                    "B",
                    "clip ms",
                    "rankclip_c ms",
                    "rankclip_i ms",
                    "rankclip ms",
                    "rankclip / clip",
                    "clip peak MiB",
                    "rankclip peak MiB",
                    "one BxB fp32 MiB",
                ],
                rows,
            ),
            "",
            "rankclip_c: CLIP + the cross-modal ranking terms; rankclip_i: CLIP + the in-modal ones; rankclip: "
            "both (the trained objective). Each ranking term sorts a B x B target matrix: one unstable sort of "
            "packed int64 keys (float order, tie-break rank, column), numpy's on the CPU, torch.sort on CUDA.",
            "",
        ]
    if body_errors:
        body += ["Failed configurations (out of memory or the process died):", "", *(f"- {e}" for e in body_errors), ""]

    targets = []
    default = next((m for m in figures["step"] if m.startswith("inspector-default")), None)
    t_step = Target(
        f"whole step RANKCLIP / CLIP, default model, B = {TARGET_STEP_BATCH}", f"<= {TARGET_STEP_RATIO:.2f}"
    )
    at = (
        [e for e in figures["step"].get(default, []) if e["batch"] == TARGET_STEP_BATCH and e["ratio"]]
        if default
        else []
    )
    if at:
        t_step.check(at[0]["ratio"], TARGET_STEP_RATIO, "{:.2f}x")
    else:
        t_step.skip("not run (default model or B=256 not in this run)")
    targets.append(t_step)
    if figures["loss"]:
        worst = max(figures["loss"], key=lambda e: e["ratio"])
        targets.append(
            Target("loss alone RANKCLIP / CLIP, worst batch", f"<= {TARGET_LOSS_RATIO:.0f}x").check(
                worst["ratio"],
                TARGET_LOSS_RATIO,
                "{:.2f}x",
                note=f"at B = {worst['batch']}; "
                + ", ".join(f"B={e['batch']}: {e['ratio']:.2f}x" for e in figures["loss"]),
            )
        )
    gpu = Target("GPU: batch up to 32 768 with row_chunk", "runs; time and memory recorded")
    if on_cuda:
        done = [e["batch"] for e in figures["loss"]] + [
            e["batch"] for es in figures["step"].values() for e in es if e["ratio"]
        ]
        big = max(done, default=0)
        gpu.measured, gpu.met = f"largest batch that ran: {big}", big >= 32768
        gpu.note = f"row_chunk = {args.row_chunk}" + (f"; failed: {len(body_errors)}" if body_errors else "")
    else:
        gpu.skip(NO_GPU + " (`python -m bench.loss_cost --device cuda --row-chunk 4096`)")
    targets.append(gpu)
    notes = [f"Memory: {memory_kind}.", f"torch threads: {args.threads}; row_chunk: {args.row_chunk}."]
    if args.quick:
        notes.append("QUICK RUN: two batch sizes, one timed step; a smoke test, not the record.")
    write_results(
        "loss_cost",
        command=command_line("bench.loss_cost", argv),
        info=info,
        title="Loss cost: RANKCLIP vs CLIP",
        targets=targets,
        figures=figures,
        body="\n".join(body),
        notes=notes,
        started=started,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
