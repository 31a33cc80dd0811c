"""After a promotion, an inspection ranked by the earlier model is still explained by THAT model:
loaded again from the registry (identity checked), cached (small LRU), and refused in plain words
when its weights are gone. Real checkpoints of the tiny model throughout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inspector.errors import InspectorError
from inspector.frame.explain import explain_record
from inspector.frame.records import Frame
from inspector.learning.registry import ModelRegistry
from inspector.past_models import PastModelError, PastModels, model_ref, past_models
from inspector.station import Station
from inspector.store.audit import inspection_record
from model_variants import promote, save_variant
from model_variants import tiny_config as config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # a shared CPU; the tiny model gains nothing from more


def part(seed: int) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    rgb[10:20, 5:60] = 255
    return rgb


@pytest.fixture()
def promoted(tmp_path: Path, add_accounts):
    """An inspection ranked by the tiny model, then a fine-tuned variant promoted and in use."""
    st = Station.open(config(tmp_path))
    add_accounts(st.log, {"qa1": "qa"})
    qa = st.log.login("qa1", "qa1-pass-1")
    tiny_id = st.model_id
    ModelRegistry(st.log).register(
        tiny_id, "inspector-tiny", qa, parent_id=None, data_hash="", recipe={}, figures={}, state="active"
    )
    result = st.record(st.inspect(Frame(part(1), datetime.now(UTC), "cam", 1)), qa)
    record = inspection_record(st.log, result.inspection_id)
    before = explain_record(st, record, 1)  # the map while the ranking model is the one in use
    new_id = save_variant(tmp_path / "v2", 7)
    promote(st, qa, new_id, tmp_path / "v2", tiny_id)
    yield st, qa, record, before, tiny_id
    st.close()


def test_an_inspection_ranked_before_a_promotion_is_explained_by_its_own_model(promoted) -> None:
    st, _, record, before, tiny_id = promoted
    assert st.model_id != record.model_id == tiny_id
    cache = past_models(st)
    heat = explain_record(st, record, 1)
    np.testing.assert_allclose(heat.heatmap, before.heatmap, atol=1e-5)  # the same map as before the promotion
    assert cache.cached() == [tiny_id] and cache.loads == 1
    explain_record(st, record, 2)
    assert cache.loads == 1  # the second map comes from the cached model


def test_a_model_never_registered_is_found_through_the_event_that_loaded_it(tmp_path: Path, add_accounts) -> None:
    with Station.open(config(tmp_path)) as st:
        add_accounts(st.log, {"qa1": "qa"})
        qa = st.log.login("qa1", "qa1-pass-1")
        tiny_id = st.model_id
        record = inspection_record(
            st.log, st.record(st.inspect(Frame(part(2), datetime.now(UTC), "c", 1)), qa).inspection_id
        )
        new_id = save_variant(tmp_path / "v2", 3)
        assert st.switch_model(str(tmp_path / "v2")) == new_id  # the configured model was never registered
        assert model_ref(st.log, tiny_id) == "inspector-tiny"
        assert explain_record(st, record, 1).label_id == record.candidates[0].label_id


def test_weights_that_are_gone_are_said_so_plainly(tmp_path: Path, add_accounts) -> None:
    with Station.open(config(tmp_path)) as st:
        add_accounts(st.log, {"qa1": "qa"})
        qa = st.log.login("qa1", "qa1-pass-1")
        first = save_variant(tmp_path / "v1", 1)
        ModelRegistry(st.log).register(
            first, str(tmp_path / "v1"), qa, parent_id=None, data_hash="", recipe={}, figures={}, state="active"
        )
        assert st.follow_registry() == first
        record = inspection_record(
            st.log, st.record(st.inspect(Frame(part(3), datetime.now(UTC), "c", 1)), qa).inspection_id
        )
        second = save_variant(tmp_path / "v2", 2)
        promote(st, qa, second, tmp_path / "v2", first)
        for suffix in (".safetensors", ".json"):
            (tmp_path / f"v1{suffix}").unlink()
        with pytest.raises(PastModelError, match=r"weights of the model that ranked this inspection .* can no longer"):
            explain_record(st, record, 1)
        unknown = type(record)(**{**record.__dict__, "model_id": "f" * 64})
        with pytest.raises(InspectorError, match="not in the model registry and no record says where"):
            explain_record(st, unknown, 1)


def test_the_cache_keeps_the_most_recently_used_models(promoted, tmp_path: Path) -> None:
    st, qa, record, _, tiny_id = promoted
    cache = PastModels(capacity=1)
    third = save_variant(tmp_path / "v3", 11)
    ModelRegistry(st.log).register(third, str(tmp_path / "v3"), qa, parent_id=None, data_hash="", recipe={}, figures={})
    assert cache.get(st, tiny_id, record.library_version).model_id == tiny_id
    assert cache.get(st, third, record.library_version).model_id == third
    assert cache.cached() == [third] and cache.loads == 2
    cache.get(st, third, record.library_version)
    assert cache.loads == 2
