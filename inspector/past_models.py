"""Models that ranked logged inspections but are no longer in use (after a promotion or a rollback).

An audit heatmap must come from the model that ranked the inspection. When the station now runs
another, that model is found through the registry (its checkpoint), or else through the
'model_loaded' / 'model_switched' events that name the file the station loaded it from, then
loaded with its identity checked (the weights must hash to the recorded model id) and kept in a
small least-recently-used cache per station. Loading takes seconds: callers run this off the GUI
thread (the audit view asks from a worker). A model whose weights are gone is refused in plain words.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

from inspector.errors import InspectorError
from inspector.learning.registry import ModelRegistry, RegistryError
from inspector.station_model import ModelChoice, ModelState, compile_model, load_choice
from inspector.store.decision_log import DecisionLog

if TYPE_CHECKING:
    from inspector.station import Station

CAPACITY = 2  # each model is a few hundred MB in memory for the default tower; an audit rarely needs more


class PastModelError(InspectorError):
    """The model that ranked an inspection cannot be found or loaded again."""


def model_ref(log: DecisionLog, model_id: str) -> str | None:
    """Where the weights of `model_id` were loaded from: its registry checkpoint, else the latest
    event that loaded it (a configured model that was never registered); None if nothing says."""
    try:
        return ModelRegistry(log).get(model_id).checkpoint
    except RegistryError:
        pass
    for kind in ("model_switched", "model_loaded"):
        for event in reversed(log.events(kind=kind, subject=model_id, limit=1_000_000)):
            ref = json.loads(event["detail"] or "{}").get("ref")
            if ref:
                return str(ref)
    return None


class PastModels:
    """A thread-safe LRU of ModelStates by model id (at most `capacity`), loaded on demand."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._models: OrderedDict[str, ModelState] = OrderedDict()
        self._lock = threading.Lock()  # one load at a time: two audits asking for one model load it once
        self.loads = 0  # how many models were loaded (not served from the cache)

    def cached(self) -> list[str]:
        """Model ids in the cache, least recently used first."""
        with self._lock:
            return list(self._models)

    def get(self, station: Station, model_id: str, library_version: int) -> ModelState:
        """The model `model_id`, with library `library_version` compiled for it when first loaded."""
        with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            state = self._load(station, model_id, library_version)
            self._models[model_id] = state
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            self.loads += 1
            return state

    def _load(self, station: Station, model_id: str, version: int) -> ModelState:
        if station.log is None:
            raise PastModelError("earlier models are found through the station database, and none is open")
        short = model_id[:12]
        # Our own connection: this runs on a worker thread, and a sqlite connection belongs to its thread.
        with DecisionLog.open(station.log.sdb.path, create=False) as log:
            ref = model_ref(log, model_id)
            if ref is None:
                raise PastModelError(
                    f"the model that ranked this inspection ({short}) is not in the model registry and no record"
                    " says where its weights were kept, so the heatmap of that model cannot be made"
                )
            try:
                scorer = load_choice(ModelChoice(ref, "registry", model_id), station.scorer.device)
            except InspectorError as exc:
                raise PastModelError(
                    f"the weights of the model that ranked this inspection ({short}) can no longer be loaded"
                    f" from {ref}: {exc}. Restore that file from a backup to see where that model looked"
                ) from None
            library = log.library.library(version)
            s = station.scoring
            return compile_model(scorer, library, version, log, ref, "registry", s.caption_templates, s.example_prior)


_BY_STATION: weakref.WeakKeyDictionary[object, PastModels] = weakref.WeakKeyDictionary()
_BY_STATION_LOCK = threading.Lock()


def past_models(station: Station) -> PastModels:
    """The station's cache of earlier models (one per station, made on first use)."""
    with _BY_STATION_LOCK:
        found = _BY_STATION.get(station)
        if found is None:
            found = _BY_STATION[station] = PastModels()
        return found
