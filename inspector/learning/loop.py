"""The learning loop in the station: decision log -> training pairs -> candidate model -> registry.

`run_finetune` blocks for minutes: call it from a worker thread, never the GUI thread, and give it
the database path there (an SQLite connection belongs to the thread that opened it). The pieces:
inspector.learning.pairs (pure pair rules), inspector.learning.sources (log and export bundles),
inspector.learning.engine (training and evaluation), inspector.learning.registry (states and promotion).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.config import DEFAULT_MODEL
from inspector.learning.engine import (
    EngineOutcome,
    FinetuneConfig,
    FinetuneError,
    FinetuneProgress,
    PairDataset,
    Progress,
    train_candidate,
)
from inspector.learning.example_rows import with_examples
from inspector.learning.pairs import ProposedDescription, TrainingPair, TrainingSet, build_training_set
from inspector.learning.registry import ModelRegistry, RegisteredModel, active_model_ref
from inspector.learning.reliability import figure_lines
from inspector.learning.sources import training_set_from
from inspector.store.decision_log import DecisionLog
from inspector.store.users import Session, authorize

__all__ = [
    "FinetuneConfig",
    "FinetuneError",
    "FinetuneProgress",
    "FinetuneResult",
    "PairDataset",
    "ProposedDescription",
    "TrainingPair",
    "TrainingSet",
    "active_model_ref",
    "build_training_set",
    "run_finetune",
    "training_set_from",
]


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tune produced: the registered candidate and its figures, or why there is none."""

    status: str  # "candidate" (registered) or "cancelled"
    training_set: TrainingSet
    outcome: EngineOutcome
    candidate: RegisteredModel | None = None

    @property
    def proposals(self) -> tuple[ProposedDescription, ...]:
        return self.training_set.proposals

    def summary(self) -> str:
        """One paragraph for the CLI and the status bar."""
        ts, o = self.training_set, self.outcome
        head = f"{len(ts.train)} training / {len(ts.heldout)} held-out confirmations"
        if self.candidate is None:
            return f"{head}; cancelled after {o.steps_done} steps ({o.reason}); resume to continue"
        lines = [f"{head}; {o.steps_done} steps ({o.reason}); candidate {self.candidate.model_id[:12]} registered"]
        for name in ("confirmations", "typed_defects"):
            lines += figure_lines(name, o.figures["baseline"][name], o.figures["candidate"][name])
        if ts.proposals:
            lines.append(f"  {len(ts.proposals)} 'none of these' descriptions await QA (inspector finetune --dry-run)")
        return "\n".join(lines)


@contextlib.contextmanager
def _opened(station_or_log: Any) -> Iterator[DecisionLog]:
    """A Station's log, a DecisionLog, or a database path (opened here, closed after)."""
    if isinstance(station_or_log, (str, Path)):
        with DecisionLog.open(station_or_log, create=False) as log:
            yield log
        return
    log = getattr(station_or_log, "log", station_or_log)
    if not isinstance(log, DecisionLog):
        raise FinetuneError("run_finetune needs a Station with a database, a DecisionLog or a database path")
    yield log


def _stable_ref(ref: str) -> str:
    """A checkpoint path made absolute (the station may start elsewhere); a model name as it is."""
    path = Path(ref)
    if path.suffix in (".safetensors", ".json") or path.with_name(path.name + ".safetensors").is_file():
        return str(path.absolute())
    return ref


def run_finetune(
    station_or_log: Any,
    base_model_ref: str | None,
    config: FinetuneConfig = FinetuneConfig(),
    progress: Progress = None,
    cancelled: Callable[[], bool] | None = None,
    *,
    user: Session,
    default_ref: str = "inspector-default",
    out_dir: str | Path | None = None,
    bundles: Iterable[str | Path] = (),
    station_keys: Sequence[str] = (),
) -> FinetuneResult:
    """Fine-tune from the confirmed decisions (plus any export bundles) and register the candidate.

    base_model_ref None means the model in use: the active registered one, else `default_ref` (the
    station's configured model), which is then registered as active so that rollback can reach it.
    The candidate goes to out_dir (default: `models/` beside the database) and is registered with
    state "candidate" and its figures; promotion is a separate QA decision (ModelRegistry.promote).
    Each bundle needs its station's public key (station_keys, same order): unsigned ones are refused.
    """
    with _opened(station_or_log) as log:
        authorize(log.sdb, user, "promote_model", "finetune")  # before minutes of work, not after
        registry = ModelRegistry(log)
        in_use = base_model_ref is None
        base = base_model_ref or active_model_ref(log) or default_ref
        ts = training_set_from(
            log,
            list(bundles),
            heldout_fraction=config.heldout_fraction,
            seed=config.split_seed,
            station_keys=station_keys,
        )
        version, library = log.library.in_force()
        if version:  # QA's example images are training rows too (inspector.learning.example_rows)
            ts = with_examples(ts, library, version, log.sdb.image_root)
        out = Path(out_dir) if out_dir else log.sdb.path.parent / "models"
        outcome = train_candidate(
            ts,
            base,
            config,
            out,
            library=library.label_texts() if version else None,
            ok_labels=library.ok_label_ids if version else ("ok",),
            progress=progress,
            cancelled=cancelled,
        )
        if outcome.status != "done":
            return FinetuneResult("cancelled", ts, outcome)
        known = {m.model_id for m in registry.list()}
        if outcome.parent_id not in known:
            # Registered so a rollback can return to it; "retired" when it is not what the station runs.
            state = "active" if in_use and registry.active() is None else "retired"
            registry.register(
                outcome.parent_id,
                _stable_ref(base),
                user,
                parent_id=None,
                data_hash="",
                recipe={"source": base},
                figures={"baseline": outcome.figures["baseline"]},
                state=state,
                reason="the station's model before fine-tuning"
                if state == "active"
                else "base of a fine-tune; not in use here",
            )
        if outcome.model_id in known:  # training is deterministic: the same data and settings, the same weights
            return FinetuneResult("candidate", ts, outcome, registry.get(outcome.model_id or ""))
        candidate = registry.register(
            outcome.model_id or "",
            outcome.checkpoint or "",
            user,
            parent_id=outcome.parent_id,
            data_hash=outcome.data_hash,
            recipe=outcome.recipe,
            figures=outcome.figures,
        )
        return FinetuneResult("candidate", ts, outcome, candidate)


def register_checkpoint(
    log: DecisionLog,
    path: str | Path,
    user: Session,
    reason: str = "candidate from a fine-tuning job",
    *,
    default_ref: str = DEFAULT_MODEL,
    config: FinetuneConfig = FinetuneConfig(),
) -> RegisteredModel:
    """Register a candidate written by inspector.learning.job (e.g. under torchrun), measured by this station.

    The sidecar gives the parent, the data hash and the recipe (provenance, kept as the job's claim);
    the figures that gate its promotion are the station's own: the candidate and the model in use
    (the active one, else `default_ref`) evaluated here on the station's held-out confirmations and
    the typed-defect set. The sidecar's figures are recorded beside them as "claimed", never used.
    """
    from inspector.errors import model_errors
    from inspector.learning.engine import evaluate_candidate
    from models.checkpoint import read_sidecar, verify_checkpoint

    authorize(log.sdb, user, "promote_model", "register_model")  # before minutes of evaluation
    with model_errors():
        model_id = verify_checkpoint(path)
        sidecar = read_sidecar(path)
    claimed = sidecar.get("metrics", {})
    if "candidate" not in claimed or "baseline" not in claimed:
        raise FinetuneError(f"{path} carries no held-out figures; only fine-tuned candidates can be registered")
    stem = Path(path)
    stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
    ts = training_set_from(log, [], heldout_fraction=config.heldout_fraction, seed=config.split_seed)
    version, library = log.library.in_force()
    figures = evaluate_candidate(
        ts,
        active_model_ref(log) or default_ref,
        str(stem.absolute()),
        config,
        library=library.label_texts() if version else None,
        ok_labels=library.ok_label_ids if version else ("ok",),
    )
    if figures.pop("candidate_model_id") != model_id:  # the file changed while it was being measured
        raise FinetuneError(f"{path} changed while the station evaluated it; register it again")
    figures["claimed"] = {k: claimed.get(k) for k in ("baseline", "candidate", "baseline_model_id")}
    return ModelRegistry(log).register(
        model_id,
        str(stem.absolute()),
        user,
        parent_id=sidecar.get("parent_model_id"),
        data_hash=sidecar.get("finetune", {}).get("data_hash", ""),
        recipe=sidecar.get("training", {}),
        figures=figures,
        reason=reason,
    )
