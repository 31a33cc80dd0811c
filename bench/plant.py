"""The simulated plant of bench.learning_curve: a station database, a line, an operator, and the
frozen-work store that makes dozens of real fine-tunes affordable on a 2-core CPU.

What is real: the station database (inspector.store.decision_log: users, roles, library versions, the
hash chain), the per-part path (inspector.station.Station.inspect / .record: ranking, verdict,
PNG image store), the operator's decisions (DecisionLog.record_decision), the learning loop
(inspector.learning.loop.run_finetune: pairs from the log, the held-out split by image hash, hard
repeats of wrongly ranked parts, models.train.fit with the chosen loss, both held-out evaluations,
the candidate checkpoint, the registry) and the promotion gate (ModelRegistry.promote).

What is reused instead of recomputed: the frozen prefix of the image tower. Every model in a run
descends from inspector-default-v1 and trains at most its last image block, so the activation at
the input of that block is the same for all of them (TowerCache checks this with a digest of the
frozen weights, here on the first use of each model object, and refuses a mismatch). The store
computes it once per image; `frozen_work_reused` lets the engine's own TowerCache (in fit) and
TorchScorer (in models.evaluate) look an image up by its pixels instead of running the trunk again
(~0.1 s per image here). An image the store does not hold takes the normal path, and is counted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.factory import ModelBundle
from models.recipes import embed_cached_images
from models.scorer import TorchScorer
from models.tower_cache import TowerCache

PASSWORDS = {"admin": "plant-admin-secret", "op": "plant-operator-pw", "qa": "plant-qa-engineer"}


def image_key(rgb: np.ndarray) -> str:
    """The pixels' identity (shape + bytes): a PNG round trip through the station keeps it."""
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    return hashlib.blake2b(f"{a.shape}".encode() + a.tobytes(), digest_size=20).hexdigest()


class _Images:
    def __init__(self, images: Sequence[np.ndarray]) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def load_image(self, i: int) -> np.ndarray:
        return self.images[i]


class FrozenStore:
    """Frozen-prefix activations of a fixed set of images, looked up by pixels."""

    def __init__(self, bundle: ModelBundle, images: Sequence[np.ndarray], n_open: int) -> None:
        keys = [image_key(im) for im in images]
        first = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        unique = sorted(first.values())
        self.index = {keys[i]: row for row, i in enumerate(unique)}
        self.n_open = int(n_open)
        self.cache = TowerCache(bundle, _Images([images[i] for i in unique]), self.n_open)
        self.fallback_images = 0  # images that went through the whole tower because the store lacked them
        # Models whose frozen prefix was checked against the store's (the check hashes ~100 MB of
        # weights; nothing in a fine-tune can change a frozen weight, so once per model object is enough).
        self._verified: weakref.WeakSet = weakref.WeakSet()

    def rows(self, images: Sequence[np.ndarray]) -> list[int] | None:
        keys = [image_key(im) for im in images]
        return [self.index[k] for k in keys] if all(k in self.index for k in keys) else None

    def bound(self, bundle: ModelBundle, rows: Sequence[int], n_open: int | None = None) -> TowerCache:
        """The cache of these rows for bundle (refused if bundle's frozen prefix differs), optionally pooled."""
        sub = self.cache.subset(list(rows))
        sub.bind(bundle, check=bundle.model not in self._verified)
        self._verified.add(bundle.model)
        return sub.pooled() if n_open == 0 and self.n_open else sub

    def tower_cache(self, bundle: ModelBundle, dataset: Any, n_open: int = 0, **kwargs: Any) -> TowerCache:
        """Drop-in for TowerCache(bundle, dataset, n_open, ...) as models.train.fit builds it."""
        rows = None
        if hasattr(dataset, "load_image") and n_open in (0, self.n_open):
            rows = self.rows([dataset.load_image(i) for i in range(len(dataset))])  # the engine's hash-checked read
        if rows is None:
            self.fallback_images += len(dataset)
            return TowerCache(bundle, dataset, n_open, **kwargs)
        return self.bound(bundle, rows, n_open)


class CachedScorer(TorchScorer):
    """TorchScorer whose image path starts from the store's activations (texts: the normal path)."""

    def __init__(self, bundle: ModelBundle, batch_size: int = 32, *, store: FrozenStore) -> None:
        super().__init__(bundle, batch_size)
        self.store = store
        self.memo: dict[str, np.ndarray] = {}

    def prime(self, images: Sequence[np.ndarray]) -> None:
        """Embed these images in one batch now, so per-frame calls (Station.inspect) are lookups."""
        rows = self.store.rows(images)
        if rows is None:
            return
        emb = embed_rows(self.bundle, self.store.bound(self.bundle, rows))
        self.memo.update(zip((image_key(im) for im in images), emb.astype(np.float32)))

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        keys = [image_key(im) for im in images]
        if keys and all(k in self.memo for k in keys):
            return np.stack([self.memo[k] for k in keys])
        rows = self.store.rows(images)
        if rows is None or not len(images):
            self.store.fallback_images += len(images)
            return super().embed_images(images)
        return embed_rows(self.bundle, self.store.bound(self.bundle, rows))


@torch.no_grad()
def embed_rows(bundle: ModelBundle, cache: TowerCache, batch: int = 256) -> np.ndarray:
    """models.recipes.embed_cached_images for a cache already bound to bundle (no second check)."""
    return embed_cached_images(bundle, cache, batch, bind=False).astype(np.float32)


@contextlib.contextmanager
def frozen_work_reused(store: FrozenStore) -> Iterator[None]:
    """Inside: fit() and models.evaluate take frozen activations from the store (see the module doc)."""
    import models.evaluate as evaluate_mod
    import models.train as train_mod

    saved = evaluate_mod.TorchScorer, train_mod.TowerCache
    evaluate_mod.TorchScorer = functools.partial(CachedScorer, store=store)
    train_mod.TowerCache = store.tower_cache
    try:
        yield
    finally:
        evaluate_mod.TorchScorer, train_mod.TowerCache = saved


def open_station(path: Path, library: Any) -> tuple[Any, Any, Any, int]:
    """A new station database: admin, one operator, one QA engineer, the plant's library as version 1."""
    from inspector.store.decision_log import DecisionLog

    log = DecisionLog.open(path)
    log.users.create_first_admin("admin", PASSWORDS["admin"])
    admin = log.login("admin", PASSWORDS["admin"])
    log.users.add_user("op", "operator", PASSWORDS["op"], admin, reason="line operator", temporary=False)
    log.users.add_user("qa", "qa", PASSWORDS["qa"], admin, reason="QA engineer", temporary=False)
    op, qa = log.login("op", PASSWORDS["op"]), log.login("qa", PASSWORDS["qa"])
    version = log.library.import_library(library, qa, "the plant's description library")
    return log, op, qa, version


def run_line(
    station: Any, op: Any, images: Sequence[np.ndarray], truths: Sequence[str], first_seq: int, origins: Sequence[str]
) -> dict[str, int]:
    """Each part: Station.inspect -> Station.record -> the operator answers with the true label:
    Enter (confirm) when the model ranked it #1, else the digit of its rank (pick). Returns counts."""
    from inspector.frame.records import Decision, Frame, utc_now

    counts = {"confirm": 0, "pick": 0}
    for k, (rgb, truth, origin) in enumerate(zip(images, truths, origins)):
        frame = Frame(np.ascontiguousarray(rgb, dtype=np.uint8), utc_now(), "line-1", first_seq + k, origin)
        result = station.record(station.inspect(frame), op)
        ranked = [c.label_id for c in result.ranking.candidates]
        rank = ranked.index(truth) + 1
        kind = "confirm" if rank == 1 else "pick"
        station.log.record_decision(Decision(result.inspection_id, kind, op.name, truth, rank), op)
        counts[kind] += 1
    return counts
