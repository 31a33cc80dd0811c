"""TorchScorer: numpy in, unit-norm float32 numpy out; input validation; GPU half precision."""

import math

import numpy as np
import pytest
import torch

from models.factory import create_model
from models.scorer import TorchScorer

TEXTS = ["a hairline crack across the cell", "a burn mark", "a clean surface with no defect"]
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (80 + 10 * i, 100, 3), dtype=np.uint8) for i in range(n)]


def _assert_unit_rows(x: np.ndarray, rows: int, dim: int) -> None:
    assert x.dtype == np.float32 and x.shape == (rows, dim)
    assert np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_scorer(tiny_bundle):
    return TorchScorer(tiny_bundle, batch_size=2)


def test_attributes_describe_the_model(tiny_bundle, tiny_scorer):
    assert tiny_scorer.model_id == tiny_bundle.model_id
    assert tiny_scorer.embed_dim == tiny_scorer.embed_texts(["x"]).shape[1]
    assert tiny_scorer.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)  # open_clip's documented init, log(1/0.07)
    assert tiny_scorer.image_size == 64 and tiny_scorer.device == "cpu"


def test_tiny_embeddings_are_unit_norm_and_batch_invariant(tiny_bundle, tiny_scorer):
    images = _images(5)
    batched = tiny_scorer.embed_images(images)  # batches of 2, 2, 1
    _assert_unit_rows(batched, 5, tiny_scorer.embed_dim)
    one_batch = TorchScorer(tiny_bundle, batch_size=32).embed_images(images)
    np.testing.assert_allclose(batched, one_batch, atol=1e-5)
    texts = tiny_scorer.embed_texts(TEXTS)
    _assert_unit_rows(texts, 3, tiny_scorer.embed_dim)
    assert not np.allclose(texts[0], texts[1])


def test_empty_inputs_give_empty_matrices(tiny_scorer):
    assert tiny_scorer.embed_images([]).shape == (0, tiny_scorer.embed_dim)
    assert tiny_scorer.embed_texts([]).shape == (0, tiny_scorer.embed_dim)


def test_gray_images_equal_their_rgb_version(tiny_scorer):
    gray = _images(1)[0][:, :, 0]
    rgb = np.stack([gray] * 3, axis=-1)
    np.testing.assert_allclose(tiny_scorer.embed_images([gray]), tiny_scorer.embed_images([rgb]), atol=1e-6)
    np.testing.assert_allclose(tiny_scorer.embed_images([gray[:, :, None]]), tiny_scorer.embed_images([rgb]), atol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        ([np.zeros((32, 32, 3), np.float32)], "dtype float32"),
        ([np.zeros((32, 32, 4), np.uint8)], "RGBA"),
        ([np.zeros((0, 32, 3), np.uint8)], "empty"),
        ([np.zeros((2, 32, 32, 3), np.uint8)], "shape"),
        (["not an image"], "numpy uint8 array"),
        (np.zeros((32, 32, 3), np.uint8), "single array"),
    ],
)
def test_bad_images_are_rejected(tiny_scorer, bad, message):
    with pytest.raises(ValueError, match=message):
        tiny_scorer.embed_images(bad)


def test_bad_texts_are_rejected(tiny_scorer):
    with pytest.raises(ValueError, match="single string"):
        tiny_scorer.embed_texts("a crack")
    with pytest.raises(ValueError, match="description 1 is a int"):
        tiny_scorer.embed_texts(["a crack", 3])


def test_batch_array_is_accepted(tiny_scorer):
    batch = np.stack(_images(1) * 2)
    out = tiny_scorer.embed_images(batch)
    assert out.shape == (2, tiny_scorer.embed_dim)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


def test_default_embeds_images_and_descriptions(default_bundle):
    scorer = TorchScorer(default_bundle)
    images = _images(2, seed=1)
    first_img, first_txt = scorer.embed_images(images), scorer.embed_texts(TEXTS)
    _assert_unit_rows(first_img, 2, 256)
    _assert_unit_rows(first_txt, 3, 256)
    np.testing.assert_array_equal(scorer.embed_images(images), first_img)
    np.testing.assert_array_equal(scorer.embed_texts(TEXTS), first_txt)
    assert math.isfinite(scorer.logit_scale) and scorer.image_size == 224


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_autocast_agrees_with_fp32_on_cpu(tiny_bundle, precision):
    # The same autocast path the GPU uses, exercised here so machines without CUDA still cover it.
    half = TorchScorer(create_model("inspector-tiny", device="cpu", precision=precision))
    full = TorchScorer(tiny_bundle)
    for a, b in (
        (half.embed_images(_images(3)), full.embed_images(_images(3))),
        (half.embed_texts(TEXTS), full.embed_texts(TEXTS)),
    ):
        _assert_unit_rows(a, len(b), b.shape[1])
        assert np.min(np.sum(a * b, axis=1)) > 0.999
        assert not np.array_equal(a, b)  # it really ran in reduced precision


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("arch", ["inspector-tiny", "inspector-default"])
def test_fp16_on_cuda_agrees_with_fp32(arch):
    half = TorchScorer(create_model(arch, device="cuda"))
    full = TorchScorer(create_model(arch, device="cuda", precision="fp32"))
    assert half.model_id == full.model_id and half.device.startswith("cuda")
    images = _images(4, seed=2)
    for a, b in (
        (half.embed_images(images), full.embed_images(images)),
        (half.embed_texts(TEXTS), full.embed_texts(TEXTS)),
    ):
        _assert_unit_rows(a, len(b), b.shape[1])
        assert np.min(np.sum(a * b, axis=1)) > 0.995  # cosine similarity per row
        np.testing.assert_allclose(a, b, atol=2e-2)


@pytest.mark.gpu
@gpu
def test_cuda_embeddings_match_cpu(tiny_bundle):
    cuda = TorchScorer(create_model("inspector-tiny", device="cuda", precision="fp32"))
    cpu = TorchScorer(tiny_bundle)
    np.testing.assert_allclose(cuda.embed_texts(TEXTS), cpu.embed_texts(TEXTS), atol=1e-4)
