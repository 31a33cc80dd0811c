"""Which model a station runs, and the model as the station holds it (scorer + compiled library).

The station runs the registry's active model when there is one (a QA decision, on the record),
else the configured model. When the active model cannot be loaded (checkpoint missing, truncated,
altered, a pickle, or another model's weights under its name) the station refuses to start rather
than run a model nobody promoted: the error names the file and the way out (restore the file, or
`inspector model rollback`), and the refusal is an event in the log. An auditor reading the log
must be able to trust that the active model is the one that ranked the parts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from inspector.errors import ModelLoadError
from inspector.frame.ranking import RankingIndex, build_index
from inspector.frame.scorer import Scorer, load_scorer
from inspector.learning.registry import ModelRegistry
from inspector.library.examples import example_compiler
from inspector.library.labels import Library
from inspector.store import model_aliases
from inspector.store.corrections import decided_label_counts
from inspector.store.decision_log import DecisionLog

SOURCES = ("registry", "configuration", "caller")
_WHY = {
    "registry": "the active model in the registry (promoted or rolled back to by QA)",
    "configuration": "no model is active in the registry, so the configured model",
    "caller": "a model the program chose explicitly (not through the registry)",
}


class ActiveModelError(ModelLoadError):
    """The registry's active model cannot be loaded; the station will not run another in its place."""


@dataclass(frozen=True)
class ModelChoice:
    """The model to load: a name or checkpoint, why it was chosen, and the id its weights must have."""

    ref: str
    source: str  # one of SOURCES
    model_id: str | None = None  # registered models only: the weights' SHA-256 on record

    @property
    def why(self) -> str:
        return _WHY[self.source]


def choose_model(log: DecisionLog | None, configured_ref: str) -> ModelChoice:
    """The registry's active model when the database has one, else the configured model."""
    registry = ModelRegistry(log) if log is not None else None
    active = registry.active() if registry is not None else None
    if registry is None or active is None:
        return ModelChoice(configured_ref, "configuration")
    # A row registered under a legacy (weights-only) id must load as the id bound at the upgrade.
    return ModelChoice(active.checkpoint, "registry", registry.current_id(active.model_id))


def check_identity(scorer: Scorer, choice: ModelChoice) -> None:
    """Refuse weights that are not the registered model (a valid checkpoint copied over another)."""
    if choice.model_id is not None and scorer.model_id != choice.model_id:
        raise ModelLoadError(
            f"{choice.ref} holds model {scorer.model_id[:12]}, not the registered model {choice.model_id[:12]}:"
            " the checkpoint's weights or its sidecar's configuration changed after it was registered;"
            " restore the registered files from a backup"
        )


def load_choice(choice: ModelChoice, device: str | None = None) -> Scorer:
    """Load the chosen model and check that its weights are the registered ones (ModelLoadError if not)."""
    scorer = load_scorer(choice.ref, device)
    check_identity(scorer, choice)
    return scorer


def embed_cached(
    scorer: Scorer, log: DecisionLog | None, memory: dict[str, np.ndarray], texts: list[str]
) -> np.ndarray:
    """Embeddings of `texts` for this scorer; only texts never seen with this model are embedded.

    The database cache is keyed by (model id, text); `memory` belongs to one model and keeps the
    last call's texts, so a redraw of the same library costs no query.
    """
    cached = dict(memory)
    if log is not None:
        cached.update(log.library.get_cached_embeddings(scorer.model_id, [t for t in texts if t not in cached]))
    missing = sorted({t for t in texts if t not in cached})
    if missing:
        fresh = np.asarray(scorer.embed_texts(missing), dtype=np.float32)
        if log is not None:
            log.library.put_embeddings(scorer.model_id, missing, fresh)
        cached.update(zip(missing, fresh))
    memory.clear()
    memory.update({t: cached[t] for t in set(texts)})
    return np.stack([cached[t] for t in texts]).astype(np.float32)


def templated(embed, templates: tuple[str, ...]):
    """`embed(texts) -> [N, D]` that, with caption templates, embeds each description plain and in every
    template ("close-up of {}") and returns the normalised mean (the cache keys stay the exact texts)."""
    if not templates:
        return embed

    def run(texts: list[str]) -> np.ndarray:
        wrapped = [[text] + [t.format(text) for t in templates] for text in texts]
        flat = embed([w for group in wrapped for w in group])
        k = 1 + len(templates)
        mean = flat.reshape(len(texts), k, -1).mean(axis=1) if texts else flat
        return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    return run


@dataclass(frozen=True)
class ModelState:
    """One model as the station runs it: the scorer, the library compiled for it, where it came from.

    Immutable and replaced whole: a reader on another thread (the capture loop) takes one reference
    and ranks a frame with a scorer and an index that belong together.
    """

    scorer: Scorer
    index: RankingIndex
    ref: str
    source: str
    memory: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    templates: tuple[str, ...] = ()  # caption templates around each description ([scoring])
    # Legacy (weights-only) ids bound to this model at the upgrade: records under them are its rankings.
    legacy_ids: frozenset[str] = frozenset()
    example_prior: bool = True  # the example probe's prior shift from the decision log ([scoring])

    @property
    def model_id(self) -> str:
        return self.scorer.model_id

    def ranked(self, model_id: str) -> bool:
        """Whether a ranking recorded under `model_id` was made by this model (its id or a bound legacy id)."""
        return model_id == self.model_id or model_id in self.legacy_ids

    @property
    def why(self) -> str:
        return _WHY.get(self.source, self.source)

    @cached_property
    def calibration(self) -> Any:
        """The verdict thresholds measured for this model (its sidecar's "calibration"), or None."""
        from inspector.frame.calibration import calibration_from

        return calibration_from(getattr(getattr(self.scorer, "bundle", None), "metadata", None))

    @cached_property
    def explainer(self) -> Any:
        """Grad-CAM for this model, built on first use (None for scorers without a torch model)."""
        bundle = getattr(self.scorer, "bundle", None)
        if bundle is None:
            return None
        from models.explain import Explainer

        return Explainer(bundle)

    def compile(self, library: Library, version: int, log: DecisionLog | None) -> RankingIndex:
        """Any library compiled for this model through its embedding caches."""
        return build_index(
            library,
            templated(lambda texts: embed_cached(self.scorer, log, self.memory, texts), self.templates),
            self.scorer.model_id,
            version,
            example_compiler(
                library, self.scorer.embed_images, self.scorer.model_id, log, _decided(log, self.example_prior)
            ),
        )


def _decided(log: DecisionLog | None, use: bool = True) -> Callable[[], dict[str, int]] | None:
    """The plant's label mix for the example probe's prior shift: the decision log's decided labels
    (None: no shift, without a log or with [scoring] example_prior = false)."""
    return None if log is None or not use else lambda: decided_label_counts(log)


def compile_model(
    scorer: Scorer,
    library: Library,
    version: int,
    log: DecisionLog | None,
    ref: str,
    source: str,
    templates: tuple[str, ...] = (),
    example_prior: bool = True,
) -> ModelState:
    """A ModelState with `library` (version `version`) compiled for `scorer` (descriptions in `templates`)."""
    memory: dict[str, np.ndarray] = {}
    index = build_index(
        library,
        templated(lambda texts: embed_cached(scorer, log, memory, texts), templates),
        scorer.model_id,
        version,
        example_compiler(library, scorer.embed_images, scorer.model_id, log, _decided(log, example_prior)),
    )
    legacy = model_aliases.legacy_ids(log.sdb.conn, scorer.model_id) if log is not None else frozenset()
    return ModelState(scorer, index, ref, source, memory, tuple(templates), legacy, example_prior)
