"""The native input size: optional sidecar key, default from the architecture config (v1 has none)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.architectures import arch_config as _arch_config
from models.checkpoint import read_sidecar
from models.errors import CheckpointError
from models.factory import WEIGHTS_DIR

V1 = WEIGHTS_DIR / "inspector-default-v1"


def test_v1_sidecar_has_no_input_size_and_config_gives_224() -> None:
    sidecar = read_sidecar(V1)
    assert "input_size" not in sidecar and sidecar["base"] == "inspector-default"
    assert _arch_config("inspector-default")[1]["input_size"] == 224


@pytest.mark.parametrize("value, ok", [(512, True), (16, False), ("448", False), (True, False)])
def test_sidecar_input_size_is_checked(tmp_path: Path, value: object, ok: bool) -> None:
    shutil.copy(V1.with_suffix(".safetensors"), tmp_path / "m.safetensors")
    data = json.loads(V1.with_suffix(".json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**data, "input_size": value}))
    if ok:
        assert read_sidecar(tmp_path / "m")["input_size"] == value
    else:
        with pytest.raises(CheckpointError, match="input_size"):
            read_sidecar(tmp_path / "m")


def test_v1_loads_and_maps_640x480_at_448() -> None:
    import numpy as np

    from models.dense_map import FrontEnd
    from models.factory import load_model
    from models.scorer import TorchScorer

    scorer = TorchScorer(load_model("inspector-default-v1", device="cpu"))
    assert scorer.input_size == 224 and scorer.dense
    features = scorer.encode_frame(np.full((480, 640, 3), 128, np.uint8), frontend=FrontEnd(448))
    assert not features.tiled and features.views[0].dense.shape[1:] == (14, 19)  # >= 14x14 map
    assert features.local.shape == (14 * 19, scorer.embed_dim)


V2 = WEIGHTS_DIR / "inspector-default-v2"


def test_v2_runs_at_448_is_a_child_of_v1_and_carries_its_validation_calibration() -> None:
    from inspector.frame.calibration import calibration_from, policy_for
    from models.factory import load_model
    from models.scorer import TorchScorer

    sidecar = read_sidecar(V2)
    assert sidecar["input_size"] == 448 and sidecar["base"] == "inspector-default"
    assert sidecar["parent_model_id"] == read_sidecar(V1)["weights_sha256"]  # trained from v1
    assert sidecar["training"]["recipe"]["name"] == "default-v2"
    cal = calibration_from(sidecar)
    assert cal is not None and "validation" in cal.evidence["split"]
    assert dict(policy_for(cal).label_thresholds).keys() == cal.per_label.keys()
    scorer = TorchScorer(load_model("inspector-default-v2", device="cpu"))
    from models.model_id import config_of, model_id_for

    # the id covers the weights and the sidecar's configuration, calibration included (models.model_id)
    assert scorer.input_size == 448 and scorer.model_id == model_id_for(sidecar["weights_sha256"], config_of(sidecar))
    assert scorer.model_id != model_id_for(sidecar["weights_sha256"], config_of({**sidecar, "calibration": None}))
    assert V2.with_suffix(".safetensors").stat().st_size < 8_000_000  # trainable part only, like v1
