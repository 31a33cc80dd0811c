"""The fine-tuning engine: pairs -> models.train.fit -> held-out figures -> candidate checkpoint.

No database here, so the same code runs in the station (inspector.learning.loop.run_finetune) and under
torchrun over several stations' export bundles (inspector.learning.job); torch only via models/.

How the operator's ranking evidence reaches the loss: a pair whose label the model did not rank
first (`outranked` non-empty) is repeated `hard_repeat` extra times per epoch. RANKCLIP's lists span
the global batch, so each copy puts the picked label's description against every other label's
description present in that batch (the outranked ones among them, given a batch of a few items
per label); the repeats weight exactly the images the model got wrong. fit() draws batches by a
seeded permutation, so co-locating specific negatives in one batch is not a contract it offers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import DataError, InspectorError
from inspector.learning.pairs import TrainingPair, TrainingSet
from inspector.learning.readiness import data_needs
from inspector.learning.reliability import figure_intervals
from inspector.learning.training import model_errors

LOSSES = ("rankclip", "clip")
# The figures a promotion compares; kept small so registry rows stay readable.
METRIC_KEYS = ("n", "top1", "top3", "mrr", "per_label_recall", "auroc_defect_vs_ok")
# FinetuneConfig fields that decide the trained weights (with the base and the data).
_TRAJECTORY = ("loss", "steps", "batch_size", "lr", "warmup_steps", "unfreeze_image_blocks", "seed", "hard_repeat")


class FinetuneError(InspectorError):
    """Fine-tuning cannot start or finish as asked (too little data, bad settings)."""


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of one fine-tune; every field is recorded as the candidate's recipe."""

    loss: str = "rankclip"
    steps: int = 300
    batch_size: int = 32  # global (lists span it); lowered to the data size when there is less
    lr: float = 1e-3
    warmup_steps: int = 20
    unfreeze_image_blocks: int = 0  # projections and the logit scale always train
    seed: int = 0
    heldout_fraction: float = 0.2
    split_seed: int = 0
    hard_repeat: int = 2  # extra copies per epoch of a pair the model ranked wrongly
    # The station's budget: training stops here and the model so far is evaluated (resume continues).
    max_wall_seconds: float | None = 1800.0
    min_train_pairs: int = 8
    # The shipped held-out typed-defect set (models.synth test split, held-out wording): forgetting.
    forgetting_n: int = 64
    forgetting_size: int = 224
    resume: bool = True
    device: str | None = None

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise FinetuneError(f"loss {self.loss!r} is not one of {', '.join(LOSSES)}")
        if self.steps < 1 or self.hard_repeat < 0 or self.forgetting_n < 1:
            raise FinetuneError("steps and forgetting_n must be >= 1 and hard_repeat >= 0")


@dataclass(frozen=True)
class FinetuneProgress:
    """What a long fine-tune reports: stage (load, evaluate, train, save), step of total, a line."""

    stage: str
    step: int
    total: int
    message: str


@dataclass(frozen=True)
class EngineOutcome:
    """How the engine ended: 'done' (rank 0 saved a candidate), 'cancelled', or 'worker' (rank > 0)."""

    status: str
    parent_id: str
    data_hash: str
    recipe: dict[str, Any]
    model_id: str | None = None
    checkpoint: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    steps_done: int = 0
    completed: bool = False
    reason: str = ""
    world_size: int = 1


Progress = Callable[[FinetuneProgress], None] | None


class PairDataset:
    """(RGB image, caption) per pair for models.train; captions redrawn per epoch among the label's texts."""

    def __init__(self, pairs: Sequence[TrainingPair], seed: int = 0, hard_repeat: int = 0) -> None:
        self.pairs = [p for p in pairs for _ in range(1 + (hard_repeat if p.outranked else 0))]
        self.labels = [p.label_id for p in self.pairs]
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def caption(self, index: int) -> str:
        texts = self.pairs[index].descriptions
        return texts[int(np.random.default_rng([self.seed, self.epoch, index]).integers(len(texts)))]

    def load_image(self, index: int) -> np.ndarray:
        """The pair's image, checked against its content hash (a swapped file must not train)."""
        from inspector.frame.imageio import decode_image  # lazy: cv2 stays out of `inspector --help`

        pair = self.pairs[index]
        try:
            data = Path(pair.image_path).read_bytes()
        except OSError as exc:
            raise DataError(f"image {pair.image_path} of inspection {pair.inspection_id} is unreadable: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != pair.image_sha256:
            raise DataError(f"image {pair.image_path} does not match its recorded SHA-256; restore it from a backup")
        from inspector.library.examples import crop_box
        from inspector.library.labels import Example

        # A library example with a box trains on that crop, as the ranking embeds it.
        return crop_box(decode_image(data, pair.image_path), Example(sha256=pair.image_sha256, box=pair.box))

    def __getitem__(self, index: int) -> tuple[np.ndarray, str]:
        return self.load_image(index), self.caption(index)


def label_texts_for(
    pairs: Sequence[TrainingPair], library: Mapping[str, Sequence[str]] | None = None
) -> dict[str, list[str]]:
    """What ranks the held-out images: the library given (the one in force), plus any label only the
    pairs know (retired since), with the descriptions its pairs carried."""
    texts = {k: list(v) for k, v in (library or {}).items()}
    for pair in pairs:
        if pair.label_id not in (library or {}):
            known = texts.setdefault(pair.label_id, [])
            known.extend(t for t in pair.descriptions if t not in known)
    return texts


def _metrics(result: Mapping[str, Any]) -> dict[str, Any]:
    # The per-image ranks and scores give the intervals, then are dropped: registry rows stay small.
    return {**{k: result.get(k) for k in METRIC_KEYS}, "ci": figure_intervals(result)}


def _evaluate_both(bundle: Any, sets: Mapping[str, tuple[list, list, dict, tuple]]) -> dict[str, Any]:
    from models.evaluate import evaluate

    return {
        name: _metrics(evaluate(bundle, images, labels, texts, ok_labels=ok, per_image=True))
        for name, (images, labels, texts, ok) in sets.items()
    }


def _forgetting_set(cfg: FinetuneConfig) -> tuple[list, list, dict, tuple]:
    from models.recipes import get_recipe, heldout_label_texts, heldout_samples

    samples = heldout_samples(get_recipe("default", image_size=cfg.forgetting_size), n=cfg.forgetting_n)
    return [s.image for s in samples], [s.defect for s in samples], heldout_label_texts(), ("ok",)


def _train_config(cfg: FinetuneConfig, n: int, world: int, state_dir: Path) -> Any:
    from models.train import TrainConfig

    batch = min(cfg.batch_size, n)
    batch -= batch % world
    if batch < 2:
        raise FinetuneError(f"{n} training items cannot fill a batch of 2 per {world} processes; confirm more parts")
    return TrainConfig(
        steps=cfg.steps,
        batch_size=batch,
        lr=cfg.lr,
        warmup_steps=min(cfg.warmup_steps, cfg.steps),
        loss_variant=cfg.loss,
        unfreeze_image_blocks=cfg.unfreeze_image_blocks,
        seed=cfg.seed,
        checkpoint_dir=str(state_dir),
        checkpoint_every=max(10, cfg.steps // 10),
        resume=cfg.resume,
        max_wall_seconds=cfg.max_wall_seconds,
        device=cfg.device,
        progress_bar=False,
    )


def evaluate_candidate(
    ts: TrainingSet,
    base_ref: str,
    candidate_ref: str,
    cfg: FinetuneConfig,
    *,
    library: Mapping[str, Sequence[str]] | None = None,
    ok_labels: Sequence[str] = ("ok",),
) -> dict[str, Any]:
    """The station's own figures for a candidate made elsewhere: it and the base on the same held-out sets.

    Same sets and metrics as train_candidate. The figures in a checkpoint's sidecar were written by
    whoever made the file, so a promotion never rests on them (issue 14, finding 8).
    """
    from models.factory import load_model

    if not ts.heldout:
        raise FinetuneError(
            "this station has no held-out confirmations to measure the candidate on; confirm more parts first"
        )
    with model_errors():
        base, candidate = load_model(base_ref, device=cfg.device), load_model(candidate_ref, device=cfg.device)
        texts = label_texts_for([*ts.train, *ts.heldout], library)
        held = PairDataset(ts.heldout)
        sets = {
            "confirmations": (
                [held.load_image(i) for i in range(len(held))],
                held.labels,
                texts,
                tuple(x for x in ok_labels if x in texts),
            ),
            "typed_defects": _forgetting_set(cfg),
        }
        figures = {"baseline_model_id": base.model_id, "baseline": _evaluate_both(base, sets)}
        figures.update(candidate_model_id=candidate.model_id, candidate=_evaluate_both(candidate, sets))
    figures["evaluated_by"] = {"station": True, "split_seed": ts.seed, "heldout_fraction": ts.heldout_fraction}
    return figures


def _check_data(ts: TrainingSet, cfg: FinetuneConfig) -> None:
    needs = data_needs(ts, cfg.min_train_pairs)
    if not needs.ready:
        raise FinetuneError(f"not enough confirmed decisions: {needs.shortfall()}")


def train_candidate(
    ts: TrainingSet,
    base_ref: str,
    cfg: FinetuneConfig,
    out_dir: str | Path,
    *,
    library: Mapping[str, Sequence[str]] | None = None,
    ok_labels: Sequence[str] = ("ok",),
    progress: Progress = None,
    cancelled: Callable[[], bool] | None = None,
) -> EngineOutcome:
    """Evaluate the base, fine-tune it, evaluate the candidate on the same sets, save it (rank 0)."""
    from models.distributed import init_distributed
    from models.factory import load_model
    from models.train import fit

    _check_data(ts, cfg)
    stop = cancelled or (lambda: False)
    out = Path(out_dir).absolute()  # the registry keeps this path: it must not depend on the working folder
    out.mkdir(parents=True, exist_ok=True)
    recipe = {
        "base": base_ref,
        "finetune": asdict(cfg),
        "n_train": len(ts.train),
        "n_heldout": len(ts.heldout),
        "split_seed": ts.seed,
        "heldout_fraction": ts.heldout_fraction,
        "excluded": dict(ts.excluded),
        "hard_pairs": sum(1 for p in ts.train if p.outranked),
    }
    with model_errors():
        info = init_distributed(cfg.device)
        say = (progress if info.is_main else None) or (lambda _p: None)  # one report per job, not per rank
        say(FinetuneProgress("load", 0, cfg.steps, f"loading {base_ref}"))
        bundle = load_model(base_ref, device=cfg.device)
        parent = bundle.model_id
        texts = label_texts_for([*ts.train, *ts.heldout], library)
        ok = tuple(x for x in ok_labels if x in texts)
        sets: dict[str, tuple[list, list, dict, tuple]] = {}
        figures: dict[str, Any] = {"baseline_model_id": parent}
        if info.is_main:
            say(FinetuneProgress("evaluate", 0, cfg.steps, "evaluating the current model on the held-out sets"))
            held = PairDataset(ts.heldout)
            sets["confirmations"] = ([held.load_image(i) for i in range(len(held))], held.labels, texts, ok)
            sets["typed_defects"] = _forgetting_set(cfg)
            figures["baseline"] = _evaluate_both(bundle, sets)
        dataset = PairDataset(ts.train, cfg.seed, cfg.hard_repeat)
        # Keyed by what decides the weights, so a resume never mixes other data or settings, while a
        # rerun with another time cap (or device) still continues the same training.
        trajectory = {k: getattr(cfg, k) for k in _TRAJECTORY}
        key = hashlib.sha256(json.dumps([parent, ts.data_hash, trajectory], sort_keys=True).encode()).hexdigest()
        state_dir = out / ".resume" / key[:16]
        train_cfg = _train_config(cfg, len(dataset), info.world_size, state_dir)
        recipe.update(train=asdict(train_cfg), world_size=info.world_size)
        if stop():
            return EngineOutcome("cancelled", parent, ts.data_hash, recipe, reason="cancelled before training")

        def on_step(step: Any) -> bool:
            say(FinetuneProgress("train", step.step, step.total_steps, f"loss {step.total_loss:.4f}"))
            return not stop()

        result = fit(bundle, dataset, train_cfg, on_step)
        done = dict(
            steps_done=result.steps_done, completed=result.completed, reason=result.reason, world_size=info.world_size
        )
        if result.cancelled:
            return EngineOutcome("cancelled", parent, ts.data_hash, recipe, **done)
        if not info.is_main:
            return EngineOutcome("worker", parent, ts.data_hash, recipe, **done)
        say(FinetuneProgress("evaluate", result.steps_done, cfg.steps, "evaluating the candidate"))
        figures["candidate"] = _evaluate_both(bundle, sets)
        figures["training"] = {
            "steps_done": result.steps_done,
            "completed": result.completed,
            "wall_s": result.wall_s,
            "final_losses": result.final_losses,
        }
        path = out / f"finetune-{_stamp()}-{key[:12]}"
        model_id = _save(bundle, train_cfg, path, parent, ts, recipe, figures)
    if result.completed:  # a capped run keeps its state: the next run with resume continues it
        shutil.rmtree(state_dir, ignore_errors=True)
    say(FinetuneProgress("save", result.steps_done, cfg.steps, f"wrote candidate {model_id[:12]} to {path}"))
    return EngineOutcome("done", parent, ts.data_hash, recipe, model_id, str(path), figures, **done)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _save(
    bundle: Any,
    train_cfg: Any,
    path: Path,
    parent: str,
    ts: TrainingSet,
    recipe: dict[str, Any],
    figures: dict[str, Any],
) -> str:
    from models.checkpoint import save_checkpoint
    from models.freeze import trained_flags

    sources = sorted({p.source for p in ts.train})
    metadata = {
        "parent_model_id": parent,
        "training": recipe,
        "metrics": figures,
        "data_sources": [{"name": s, "kind": "operator confirmations"} for s in sources],
        "finetune": {"data_hash": ts.data_hash, "n_train": len(ts.train), "n_heldout": len(ts.heldout)},
    }
    # As `inspector train` does: only the pip-pretrained default can be rebuilt under a partial save.
    partial = bundle.arch == "inspector-default"
    with trained_flags(bundle.model, train_cfg, keep=bundle.metadata.get("partial_keys", ())):
        return save_checkpoint(bundle, path, metadata=metadata, trainable_only=partial)
