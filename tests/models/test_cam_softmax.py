"""Grad-CAM of the softmax probability over the library's labels, on the real default tower.

For global average pooling then a linear projection, d softmax_c / d e^ = s p_c (t_c - sum_k p_k t_k),
so the map is relu(g . P_ij) with that g (models.dense_map.cam_map, kind "softmax"). Checked against
pytorch-grad-cam's own ClassifierOutputSoftmaxTarget on a model that outputs the library's logits,
and against our autograd Explainer with models.cam_targets.SoftmaxTarget.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

from models.dense_map import FrontEnd, cam_map, unit
from models.explain import Explainer
from models.scorer import TorchScorer
from models.synth import DEFECT_TYPES, generate, heldout_descriptions
from models.tiling import TileSpec

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]  # loads v1 (~10 s)
LABELS = [d for d in DEFECT_TYPES if d != "ok"]


@pytest.fixture(scope="module")
def v1():
    from models.factory import load_model

    bundle = load_model("inspector-default-v1", device="cpu")
    scorer = TorchScorer(bundle, frontend=FrontEnd(224, TileSpec("off")))
    library = np.stack([unit(scorer.embed_texts(heldout_descriptions(d)).mean(axis=0)) for d in LABELS])
    return bundle, scorer, library


class _Logits(torch.nn.Module):
    """image -> logit_scale * cos(image, each library label): what ClassifierOutputSoftmaxTarget expects."""

    def __init__(self, visual: torch.nn.Module, library: np.ndarray, scale: float) -> None:
        super().__init__()
        self.visual, self.library, self.scale = visual, torch.from_numpy(library), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(self.visual(x).float(), dim=-1) @ self.library.T


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("defect", ["scratch", "stain"])
def test_softmax_map_equals_pytorch_grad_cam_on_the_real_tower(v1, defect: str) -> None:
    bundle, scorer, library = v1
    frame = generate(1, seed=5, split="test", defects=[defect])[0].image  # 224 px: the tower's own size
    c = LABELS.index(defect)
    x = bundle.preprocess(Image.fromarray(frame)).unsqueeze(0)
    with GradCAM(
        model=_Logits(bundle.model.visual, library, scorer.logit_scale), target_layers=[bundle.model.visual.trunk.bn2]
    ) as cam:
        reference = cam(input_tensor=x, targets=[ClassifierOutputSoftmaxTarget(c)])[0]
    features = scorer.encode_frame(frame)
    ours = cam_map(features, library[c], None, 224, 224, "softmax", library, scorer.logit_scale)
    autograd = Explainer(bundle).explain(frame, library[c], library=library, logit_scale=scorer.logit_scale)
    plain = cam_map(features, library[c], None, 224, 224)
    assert reference.max() > 0 and ours.max() > 0 and autograd.target == "softmax"
    assert _corr(reference, ours) > 0.999  # measured 1.0000 (plain cosine map: 0.64 / 0.78)
    assert _corr(reference, autograd.heatmap) > 0.999
    # The target matters: the plain-cosine map of the same label is a different map.
    assert _corr(reference, plain) < _corr(reference, ours) - 0.01


def test_softmax_contrast_is_the_difference_of_probabilities(v1) -> None:
    bundle, scorer, library = v1
    frame = generate(1, seed=6, split="test", defects=["crack"])[0].image
    features = scorer.encode_frame(frame)
    c, v = LABELS.index("crack"), LABELS.index("scratch")

    class Difference:
        def __call__(self, logits: torch.Tensor) -> torch.Tensor:
            p = torch.softmax(logits, dim=-1)
            return p[c] - p[v]

    x = bundle.preprocess(Image.fromarray(frame)).unsqueeze(0)
    with GradCAM(
        model=_Logits(bundle.model.visual, library, scorer.logit_scale), target_layers=[bundle.model.visual.trunk.bn2]
    ) as cam:
        reference = cam(input_tensor=x, targets=[Difference()])[0]
    ours = cam_map(features, library[c], library[v], 224, 224, "softmax", library, scorer.logit_scale)
    assert _corr(reference, ours) > 0.999


def test_softmax_map_needs_a_library(v1) -> None:
    _, scorer, library = v1
    features = scorer.encode_frame(np.full((224, 224, 3), 128, np.uint8))
    with pytest.raises(ValueError, match="library"):
        cam_map(features, library[0], None, 224, 224, "softmax", None)
    with pytest.raises(ValueError, match="map kind"):
        cam_map(features, library[0], None, 224, 224, "nonsense")
