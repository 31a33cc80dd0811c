"""The front end's dense maps: global embedding == encode_image, and the gradient-free map == Grad-CAM.

For global average pooling followed by a linear projection, Grad-CAM at the last feature map is
relu(g . W f_ij) with g the gradient at the embedding: models.dense_map.cam_map computes exactly
that from one forward. Checked here against pytorch-grad-cam on a random EfficientNet tower.
"""

from __future__ import annotations

import numpy as np
import pytest

from model_variants import tiny_dense_bundle
from models.dense_map import FrontEnd, supports_dense
from models.explain import Explainer, dense_explanation
from models.factory import ModelBundle
from models.scorer import TorchScorer
from models.tiling import TileSpec

SIZE = 128


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    return tiny_dense_bundle(SIZE)


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.full((h, w, 3), 90, np.uint8)
    frame[h // 4 : h // 4 + 24, w // 2 : w // 2 + 24] = 230  # a patch gives the map something to find
    return np.clip(frame + rng.normal(0, 12, frame.shape), 0, 255).astype(np.uint8)


def test_default_tower_is_dense_and_global_matches_encode_image(bundle: ModelBundle) -> None:
    assert supports_dense(bundle.model.visual)
    scorer = TorchScorer(bundle, frontend=FrontEnd(SIZE, TileSpec("off")))
    frame = _frame(SIZE, SIZE)
    features = scorer.encode_frame(frame)
    assert float(features.embedding @ scorer.embed_images([frame])[0]) > 0.9999
    assert features.local.shape == (16, 32)  # 4x4 cells at stride 32
    np.testing.assert_allclose(np.linalg.norm(features.local, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("versus", [False, True])
def test_dense_map_agrees_with_grad_cam(bundle: ModelBundle, versus: bool) -> None:
    scorer = TorchScorer(bundle, frontend=FrontEnd(SIZE, TileSpec("off")))
    frame = _frame(SIZE, SIZE, seed=1)
    features = scorer.encode_frame(frame)
    rng = np.random.default_rng(2)
    text = features.local[int(np.argmax(features.local @ features.local.mean(0)))] + 0.3 * rng.normal(size=32)
    other = rng.normal(size=32).astype(np.float32) if versus else None
    text = (text / np.linalg.norm(text)).astype(np.float32)
    if other is not None:
        other /= np.linalg.norm(other)
    autograd = Explainer(bundle).explain(frame, text, other).heatmap
    cheap = dense_explanation(frame, features, text, other).heatmap
    assert autograd.shape == cheap.shape == (SIZE, SIZE)
    assert autograd.max() > 0 and cheap.max() > 0
    assert np.corrcoef(autograd.ravel(), cheap.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("shape", [(480, 640), (300, 1400)])
def test_tiled_map_is_at_frame_size(bundle: ModelBundle, shape: tuple[int, int]) -> None:
    scorer = TorchScorer(bundle, frontend=FrontEnd(SIZE, TileSpec("on", 192, 32), "h"))
    frame = _frame(*shape)
    features = scorer.encode_frame(frame)
    assert features.tiled and len(features.views) > 2
    exp = dense_explanation(frame, features, features.embedding)
    assert exp.heatmap.shape == shape and exp.heatmap.max() == 1.0
    roi = np.zeros(shape, bool)
    roi[: shape[0] // 2, : shape[1] // 2] = True
    inside = scorer.encode_frame(frame, roi)
    assert all(b[0] < shape[1] // 2 and b[1] < shape[0] // 2 for b in inside.local_boxes)
