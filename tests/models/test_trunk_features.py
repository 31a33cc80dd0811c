"""Mid-level trunk features: one fixed-length vector per image, deterministic, read off the frame
path's own forward, and a clear refusal for a tower without listed stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_variants import tiny_dense_bundle
from models.dense_map import FrontEnd
from models.scorer import TorchScorer
from models.tiling import TileSpec
from models.trunk_features import (
    DEFAULT_STAGES,
    DEFAULT_STATS,
    UnsupportedTower,
    capture,
    feature_dim,
    stages,
    trunk_features,
)


@pytest.fixture(scope="module")
def visual() -> torch.nn.Module:
    return tiny_dense_bundle(96).model.visual.eval()


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_shapes_follow_stages_and_statistics(visual: torch.nn.Module) -> None:
    info = stages(visual)
    assert [d["reduction"] for d in info] == [2, 4, 8, 16, 32]
    images = [_image(96, 128, 0), _image(80, 80, 1), _image(96, 128, 2)]  # two shapes: two batches
    out = trunk_features(visual, images, picks=(1, 3), stats=("mean", "max"))
    assert out.shape == (3, (24 + 112) * 2) == (3, feature_dim(visual, (1, 3), ("mean", "max")))
    assert out.dtype == np.float32 and np.isfinite(out).all()
    resized = trunk_features(visual, images, input_size=64)
    assert resized.shape == (3, feature_dim(visual, DEFAULT_STAGES, DEFAULT_STATS))
    # max >= mean per channel: the statistics are what their names say
    both = trunk_features(visual, images[:1], picks=(2,), stats=("mean", "max", "std"))
    mean, peak, spread = np.split(both[0], 3)
    assert (peak >= mean - 1e-5).all() and (spread >= 0).all()


def test_deterministic_and_independent_of_the_batch(visual: torch.nn.Module) -> None:
    images = [_image(64, 64, s) for s in range(5)]
    a = trunk_features(visual, images, batch_size=2)
    b = trunk_features(visual, images, batch_size=5)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(a, trunk_features(visual, images, batch_size=2))
    assert not np.allclose(a[0], a[1])  # different images, different vectors


def test_frame_path_reads_them_off_its_own_forward(visual: torch.nn.Module) -> None:
    bundle = tiny_dense_bundle(96, seed=1)  # other weights, then the fixture's: the state dict is what counts
    bundle.model.visual.load_state_dict(visual.state_dict())
    scorer = TorchScorer(bundle, frontend=FrontEnd(96, TileSpec("off")))
    frame = _image(96, 128, 3)
    scorer.encode_frame(frame)  # builds the frame path's encoder (its BatchNorm-folded copy is checked once)
    ran: list[torch.nn.Module] = []  # every module the frame path runs
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, *_: ran.append(m))
    features = scorer.encode_frame(frame, mid=True)
    handle.remove()
    stems = [m for m in ran if isinstance(m, torch.nn.Conv2d) and m.in_channels == 3]
    assert len(stems) == 1  # one forward gives the ranking's features and the mid-level ones
    plain = scorer.encode_frame(frame)  # not asked for: not captured (it costs time per frame)
    assert plain.mid is None and plain.mid_spec == ""
    np.testing.assert_array_equal(plain.embedding, features.embedding)
    assert features.mid_spec == "stages=1,2,3;stats=mean,std,max"
    np.testing.assert_allclose(features.mid, trunk_features(visual, [frame])[0], rtol=1e-3, atol=1e-4)
    assert not any(m._forward_hooks for m in ran)  # hooks removed after the forward


def test_unsupported_tower_and_bad_choices_are_refused_clearly(visual: torch.nn.Module, tiny_bundle) -> None:
    with pytest.raises(UnsupportedTower, match="no timm trunk with feature_info"):
        trunk_features(tiny_bundle.model.visual, [_image(64, 64, 0)])  # a ViT tower
    with pytest.raises(UnsupportedTower):
        stages(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="stages must be"):
        trunk_features(visual, [_image(64, 64, 0)], picks=(7,))
    with pytest.raises(ValueError, match="statistics must be"):
        trunk_features(visual, [_image(64, 64, 0)], stats=("median",))
    with pytest.raises(RuntimeError), capture(visual, (1,)):
        raise RuntimeError("a forward that fails")
    assert not any(m._forward_hooks for m in visual.trunk.modules())
