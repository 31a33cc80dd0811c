"""Quality benchmark: CLIP vs RANKCLIP vs RANKCLIP^C vs RANKCLIP^I, same recipe, data, steps and seeds.

    python -m bench.quality [--seeds 0,1,2] [--variants clip,rankclip,rankclip_c,rankclip_i]
                            [--benchmarks defects,textile,elpv] [--steps 600] [--open-blocks 0]
                            [--out bench/results/quality.json]

For every (variant, seed): train inspector-default on the generated typed-defect training set
(models.recipes, the bench recipe below), then
 1. held-out typed defects: held-out seed textures, held-out paraphrases as label descriptions:
    top-1, top-3, MRR, per-label recall;
 2. textiles (conformal-clip-data, MIT): fine-tune that model on k = 10 and 50 images per class
    (ok/local/global, captions from inspector/library/seeds/textiles.yaml), test on the rest: accuracy;
 3. ELPV (elpv-dataset, CC BY-NC-SA 4.0, benchmark only): fine-tune on a stratified 75 % split with
    operator labels (functional p = 0 -> "ok", defective p >= 0.5 -> "defective"; p = 1/3 cells are
    left out of training as an operator would not confirm them either way), test on the other 25 %:
    AUROC defective (p >= 0.5) vs functional (p = 0), binary accuracy (truth p >= 0.5), Spearman of the
    defect score with the graded probability (all test cells).
Fine-tuning uses the same loss variant as the base model. Frozen work is computed once and shared by
every run (models.tower_cache.TowerCache): the frozen towers are identical for all runs by construction.
Results: a markdown table on stdout and JSON in --out, with mean +- std over seeds and the paired
difference RANKCLIP - CLIP (per seed, then mean +- std).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import metrics
from models.factory import create_model
from models.recipes import (
    embed_cached_images,
    embed_texts,
    evaluate_cached,
    get_recipe,
    heldout_samples,
    ranking_metrics,
    training_samples,
)
from models.synth import SyntheticDefectDataset
from models.tower_cache import TowerCache
from models.train import fit

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("clip", "rankclip", "rankclip_c", "rankclip_i")
BENCHMARKS = ("defects", "textile", "elpv")


class LabelCaptions:
    """Items with one label each; the caption is one of the label's descriptions, redrawn per epoch."""

    def __init__(self, labels: list[str], label_texts: dict[str, list[str]], seed: int) -> None:
        self.labels, self.label_texts, self.seed, self.epoch = list(labels), label_texts, seed, 0

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def caption(self, i: int) -> str:
        texts = self.label_texts[self.labels[i]]
        return texts[int(np.random.default_rng([self.seed, self.epoch, i]).integers(len(texts)))]

    def __getitem__(self, i: int) -> Any:
        raise RuntimeError("the benchmark feeds cached features; images are not loaded per step")


class ImageList:
    """Minimal dataset over in-memory images for building a TowerCache."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def load_image(self, i: int) -> np.ndarray:
        return self.images[i]


def _library_texts(name: str) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    from inspector.library.labels import load_library, seed_library_dir

    lib = load_library(seed_library_dir() / f"{name}.yaml")
    return lib.label_texts(), [{"id": lb.id, "descriptions": list(lb.descriptions)} for lb in lib.labels]


def _finetune(
    base: Any,
    cache: TowerCache,
    labels: list[str],
    texts: dict[str, list[str]],
    variant: str,
    seed: int,
    steps: int,
    batch: int,
    lr: float,
    open_blocks: int,
) -> Any:
    bundle = copy.deepcopy(base)
    cfg = get_recipe("default").train_config(
        steps=steps,
        batch_size=min(batch, len(labels)),
        lr=lr,
        warmup_steps=max(1, steps // 10),
        loss_variant=variant,
        seed=seed,
        unfreeze_image_blocks=open_blocks,
        progress_bar=False,
    )
    fit(bundle, LabelCaptions(labels, texts, seed), cfg, cache=cache)
    return bundle


def _scores(bundle: Any, cache: TowerCache, texts: dict[str, list[str]]) -> np.ndarray:
    names = list(texts)
    img = embed_cached_images(bundle, cache)
    txt = embed_texts(bundle, [t for n in names for t in texts[n]])
    return metrics.segment_label_scores(
        img.astype(np.float64) @ txt.T.astype(np.float64), [len(texts[n]) for n in names], "mean"
    )


def _elpv_metrics(bundle: Any, cache: TowerCache, probs: np.ndarray, texts: dict[str, list[str]]) -> dict[str, float]:
    names = list(texts)
    scores = _scores(bundle, cache, texts)
    scale = float(bundle.model.logit_scale.detach().exp())
    defect = 1.0 - metrics.softmax(scores, scale)[:, names.index("ok")]
    pred_defective = scores.argmax(1) != names.index("ok")
    keep = (probs == 0) | (probs >= 0.5)
    return {
        "auroc": metrics.auroc(defect[keep], probs[keep] >= 0.5),
        "accuracy": float((pred_defective == (probs >= 0.5)).mean()),
        "spearman": _spearman(defect, probs),
    }


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = metrics._average_ranks(np.asarray(x, float)), metrics._average_ranks(np.asarray(y, float))
    return float(np.corrcoef(rx, ry)[0, 1])


def _subsample(data: Any, fraction: float) -> Any:
    """A seeded random share of a benchmark set (smoke runs only; the reported runs use all of it)."""
    if fraction >= 1.0:
        return data
    idx = np.random.default_rng(0).permutation(len(data))[: max(1, int(fraction * len(data)))]
    return data.subset(np.sort(idx))


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    t_start = time.monotonic()
    say = lambda msg: print(f"[{time.monotonic() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    recipe = get_recipe(
        "default",
        steps=args.steps,
        unfreeze_image_blocks=args.open_blocks,
        n_train=args.n_train,
        n_test=args.n_test,
        batch_size=min(256, args.n_train),
    )
    pristine = create_model(recipe.arch, device="cpu")
    nb = recipe.unfreeze_image_blocks
    shipped = None
    if args.shipped:
        from models.factory import load_model

        shipped = load_model("default", device="cpu")
        ship_nb = int(shipped.metadata["training"]["unfreeze_image_blocks"])
        if nb not in (0, ship_nb):
            raise SystemExit(f"--open-blocks must be 0 or {ship_nb} (the shipped model's) with --shipped")
    # Evaluation sets are cached at the shipped model's cut (if any); the bench recipe's cache derives from it.
    eval_nb = ship_nb if shipped else nb

    def eval_caches(images: list[np.ndarray]) -> tuple[TowerCache, TowerCache]:
        deep = TowerCache(pristine, ImageList(images), eval_nb)
        return (deep.pooled() if nb == 0 else deep), deep

    out: dict[str, Any] = {
        "runs": [],
        "recipe": asdict(recipe),
        "variants": args.variants,
        "seeds": args.seeds,
        "benchmarks": args.benchmarks,
    }

    train = training_samples(recipe)
    tests = heldout_samples(recipe)
    say(f"generated {len(train)} training and {len(tests)} held-out images")
    train_cache = TowerCache(pristine, ImageList([s.image for s in train]), nb)
    test_cache, test_deep = eval_caches([s.image for s in tests])
    test_labels = [s.defect for s in tests]
    say("cached the frozen work of the typed-defect images")

    textile = elpv = None
    if "textile" in args.benchmarks:
        from models.benchdata import load_textiles, textile_fewshot_split

        data = _subsample(load_textiles(), args.subsample)
        tex_texts, out["textile_library"] = _library_texts("textiles")
        textile = (data, *eval_caches(data.images), textile_fewshot_split)
        say(f"cached {len(data)} textile images")
    if "elpv" in args.benchmarks:
        from models.benchdata import elpv_split, load_elpv

        data = _subsample(load_elpv(), args.subsample)
        sol_texts, _ = _library_texts("solar_cells")
        elpv_texts = {"ok": sol_texts["ok"], "defective": [t for k, v in sol_texts.items() if k != "ok" for t in v]}
        out["elpv_texts"] = elpv_texts
        tr_idx, te_idx = elpv_split(data, seed=0)
        probs = np.array(data.extras["probability"])
        tr_idx = np.array([i for i in tr_idx if probs[i] == 0 or probs[i] >= 0.5])  # operator-confirmable
        full, deep = eval_caches(data.images)
        elpv = (
            full.subset(tr_idx),
            ["defective" if probs[i] >= 0.5 else "ok" for i in tr_idx],
            full.subset(te_idx),
            probs[te_idx],
            deep.subset(tr_idx),
            deep.subset(te_idx),
        )
        out["elpv_split"] = {"train": len(tr_idx), "test": len(te_idx)}
        say(f"cached {len(data)} ELPV images (train {len(tr_idx)}, test {len(te_idx)})")

    for seed in args.seeds:
        dataset = SyntheticDefectDataset(train, seed=seed)
        for variant in args.variants:
            t0 = time.monotonic()
            bundle = copy.deepcopy(pristine)
            cfg = recipe.train_config(loss_variant=variant, seed=seed, progress_bar=False)
            res = fit(bundle, dataset, cfg, cache=train_cache)
            row: dict[str, Any] = {
                "variant": variant,
                "seed": seed,
                "train_s": res.wall_s,
                "logit_scale": float(bundle.model.logit_scale.detach().exp()),
            }
            row["defects"] = {
                k: v for k, v in evaluate_cached(bundle, test_cache, test_labels).items() if k != "confusion"
            }
            if textile:
                data, cache, _, split = textile
                for k in args.shots:
                    tr, te = split(data, k, seed)
                    labels = [data.labels[i] for i in tr]
                    tuned = _finetune(
                        bundle, cache.subset(tr), labels, tex_texts, variant, seed, args.ft_steps, 64, args.ft_lr, nb
                    )
                    m = ranking_metrics(
                        embed_cached_images(tuned, cache.subset(te)),
                        [data.labels[i] for i in te],
                        embed_texts(tuned, [t for n in tex_texts for t in tex_texts[n]]),
                        tex_texts,
                    )
                    row[f"textile_k{k}"] = {
                        "accuracy": m["top1"],
                        "per_label_recall": m["per_label_recall"],
                        "n_test": m["n"],
                    }
            if elpv:
                tr_cache, tr_labels, te_cache, te_probs = elpv[:4]
                row["elpv_zero_shot"] = _elpv_metrics(bundle, te_cache, te_probs, elpv_texts)
                tuned = _finetune(
                    bundle, tr_cache, tr_labels, elpv_texts, variant, seed, args.ft_steps, 128, args.ft_lr, nb
                )
                row["elpv"] = _elpv_metrics(tuned, te_cache, te_probs, elpv_texts)
            row["wall_s"] = time.monotonic() - t0
            out["runs"].append(row)
            d = row["defects"]
            say(
                f"{variant:>10} seed {seed}: defects top-1 {d['top1']:.3f} MRR {d['mrr']:.3f}"
                + (f"  textile k50 {row['textile_k50']['accuracy']:.3f}" if "textile_k50" in row else "")
                + (
                    f"  ELPV AUROC {row['elpv']['auroc']:.3f} acc {row['elpv']['accuracy']:.3f}"
                    if "elpv" in row
                    else ""
                )
                + f"  ({row['wall_s']:.0f} s)"
            )
    if shipped:
        out["shipped"] = _shipped_rows(
            shipped,
            ship_nb,
            args,
            test_deep,
            test_labels,
            textile,
            elpv,
            tex_texts if textile else None,
            elpv_texts if elpv else None,
            say,
        )
    out["table"] = aggregate(out["runs"], args.variants)
    out["wall_s"] = time.monotonic() - t_start
    out["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "load_avg_at_end": os.getloadavg(),
    }
    out["command"] = "python -m bench.quality " + " ".join(sys.argv[1:])
    return out


def _shipped_rows(
    bundle: Any,
    nb: int,
    args: argparse.Namespace,
    test_cache: TowerCache,
    test_labels: list[str],
    textile: Any,
    elpv: Any,
    tex_texts: Any,
    elpv_texts: Any,
    say: Any,
) -> list[dict[str, Any]]:
    """The shipped model itself (its own recipe: RANKCLIP, last image block open) on the same benchmarks;
    fine-tuning opens the same block. Seeds: --shipped-seeds (the open block makes each fine-tune slower)."""
    rows = []
    for seed in args.shipped_seeds:
        t0 = time.monotonic()
        row: dict[str, Any] = {"model": "inspector-default-v1", "model_id": bundle.model_id, "seed": seed}
        row["defects"] = {k: v for k, v in evaluate_cached(bundle, test_cache, test_labels).items() if k != "confusion"}
        if textile:
            data, _, cache, split = textile
            for k in args.shots:
                tr, te = split(data, k, seed)
                tuned = _finetune(
                    bundle,
                    cache.subset(tr),
                    [data.labels[i] for i in tr],
                    tex_texts,
                    "rankclip",
                    seed,
                    args.ft_steps,
                    64,
                    args.ft_lr,
                    nb,
                )
                m = ranking_metrics(
                    embed_cached_images(tuned, cache.subset(te)),
                    [data.labels[i] for i in te],
                    embed_texts(tuned, [t for n in tex_texts for t in tex_texts[n]]),
                    tex_texts,
                )
                row[f"textile_k{k}"] = {"accuracy": m["top1"], "per_label_recall": m["per_label_recall"]}
        if elpv:
            _, tr_labels, _, te_probs, tr_deep, te_deep = elpv
            row["elpv_zero_shot"] = _elpv_metrics(bundle, te_deep, te_probs, elpv_texts)
            tuned = _finetune(
                bundle, tr_deep, tr_labels, elpv_texts, "rankclip", seed, args.ft_steps, 128, args.ft_lr, nb
            )
            row["elpv"] = _elpv_metrics(tuned, te_deep, te_probs, elpv_texts)
        row["wall_s"] = time.monotonic() - t0
        say(
            f"shipped seed {seed}: "
            + ", ".join(f"{g} {json.dumps(v)[:120]}" for g, v in row.items() if g.startswith(("textile", "elpv")))
        )
        rows.append(row)
    return rows


METRICS = [
    ("defects", "top1", "typed defects top-1"),
    ("defects", "top3", "typed defects top-3"),
    ("defects", "mrr", "typed defects MRR"),
    ("textile_k10", "accuracy", "textile k=10 accuracy"),
    ("textile_k50", "accuracy", "textile k=50 accuracy"),
    ("elpv_zero_shot", "auroc", "ELPV AUROC, no fine-tune"),
    ("elpv", "auroc", "ELPV AUROC"),
    ("elpv", "accuracy", "ELPV accuracy"),
    ("elpv", "spearman", "ELPV Spearman"),
]


def aggregate(runs: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    """Mean +- std over seeds per variant and metric, and the paired difference against CLIP."""
    table: dict[str, Any] = {}
    for group, key, label in METRICS:
        by = {v: {r["seed"]: r[group][key] for r in runs if r["variant"] == v and group in r} for v in variants}
        if not any(by.values()):
            continue
        entry: dict[str, Any] = {v: _summary(list(by[v].values())) for v in variants if by[v]}
        for v in variants:
            if v != "clip" and by.get("clip") and by[v]:
                common = sorted(set(by[v]) & set(by["clip"]))
                entry[f"{v}-clip"] = _summary([by[v][s] - by["clip"][s] for s in common])
        table[label] = entry
    labels = sorted(
        {lb for r in runs for lb in r["defects"]["per_label_recall"]},
        key=lambda x: list(runs[0]["defects"]["per_label_recall"]).index(x),
    )
    for lb in labels:
        by = {v: {r["seed"]: r["defects"]["per_label_recall"][lb] for r in runs if r["variant"] == v} for v in variants}
        entry = {v: _summary(list(by[v].values())) for v in variants if by[v]}
        if by.get("clip") and by.get("rankclip"):
            entry["rankclip-clip"] = _summary([by["rankclip"][s] - by["clip"][s] for s in by["clip"]])
        table[f"recall {lb}"] = entry
    return table


def markdown(result: dict[str, Any]) -> str:
    variants = result["variants"]
    diffs = [f"{v}-clip" for v in variants if v != "clip"]
    head = ["metric"] + variants + [d.replace("-clip", " − clip") for d in diffs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, entry in result["table"].items():
        cells = [label]
        for col in variants + diffs:
            s = entry.get(col) or (entry.get("rankclip-clip") if col == "rankclip-clip" else None)
            cells.append(
                f"{s['mean']:+.3f} ± {s['std']:.3f}"
                if s and col in diffs
                else f"{s['mean']:.3f} ± {s['std']:.3f}"
                if s
                else ""
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shipped_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| metric (inspector-default-v1) | value |", "|---|---|"]
    for group, key, label in METRICS:
        vals = [r[group][key] for r in rows if group in r]
        if vals:
            sm = _summary(vals)
            lines.append(
                f"| {label} | {sm['mean']:.3f}"
                + (f" ± {sm['std']:.3f} ({sm['n']} seeds)" if sm["n"] > 1 else "")
                + " |"
            )
    for lb, v in rows[0]["defects"]["per_label_recall"].items():
        lines.append(f"| typed defects recall {lb} | {v:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    p.add_argument("--steps", type=int, default=600, help="typed-defect training steps (bench recipe)")
    p.add_argument("--open-blocks", type=int, default=0, help="last image blocks trained (0: projections only)")
    p.add_argument("--n-train", type=int, default=4800)
    p.add_argument("--n-test", type=int, default=800)
    p.add_argument("--shots", default="10,50")
    p.add_argument("--ft-steps", type=int, default=100, help="fine-tuning steps for textiles and ELPV")
    p.add_argument("--ft-lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--subsample", type=float, default=1.0, help="share of the textile/ELPV images (smoke runs)")
    p.add_argument(
        "--no-shipped",
        dest="shipped",
        action="store_false",
        help="skip the rows of the shipped model (models/weights/inspector-default-v1)",
    )
    p.add_argument("--shipped-seeds", default="0", help="seeds of the shipped model's fine-tunes")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "quality.json"))
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.variants = args.variants.split(",")
    args.benchmarks = args.benchmarks.split(",")
    args.shots = [int(k) for k in args.shots.split(",")]
    args.shipped_seeds = [int(k) for k in args.shipped_seeds.split(",")]
    bad = sorted(set(args.variants) - set(VARIANTS)) + sorted(set(args.benchmarks) - set(BENCHMARKS))
    if bad:
        p.error(f"unknown variants/benchmarks {bad}")
    result = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(
        f"\nQuality benchmark: {result['command']}  ({result['wall_s'] / 60:.1f} min, {result['machine']['cpus']} CPUs)\n"
    )
    print(markdown(result))
    if result.get("shipped"):
        print("\nThe shipped model, same benchmarks (its own recipe; fine-tunes open its trained block too):\n")
        print(shipped_markdown(result["shipped"]))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
