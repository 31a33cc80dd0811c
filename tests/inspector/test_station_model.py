"""The station runs the registry's active model: chosen at open (else the configured one), refused
(never replaced) when its checkpoint is broken, switched at run time without a mixed frame, and a
failed switch keeps the model the station had. Real checkpoints of the tiny model throughout."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.config import DatabaseConfig, LibraryConfig, ModelConfig, StationConfig
from inspector.errors import InspectorError, ModelLoadError
from inspector.frame.records import Frame
from inspector.learning.registry import ModelRegistry
from inspector.library.labels import seed_library_dir
from inspector.station import Station
from inspector.station_model import ActiveModelError
from inspector.store.decision_log import DecisionLog
from model_variants import save_variant

QA_PASSWORD = "qa-engineer-pw"


@pytest.fixture(autouse=True)
def one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # the CI machine is shared; the tiny model gains nothing from more


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {name: (root / name, save_variant(root / name, seed)) for seed, name in enumerate(("new", "other"))}


def _copy_checkpoint(src: Path, dst: Path) -> Path:
    for suffix in (".safetensors", ".json"):
        shutil.copy2(src.with_suffix(suffix), dst.with_suffix(suffix))
    return dst


def _config(tmp_path: Path) -> StationConfig:
    return StationConfig(
        model=ModelConfig("inspector-tiny", "cpu"),
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "station.db")),
    )


def _frame(seq: int = 0) -> Frame:
    rgb = np.random.default_rng(seq).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return Frame(rgb, datetime.now(UTC), "test", seq)


def _scores(station: Station) -> list[tuple[str, float]]:
    return [(c.label_id, round(c.score, 6)) for c in station.inspect(_frame()).ranking.candidates]


@pytest.fixture()
def station(tmp_path: Path, add_accounts):
    """A station on the configured tiny model, with an admin and a QA engineer."""
    st = Station.open(_config(tmp_path))
    add_accounts(st.log, {"qa": "qa"}, passwords={"admin": "admin-secret-1", "qa": QA_PASSWORD})
    yield st, st.log.login("qa", QA_PASSWORD)
    st.close()


def _register(station: Station, qa, model_id: str, checkpoint: Path | str, state: str = "candidate") -> None:
    ModelRegistry(station.log).register(
        model_id, str(checkpoint), qa, parent_id=None, data_hash="", recipe={}, figures={}, state=state, reason="test"
    )


def _promoted(
    station: Station, qa, model_id: str, checkpoint: Path, base_id: str, promote: bool = True
) -> ModelRegistry:
    """Register a candidate with figures no worse than its base, and promote it (the public path)."""
    figures = {"n": 10, "top1": 0.5, "top3": 0.8, "mrr": 0.6}
    registry = ModelRegistry(station.log)
    registry.register(
        model_id,
        str(checkpoint),
        qa,
        parent_id=base_id,
        data_hash="d",
        recipe={},
        figures={
            "baseline_model_id": base_id,
            "baseline": {"confirmations": figures, "typed_defects": figures},
            "candidate": {"confirmations": figures, "typed_defects": figures},
        },
    )
    if promote:
        registry.promote(model_id, qa, "test")
    return registry


def test_without_an_active_model_the_configured_one_runs_and_the_event_says_why(station) -> None:
    st, _ = station
    assert st.model.source == "configuration" and st.model.ref == "inspector-tiny"
    event = st.log.events(kind="model_loaded")[-1]
    assert event["subject"] == st.model_id and '"configuration"' in event["detail"]


def test_the_active_registered_model_runs_at_the_next_open(station, variants, tmp_path: Path) -> None:
    st, qa = station
    path, new_id = variants["new"]
    _register(st, qa, new_id, path, state="active")
    assert st.model_id != new_id  # a running headless station keeps its model until it reopens
    st.close()
    with Station.open(_config(tmp_path)) as reopened:
        assert reopened.model_id == new_id and reopened.model.source == "registry"
        assert reopened.inspect(_frame()).ranking.model_id == new_id
        event = reopened.log.events(kind="model_loaded")[-1]
        assert event["subject"] == new_id and '"registry"' in event["detail"] and str(path) in event["detail"]


@pytest.mark.parametrize("fault", ["missing", "replaced by other weights"])
def test_a_broken_active_model_is_refused_not_replaced_and_rollback_recovers(
    station, variants, tmp_path: Path, fault: str
) -> None:
    st, qa = station
    tiny_id = st.model_id
    _register(st, qa, tiny_id, "inspector-tiny", state="active")
    path = _copy_checkpoint(variants["new"][0], tmp_path / "candidate")
    _promoted(st, qa, variants["new"][1], path, tiny_id)
    st.close()
    if fault == "missing":
        path.with_suffix(".safetensors").unlink()
    else:
        _copy_checkpoint(variants["other"][0], path)  # valid file, sidecar and hash: but not the registered model
    with pytest.raises(ActiveModelError) as refused:
        Station.open(_config(tmp_path))
    message = str(refused.value)
    assert str(path) in message and "inspector model rollback" in message and variants["new"][1][:12] in message
    with Station.open(_config(tmp_path), with_log=False) as headless:  # no database: nothing to refuse
        assert headless.model_id == tiny_id
    with DecisionLog.open(tmp_path / "station.db", create=False) as log:
        failed = log.events(kind="model_load_failed")
        assert failed and failed[-1]["subject"] == variants["new"][1]
        ModelRegistry(log).rollback(tiny_id, log.login("qa", QA_PASSWORD), "candidate checkpoint lost")
    with Station.open(_config(tmp_path)) as recovered:
        assert recovered.model_id == tiny_id and recovered.model.source == "registry"


def test_switch_model_ranks_with_the_new_model_and_logs_it(station, variants) -> None:
    st, _ = station
    old_id, before = st.model_id, _scores(st)
    path, new_id = variants["new"]
    assert st.switch_model(str(path), model_id=new_id, reason="test") == new_id
    result = st.inspect(_frame())
    assert st.model_id == new_id and result.ranking.model_id == new_id and st.index.model_id == new_id
    assert _scores(st) != before
    event = st.log.events(kind="model_switched")[-1]
    assert event["subject"] == new_id and old_id in event["detail"]
    # The new model's description embeddings are cached in the database like the old one's.
    texts = list(st.index.texts)
    assert len(st.log.library.get_cached_embeddings(new_id, texts)) == len(set(texts))


def _truncate(path: Path) -> None:
    weights = path.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _alter(path: Path) -> None:
    weights = path.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF  # one byte of one tensor: same size, same header
    weights.write_bytes(bytes(data))


def _sidecar_hash(path: Path) -> None:
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["weights_sha256"] = hashlib.sha256(b"another file").hexdigest()
    sidecar.write_text(json.dumps(meta))


def _pickle(path: Path) -> None:
    path.with_suffix(".safetensors").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))


def _missing(path: Path) -> None:
    path.with_suffix(".safetensors").unlink()


FAULTS = {
    "truncated": (_truncate, "truncated|not a valid safetensors|does not match"),
    "altered weights": (_alter, "does not match its sidecar hash"),
    "sidecar hash mismatch": (_sidecar_hash, "does not match its sidecar hash"),
    "pickle file": (_pickle, "pickle"),
    "missing file": (_missing, "do not exist|neither a known architecture"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failed_switch_keeps_the_model_the_station_had(station, variants, tmp_path: Path, fault: str) -> None:
    st, _ = station
    old_id, before = st.model_id, _scores(st)
    break_it, named = FAULTS[fault]
    path = _copy_checkpoint(variants["new"][0], tmp_path / "broken")
    break_it(path)
    with pytest.raises(ModelLoadError, match=named):
        st.switch_model(str(path), model_id=variants["new"][1])
    assert st.model_id == old_id and st.inspect(_frame()).ranking.model_id == old_id
    assert _scores(st) == before  # still ranking with the old model, against its own embeddings
    failed = st.log.events(kind="model_switch_failed")[-1]
    assert failed["subject"] == variants["new"][1] and old_id in failed["detail"]


class _DimScorer:
    """Random unit vectors of a given length: a model whose vectors do not fit another's index."""

    logit_scale, image_size, device = 30.0, 8, "cpu"

    def __init__(self, dim: int) -> None:
        self.dim, self.model_id = dim, f"dim-{dim}"

    def _vec(self, key: str) -> np.ndarray:
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{self.dim}{key}".encode()).digest()[:8], "little"))
        v = rng.normal(size=self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def embed_texts(self, texts):
        return np.stack([self._vec(t) for t in texts])

    def embed_images(self, images):
        return np.stack([self._vec("image") for _ in images])


def test_a_capture_thread_ranks_each_frame_wholly_with_one_model_while_models_swap(tmp_path: Path) -> None:
    config = replace(_config(tmp_path), model=ModelConfig("unused", "cpu"))
    with Station.open(config, scorer=_DimScorer(16)) as st:
        states = [st.model, st.compile_for(_DimScorer(24), "dim-24")]
        stop, seen, errors = threading.Event(), set(), []

        def capture() -> None:
            while not stop.is_set():
                try:
                    seen.add(st.inspect(_frame()).ranking.model_id)
                except Exception as exc:  # noqa: BLE001  a mixed frame shows up as a shape error
                    errors.append(exc)
                    return

        worker = threading.Thread(target=capture)
        worker.start()
        try:
            for k in range(200):
                st.adopt(states[(k + 1) % 2], reason="swap test")
        finally:
            stop.set()
            worker.join(10)
        assert errors == [] and seen <= {"dim-16", "dim-24"} and seen


def test_follow_registry_switches_a_running_station_after_promotion_and_rollback(station, variants) -> None:
    st, qa = station
    tiny_id = st.model_id
    assert st.follow_registry() is None  # nothing registered: nothing to follow
    _register(st, qa, tiny_id, "inspector-tiny", state="active")
    path, new_id = variants["new"]
    registry = _promoted(st, qa, new_id, path, tiny_id, promote=False)
    assert st.follow_registry() is None  # the candidate is not in use until promoted
    registry.promote(new_id, qa, "same figures, newer data")
    assert st.follow_registry() == new_id and st.inspect(_frame()).ranking.model_id == new_id
    registry.rollback(tiny_id, qa, "night shift complained")
    assert st.follow_registry() == tiny_id and st.model_id == tiny_id


def test_a_station_without_database_still_switches(tmp_path: Path, variants) -> None:
    with Station.open(_config(tmp_path), with_log=False) as st:
        path, new_id = variants["new"]
        assert st.switch_model(str(path)) == new_id and st.model.source == "caller"
        with pytest.raises(InspectorError):
            st.switch_model(str(tmp_path / "nothing-here"))
        assert st.model_id == new_id
