"""The inference copy with BatchNorms folded computes what the tower computes, and leaves it alone."""

from __future__ import annotations

import torch
from torch import nn

from models.fused import fold_batchnorm, fused_for_inference


class _Trunk(nn.Module):
    def __init__(self, norm: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8) if norm else nn.Identity()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise, with a bias of its own
        self.bn2 = nn.BatchNorm2d(8) if norm else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))


class _Tower(nn.Module):
    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk, self.head = trunk, nn.Linear(8, 4)


def _trained_stats(trunk: _Trunk) -> _Trunk:
    """Non-trivial running statistics and affine parameters, as a trained model has."""
    g = torch.Generator().manual_seed(1)
    for bn in (trunk.bn1, trunk.bn2):
        bn.running_mean.copy_(torch.randn(8, generator=g))
        bn.running_var.copy_(torch.rand(8, generator=g) + 0.5)
        bn.weight.data.copy_(torch.randn(8, generator=g))
        bn.bias.data.copy_(torch.randn(8, generator=g))
    return trunk.eval()


def test_folded_copy_matches_and_original_is_untouched() -> None:
    trunk = _trained_stats(_Trunk())
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    folded, count = fold_batchnorm(trunk)
    assert count == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(folded.forward_features(x), trunk.forward_features(x), rtol=1e-4, atol=1e-5)
    for k, v in trunk.state_dict().items():  # the tower's own weights (saved, hashed, trained) are unchanged
        assert torch.equal(v, before[k]), k


def test_tower_uses_the_folded_trunk_and_shares_the_head() -> None:
    tower = _Tower(_trained_stats(_Trunk()))
    fused = fused_for_inference(tower, probe_size=16)
    assert fused is not tower and fused.trunk is not tower.trunk and fused.head is tower.head
    assert tower.trunk.bn1.__class__ is nn.BatchNorm2d  # the original keeps its norms


def test_towers_without_norms_are_returned_unchanged() -> None:
    tower = _Tower(_Trunk(norm=False).eval())
    assert fused_for_inference(tower, probe_size=16) is tower
    assert fused_for_inference(nn.Linear(2, 2)) is not None  # no trunk: nothing to fold, no error


def test_real_tower_frame_features_match_unfused() -> None:
    """The default model's frame path gives the same maps with and without folding."""
    import numpy as np

    from models.dense_map import DenseEncoder, FrontEnd
    from models.factory import create_model

    bundle = create_model("inspector-default", device="cpu")
    visual = bundle.model.visual.eval()
    args = (visual, tuple(visual.preprocess_cfg["mean"]), tuple(visual.preprocess_cfg["std"]), torch.device("cpu"))
    rgb = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    a = DenseEncoder(*args, FrontEnd(224), fuse=True).encode(rgb, mid=True)
    b = DenseEncoder(*args, FrontEnd(224), fuse=False).encode(rgb, mid=True)
    np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-4)
    np.testing.assert_allclose(a.local, b.local, atol=1e-3)
    assert a.mid is not None  # the mid-level hooks find the stages on the folded copy too
    np.testing.assert_allclose(a.mid, b.mid, rtol=1e-3, atol=1e-3)
