"""Training recipes: the shipped default model (`inspector train --recipe default`) and its evaluation.

A recipe is data + training config in one frozen dataclass. `run_recipe` generates the training set
with models.synth (train seeds only, textile seeds + procedural surfaces, training vocabulary),
caches the frozen work once, trains with fit(), evaluates on the held-out split and writes a
trainable-only checkpoint whose sidecar records the recipe, data sources, licences, timings and
metrics. Held-out evaluation = held-out seed textures AND held-out paraphrases as the label
descriptions (models.synth.heldout_descriptions): no test image or description wording was trained on.

No ELPV data is ever used here (CC BY-NC-SA 4.0: benchmark only, see models/benchdata.py).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

from models import metrics
from models.factory import ModelBundle, load_model
from models.freeze import prefix_skipped, trained_flags
from models.synth import DEFECT_TYPES, Sample, SyntheticDefectDataset, generate, heldout_descriptions
from models.tower_cache import TowerCache
from models.train import FitResult, StepInfo, TrainConfig, fit

SHIPPED_NAME = "inspector-default-v1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

DATA_SOURCES = [
    {
        "name": "models.synth procedural surfaces and typed defects",
        "kind": "generated",
        "licence": "Apache-2.0 (project code)",
        "split": "train seeds only",
    },
    {
        "name": "conformal-clip-data 0.1.4, nominal textile images as seed textures",
        "kind": "simulated textures",
        "licence": "MIT",
        "origin": "Megahed et al. 2025 (spc4sts simulations)",
        "split": "train seeds only",
    },
]
NOT_USED = "ELPV (elpv-dataset, CC BY-NC-SA 4.0) is never used for shipped weights"


@dataclass(frozen=True)
class Recipe:
    """Data and training settings of one recipe; every field is recorded in the checkpoint sidecar."""

    name: str
    arch: str = "inspector-default"
    image_size: int = 224  # generated image size (the model's preprocess resizes anyway)
    n_train: int = 4800
    textile_fraction: float = 0.3
    data_seed: int = 0  # generation seed of the training images (split "train")
    steps: int = 300
    batch_size: int = 256
    lr: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 0.1
    unfreeze_image_blocks: int = 1
    loss_variant: str = "rankclip"
    numerics: str = "official"
    weight_cap: float = 2.0
    seed: int = 0  # training seed (batch order, caption draws, tie-breaks)
    n_test: int = 800
    test_seed: int = 1  # generation seed of the held-out images (split "test")
    # The front end the model is trained for: the image tower's input (short side px, also written
    # to the sidecar as the model's native size), the share of training images generated at that
    # size (the rest at image_size, upsampled by the preprocess), and the checkpoint training starts
    # from ("" = the architecture: ImageNet trunk, random projections).
    input_size: int = 0  # 0: the architecture's own crop size
    native_share: float = 0.0
    init: str = ""

    def train_config(self, **overrides: Any) -> TrainConfig:
        """The TrainConfig this recipe trains with (overrides: log_path, progress_bar, ...)."""
        base = dict(
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            warmup_steps=self.warmup_steps,
            weight_decay=self.weight_decay,
            loss_variant=self.loss_variant,
            numerics=self.numerics,
            weight_cap=self.weight_cap,
            unfreeze_image_blocks=self.unfreeze_image_blocks,
            seed=self.seed,
        )
        return TrainConfig(**{**base, **overrides})


RECIPES: dict[str, Recipe] = {
    "default": Recipe("default"),
    # inspector-default-v2: the last image block, tail and projections trained at 448 px input (half
    # the images generated at 448, half at 224 and upsampled), starting from v1 (see MODEL_CARD.md).
    "default-v2": Recipe(
        "default-v2",
        n_train=1536,
        steps=120,
        batch_size=128,
        warmup_steps=12,
        input_size=448,
        native_share=0.5,
        init="inspector-default-v1",
    ),
    # Seconds, for tests and smoke runs: the tiny random model on small generated images.
    "tiny": Recipe(
        "tiny",
        arch="inspector-tiny",
        image_size=64,
        n_train=48,
        textile_fraction=0.0,
        steps=12,
        batch_size=16,
        lr=5e-3,
        warmup_steps=2,
        unfreeze_image_blocks=1,
        n_test=16,
    ),
}


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """A named recipe, with field overrides (e.g. steps=100)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
    return dataclasses.replace(RECIPES[name], **overrides)


# ---------------------------------------------------------------- data


def training_samples(recipe: Recipe) -> list[Sample]:
    """The recipe's training images (train seed textures only): native_share of them generated at
    input_size (defects scale with the frame), the rest at image_size."""
    n_native = int(round(recipe.n_train * recipe.native_share)) if recipe.input_size else 0
    out = generate(
        recipe.n_train - n_native,
        seed=recipe.data_seed,
        size=recipe.image_size,
        textile_fraction=recipe.textile_fraction,
        split="train",
    )
    if n_native:  # another generation seed: other textures and defects, not the same ones enlarged
        out += generate(
            n_native,
            seed=recipe.data_seed + 1000,
            size=recipe.input_size,
            textile_fraction=recipe.textile_fraction,
            split="train",
        )
    return out


def at_input_size(ref: str, input_size: int) -> ModelBundle:
    """load_model(ref) on CPU whose preprocess (resize shortest side + centre crop) targets input_size,
    so the tower cache and evaluation see the tower at the size the station will run it at."""
    bundle = load_model(ref, device="cpu")
    crop = bundle.model.visual.preprocess_cfg["size"]
    if not input_size or (crop if isinstance(crop, int) else min(crop)) == input_size:
        return bundle
    cfg = {**bundle.model.visual.preprocess_cfg, "size": input_size}
    pp = image_transform_v2(PreprocessCfg(**merge_preprocess_dict(PreprocessCfg(), cfg)), is_train=False)
    return dataclasses.replace(bundle, preprocess=pp, train_preprocess=pp)


def heldout_samples(recipe: Recipe, n: int | None = None) -> list[Sample]:
    """Held-out images: seed textures training never sees."""
    return generate(
        recipe.n_test if n is None else n,
        seed=recipe.test_seed,
        size=recipe.image_size,
        textile_fraction=recipe.textile_fraction,
        split="test",
    )


def heldout_label_texts(labels: Sequence[str] = DEFECT_TYPES) -> dict[str, list[str]]:
    """Label descriptions in the held-out vocabulary: the wordings no training caption uses."""
    return {d: heldout_descriptions(d) for d in labels}


# ---------------------------------------------------------------- fast evaluation over cached frozen work


@torch.no_grad()
def embed_cached_images(bundle: ModelBundle, cache: TowerCache, batch: int = 256, *, bind: bool = True) -> np.ndarray:
    """L2-normalised image embeddings of the cached items: only the trainable rest of the tower runs.

    In eval mode this equals bundle's encode_image on the original images (same frozen prefix), so a
    benchmark can score many trained models without re-running the frozen trunk each time.
    bind=False skips the frozen-weights check for a cache its caller has already bound to bundle.
    """
    model = bundle.model
    if bind:
        cache.bind(bundle)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        out = []
        for i0 in range(0, cache.size, batch):
            x = cache.images[i0 : i0 + batch]
            if cache.n_open:
                with prefix_skipped(cache.towers[0], cache.n_open):
                    f = model.encode_image(x)
            else:
                proj = cache.towers[0].projection()
                f = x @ proj if isinstance(proj, torch.nn.Parameter) else (proj(x) if proj is not None else x)
            out.append(F.normalize(f.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)
    finally:
        for m, training in modes:
            m.training = training


@torch.no_grad()
def embed_texts(bundle: ModelBundle, texts: Sequence[str]) -> np.ndarray:
    """L2-normalised text embeddings (fp32, the model's own tokenizer)."""
    model = bundle.model
    was = model.training
    model.eval()
    try:
        tokens = bundle.tokenizer(list(texts)).to(bundle.device)
        return F.normalize(model.encode_text(tokens).float(), dim=-1).cpu().numpy()
    finally:
        model.train(was)


def ranking_metrics(
    image_emb: np.ndarray, labels: Sequence[str], text_emb: np.ndarray, label_texts: dict[str, list[str]]
) -> dict[str, Any]:
    """top-1, top-3, MRR and per-label recall, labels scored by the mean cosine of their descriptions
    (the same aggregation as models.evaluate and the station)."""
    names = list(label_texts)
    y = np.array([names.index(lb) for lb in labels])
    scores = metrics.segment_label_scores(
        image_emb.astype(np.float64) @ text_emb.astype(np.float64).T, [len(label_texts[n]) for n in names], "mean"
    )
    recall = metrics.per_label_recall(scores, y)
    return {
        "n": len(y),
        "top1": metrics.topk_accuracy(scores, y, 1),
        "top3": metrics.topk_accuracy(scores, y, 3),
        "mrr": metrics.mean_reciprocal_rank(scores, y),
        "per_label_recall": {n: float(r) for n, r in zip(names, recall)},
        "confusion": {
            "labels": names,
            "matrix": metrics.confusion_matrix(y, metrics.predictions(scores), len(names)).tolist(),
        },
    }


def evaluate_cached(
    bundle: ModelBundle, cache: TowerCache, labels: Sequence[str], label_texts: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """Held-out ranking metrics of bundle on cached test images (see embed_cached_images)."""
    label_texts = label_texts or heldout_label_texts()
    descriptions = [t for n in label_texts for t in label_texts[n]]
    return ranking_metrics(embed_cached_images(bundle, cache), labels, embed_texts(bundle, descriptions), label_texts)


# ---------------------------------------------------------------- the end-to-end run


def train_recipe(
    recipe: Recipe,
    dataset: Any,
    *,
    bundle: ModelBundle | None = None,
    cache: TowerCache | None = None,
    on_step: Callable[[StepInfo], bool | None] | None = None,
    **cfg_overrides: Any,
) -> tuple[ModelBundle, FitResult]:
    """Train a fresh recipe.arch model (or `bundle`) on dataset with the recipe's config."""
    bundle = bundle or load_model(recipe.arch, device="cpu")
    result = fit(bundle, dataset, recipe.train_config(**cfg_overrides), on_step, cache=cache)
    return bundle, result


def run_recipe(
    recipe: Recipe,
    out: str | Path | None,
    *,
    evaluate: bool = True,
    log_path: str | None = None,
    progress: Callable[[str], None] | None = None,
    on_step: Callable[[StepInfo], bool | None] | None = None,
) -> dict[str, Any]:
    """Generate, cache, train, evaluate on the held-out split and (if out) save; returns a summary."""
    from models.checkpoint import save_checkpoint

    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    samples = training_samples(recipe)
    dataset = SyntheticDefectDataset(samples, seed=recipe.seed)
    timings["generate_s"] = time.monotonic() - t0
    say(f"generated {len(samples)} training images in {timings['generate_s']:.0f} s")
    t = time.monotonic()
    bundle = at_input_size(recipe.init or recipe.arch, recipe.input_size)
    cache = TowerCache(bundle, dataset, recipe.unfreeze_image_blocks)
    timings["cache_s"] = time.monotonic() - t
    say(f"built the model and cached its frozen work in {timings['cache_s']:.0f} s")
    t = time.monotonic()
    _, result = train_recipe(
        recipe, dataset, bundle=bundle, cache=cache, on_step=on_step, log_path=log_path, progress_bar=True
    )
    timings["train_s"] = time.monotonic() - t
    timings["total_train_s"] = time.monotonic() - t0  # what `inspector train --recipe` costs before evaluation
    say(f"trained {result.steps_done} steps in {timings['train_s']:.0f} s")
    summary: dict[str, Any] = {
        "recipe": dataclasses.asdict(recipe),
        "timings": timings,
        "steps_done": result.steps_done,
        "completed": result.completed,
        "final_losses": result.final_losses,
        "logit_scale": float(bundle.model.logit_scale.detach().exp()),
    }
    if evaluate:
        t = time.monotonic()
        tests = heldout_samples(recipe)
        test_cache = TowerCache(bundle, SyntheticDefectDataset(tests, seed=0), recipe.unfreeze_image_blocks)
        summary["heldout"] = evaluate_cached(bundle, test_cache, [s.defect for s in tests])
        timings["evaluate_s"] = time.monotonic() - t
        h = summary["heldout"]
        say(
            f"held-out: top-1 {h['top1']:.3f}  top-3 {h['top3']:.3f}  MRR {h['mrr']:.3f} "
            f"({h['n']} images, {timings['evaluate_s']:.0f} s)"
        )
    if out is not None:
        metadata = {
            "training": {
                **dataclasses.asdict(recipe.train_config()),
                "recipe": dataclasses.asdict(recipe),
                "command": f"inspector train --recipe {recipe.name}",
            },
            "data_sources": DATA_SOURCES,
            "data_not_used": NOT_USED,
            "metrics": {"heldout": {k: v for k, v in summary.get("heldout", {}).items() if k != "confusion"}},
            "timings_s": timings,
            "final_losses": result.final_losses,
        }
        if recipe.input_size:  # the station runs the tower at the size it trained at
            metadata["input_size"] = recipe.input_size
        with trained_flags(bundle.model, recipe.train_config()):  # store exactly what trained
            summary["model_id"] = save_checkpoint(bundle, out, metadata=metadata, trainable_only=True)
        summary["out"] = str(out)
        say(f"wrote {out} (model {summary['model_id'][:12]})")
    summary["bundle"] = bundle
    return summary
