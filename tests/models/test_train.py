"""fit() on the tiny model: learning, logging, cancellation, time limit, exact resume, freezing, clamp."""

import copy
import dataclasses
import io
import json
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from models.factory import create_model
from models.train import TrainConfig, TrainError, fit, lr_at

pytestmark = pytest.mark.training  # the training loop (fit) and its pieces

COLOURS = {"red": (230, 20, 20), "green": (20, 220, 20), "blue": (20, 20, 230), "yellow": (230, 230, 20)}


class Shapes:
    """4 coloured-square classes rendered with numpy, 2 captions per class."""

    def __init__(self, per_class=4):
        rng = np.random.default_rng(0)
        self.items = []
        for name, colour in COLOURS.items():
            for j in range(per_class):
                a = rng.integers(0, 40, (64, 64, 3), dtype=np.uint8)
                x, y = rng.integers(4, 34, 2)
                a[y : y + 26, x : x + 26] = colour
                self.items.append((Image.fromarray(a), (f"a {name} square", f"{name} patch on black")[j % 2]))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.fixture(autouse=True)
def one_thread():
    # The tiny model gains nothing from intra-op threads, and on a busy 2-core machine spinning
    # OpenMP workers slow these small steps down many times over.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def bundle():
    """A fresh tiny model per test: fit() trains in place, the shared tiny_bundle must stay untouched."""
    return create_model("inspector-tiny", device="cpu")


def _cfg(**kw):
    base = dict(steps=8, batch_size=8, lr=5e-3, warmup_steps=2, progress_bar=False)
    return TrainConfig(**{**base, **kw})


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("variant", ["rankclip", "clip"])
def test_loss_decreases(bundle, variant):
    seen = []
    result = fit(bundle, Shapes(), _cfg(steps=60, lr=1e-2, warmup_steps=5, loss_variant=variant), seen.append)
    assert result.completed and result.steps_done == 60 and not result.cancelled
    first = np.mean([s.losses["contrastive_loss"] for s in seen[:5]])
    last = np.mean([s.losses["contrastive_loss"] for s in seen[-5:]])
    assert last < first - 0.5, (first, last)
    if variant == "clip":
        assert all(s.losses["rank_cross_loss"] == 0 and s.ranking_weight == 0 for s in seen)
    else:
        assert seen[-1].losses["rank_cross_loss"] > 0 and seen[-1].losses["rank_in_loss"] > 0


def test_unfrozen_image_tower_learns(bundle):
    seen = []
    fit(bundle, Shapes(), _cfg(steps=40, lr=1e-2, warmup_steps=5, freeze_image=False), seen.append)
    first = np.mean([s.losses["contrastive_loss"] for s in seen[:5]])
    assert np.mean([s.losses["contrastive_loss"] for s in seen[-5:]]) < first - 0.5


def test_jsonl_log_has_every_term_per_step(bundle, tmp_path):
    log = tmp_path / "logs" / "train.jsonl"
    fit(bundle, Shapes(), _cfg(steps=6, log_path=str(log)))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    terms = ("contrastive_loss", "rank_cross_loss", "rank_in_loss")
    for r in rows:
        assert {"lr", "total_loss", "logit_scale", "ranking_weight", "samples_per_s", *terms} <= set(r)
        assert r["total_loss"] == pytest.approx(sum(r[t] for t in terms), rel=1e-5)
    assert rows[0]["ranking_weight"] == 0 and rows[0]["rank_in_loss"] == 0  # the ramp starts at 0 (P7)
    assert rows[-1]["ranking_weight"] > 0 and rows[-1]["rank_cross_loss"] > 0


def test_lr_schedule_warmup_then_cosine_to_zero():
    cfg = TrainConfig(steps=110, lr=1.0, warmup_steps=10)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_at(109, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 99 / 100)))
    tail = [lr_at(s, cfg) for s in range(10, 110)]
    assert all(a >= b for a, b in zip(tail, tail[1:]))


def test_cancel_via_on_step_saves_resumable_checkpoint(bundle, tmp_path):
    cfg = _cfg(steps=10, checkpoint_dir=str(tmp_path / "ck"))
    result = fit(bundle, Shapes(), cfg, on_step=lambda s: s.step < 3)
    assert result.cancelled and not result.completed and result.steps_done == 3
    assert result.checkpoint_path and (tmp_path / "ck" / "latest").read_text().strip() in result.checkpoint_path
    resumed = fit(bundle, Shapes(), dataclasses.replace(cfg, resume=True))
    assert resumed.completed and resumed.steps_done == 10


def test_max_wall_seconds_stops_cleanly(bundle, tmp_path):
    result = fit(bundle, Shapes(), _cfg(steps=50, max_wall_seconds=0.0, checkpoint_dir=str(tmp_path)))
    assert result.steps_done == 1 and not result.completed and not result.cancelled
    assert "max_wall_seconds" in result.reason and result.checkpoint_path is not None


def _noisy(bundle):
    # A train transform that draws from torch's global RNG: resume must restore the RNG state exactly.
    base = bundle.preprocess
    return dataclasses.replace(bundle, train_preprocess=lambda im: base(im) + 0.05 * torch.randn(3, 64, 64))


@pytest.mark.parametrize("frozen", [True, False], ids=["cached-towers", "image-tower-trains"])
def test_resume_reproduces_uninterrupted_run(tmp_path, frozen):
    cfg = _cfg(steps=8, freeze_image=frozen, loss_variant="rankclip", checkpoint_dir=str(tmp_path / "a"))
    straight = _noisy(create_model("inspector-tiny", device="cpu"))
    fit(straight, Shapes(), cfg)
    # 16 samples, batch 8: 2 steps per epoch, so stopping after step 3 resumes mid-epoch.
    split = _noisy(create_model("inspector-tiny", device="cpu"))
    cfg_b = dataclasses.replace(cfg, checkpoint_dir=str(tmp_path / "b"))
    assert fit(split, Shapes(), cfg_b, on_step=lambda s: s.step < 3).steps_done == 3
    fresh = _noisy(create_model("inspector-tiny", device="cpu"))  # a new process would start from scratch
    assert fit(fresh, Shapes(), dataclasses.replace(cfg_b, resume=True)).steps_done == 8
    a, b = _params(straight.model), _params(fresh.model)
    init = _params(create_model("inspector-tiny", device="cpu").model)
    moved = [n for n, p in a.items() if not torch.equal(p, init[n])]
    assert moved  # the comparison below is about trained weights
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)


def test_resume_refuses_a_changed_config(bundle, tmp_path):
    cfg = _cfg(steps=4, checkpoint_dir=str(tmp_path))
    fit(bundle, Shapes(), cfg, on_step=lambda s: s.step < 2)
    with pytest.raises(TrainError, match="lr"):
        fit(bundle, Shapes(), dataclasses.replace(cfg, lr=1.0, resume=True))


def test_frozen_towers_stay_bit_identical_and_projections_train(bundle):
    before = _params(bundle.model)
    fit(bundle, Shapes(), _cfg(steps=5))
    after = _params(bundle.model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == {"visual.proj", "text_projection", "logit_scale"}


def test_unfreezing_last_block_trains_it_and_nothing_earlier(bundle):
    before = _params(bundle.model)
    fit(bundle, Shapes(), _cfg(steps=5, unfreeze_image_blocks=1))
    after = _params(bundle.model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    last = len(bundle.model.visual.transformer.resblocks) - 1
    assert any(n.startswith(f"visual.transformer.resblocks.{last}.") for n in changed)
    assert any(n.startswith("visual.ln_post.") for n in changed)  # the final norm belongs to the last block
    assert not any(n.startswith("visual.transformer.resblocks.0.") or n.startswith("transformer.") for n in changed)


def test_cached_and_uncached_frozen_training_agree():
    runs = []
    for cache in (True, False):
        b = create_model("inspector-tiny", device="cpu")
        fit(b, Shapes(), _cfg(steps=4, cache_tower_outputs=cache))
        runs.append(_params(b.model))
    for name in runs[0]:
        torch.testing.assert_close(runs[1][name], runs[0][name], rtol=1e-4, atol=1e-5, msg=name)


def test_cached_partial_unfreeze_matches_uncached():
    """Last image block open: caching the frozen trunk's activations changes the speed, not the run."""
    runs = []
    for cache in (True, False):
        b = create_model("inspector-tiny", device="cpu")
        seen = []
        fit(b, Shapes(), _cfg(steps=6, unfreeze_image_blocks=1, cache_tower_outputs=cache), seen.append)
        runs.append(([s.total_loss for s in seen], _params(b.model)))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    init = _params(create_model("inspector-tiny", device="cpu").model)
    for name, p in runs[1][1].items():
        # Adam turns float noise on a ~zero gradient (the attention key bias) into lr-sized steps:
        # compare each tensor with how far training moved it.
        moved = float((p - init[name]).abs().max())
        torch.testing.assert_close(runs[0][1][name], p, rtol=0, atol=1e-6 + 0.05 * moved, msg=name)


def test_partial_cache_runs_the_frozen_prefix_once_not_per_step(bundle):
    calls = []
    handle = bundle.model.visual.transformer.resblocks[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        fit(bundle, Shapes(), _cfg(steps=6, unfreeze_image_blocks=1))
    finally:
        handle.remove()
    assert len(calls) == 1  # 16 images fit one caching chunk; the 6 steps never run the frozen block


def test_a_tower_cache_is_reusable_and_checked():
    from models.tower_cache import TowerCache

    data = Shapes()
    first = create_model("inspector-tiny", device="cpu")
    cache = TowerCache(first, data, 1)
    fit(first, data, _cfg(steps=3, unfreeze_image_blocks=1), cache=cache)  # trains only what is open
    again = create_model("inspector-tiny", device="cpu")
    assert fit(again, data, _cfg(steps=3, unfreeze_image_blocks=1), cache=cache).completed
    with pytest.raises(TrainError, match="open image blocks"):
        fit(again, data, _cfg(steps=3), cache=cache)
    other = create_model("inspector-tiny", device="cpu")
    with torch.no_grad():
        other.model.visual.conv1.weight.add_(0.1)  # a frozen weight: the cached activations no longer apply
    with pytest.raises(TrainError, match="other frozen weights"):
        fit(other, data, _cfg(steps=3, unfreeze_image_blocks=1), cache=cache)


def test_a_prefix_cache_gives_the_pooled_cache(bundle):
    from models.tower_cache import TowerCache

    data = Shapes()
    direct = TowerCache(bundle, data, 0)
    derived = TowerCache(bundle, data, 1).pooled()
    assert derived.n_open == 0 and derived.image_sha256 == direct.image_sha256
    torch.testing.assert_close(derived.images, direct.images, rtol=1e-4, atol=1e-5)


def test_default_model_cached_partial_matches_uncached(default_bundle):
    """EfficientNet: two open blocks (BatchNorm in training mode) from cached activations, as uncached."""
    runs = []
    for cache in (True, False):
        b = copy.deepcopy(default_bundle)
        seen = []
        # CLIP loss: the ranking terms sort near-tied scores of these repetitive images, and the cache's
        # channels-last convolutions round differently, which may flip a tie (a discrete, legitimate change).
        fit(
            b,
            Shapes(per_class=2),
            _cfg(
                steps=4, batch_size=8, lr=1e-3, unfreeze_image_blocks=2, loss_variant="clip", cache_tower_outputs=cache
            ),
            seen.append,
        )
        runs.append([s.total_loss for s in seen])
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-3, atol=1e-3)


def test_logit_scale_is_clamped_at_100(bundle):
    with torch.no_grad():
        bundle.model.logit_scale.fill_(5.0)  # s = 148: above the cap before the first step
    seen = []
    fit(bundle, Shapes(), _cfg(steps=5, lr=0.5), seen.append)
    assert all(s.logit_scale <= 100.0 * (1 + 1e-6) for s in seen)
    assert float(bundle.model.logit_scale.detach()) <= math.log(100.0) + 1e-6


def test_config_errors_are_clear(bundle):
    with pytest.raises(TrainError, match="exceeds the dataset size"):
        fit(bundle, Shapes(), _cfg(batch_size=64))
    with pytest.raises(TrainError, match="blocks"):
        fit(bundle, Shapes(), _cfg(unfreeze_image_blocks=99))
    with pytest.raises(TrainError, match="checkpoint_dir"):
        fit(bundle, Shapes(), _cfg(resume=True))


def test_default_model_opens_exactly_the_last_blocks(default_bundle):
    """timm EfficientNet + HF text tower: the last block (+ conv_head/bn2) and the last layer train,
    everything else, BatchNorm running statistics included, stays bit-identical."""
    bundle = copy.deepcopy(default_bundle)  # the session fixture must not be mutated
    before = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    fit(bundle, Shapes(per_class=1), _cfg(steps=2, batch_size=4, unfreeze_image_blocks=1, unfreeze_text_blocks=1))
    after = bundle.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    groups = (
        "visual.trunk.blocks.6.0.",
        "visual.trunk.conv_head.",
        "visual.trunk.bn2.",
        "visual.head.proj.",
        "text.transformer.encoder.layer.5.",
        "text.proj.",
        "logit_scale",
    )
    assert all(k.startswith(groups) for k in changed), sorted(k for k in changed if not k.startswith(groups))
    for g in groups:
        assert any(k.startswith(g) for k in changed), g


def test_resume_after_a_crash_rewinds_the_log(bundle, tmp_path):
    log, ck = tmp_path / "log.jsonl", tmp_path / "ck"
    cfg = _cfg(steps=10, checkpoint_every=2, checkpoint_dir=str(ck), log_path=str(log))

    def crash(step_info):
        if step_info.step == 5:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        fit(bundle, Shapes(), cfg, crash)
    assert (ck / "latest").read_text().strip() == "step-00000004"
    fit(bundle, Shapes(), dataclasses.replace(cfg, resume=True))
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(1, 11))


def test_fit_on_labelled_folder(bundle, tmp_path):
    from models.data import LabelledFolderDataset

    texts = {}
    for name, colour in COLOURS.items():
        texts[name] = [f"a {name} square", f"{name} patch", f"something {name}"]
        for j in range(2):
            (tmp_path / name).mkdir(exist_ok=True)
            Image.fromarray(np.full((32, 32, 3), colour, np.uint8)).save(tmp_path / name / f"{j}.png")
    ds = LabelledFolderDataset(tmp_path, texts)
    for cache in (True, False):
        assert fit(bundle, ds, _cfg(steps=6, cache_tower_outputs=cache)).completed
    assert ds.epoch == 5  # 8 images, batch 8: one step per epoch, and the trainer advanced the epochs


def test_model_comes_back_ready_for_inference(bundle):
    assert not bundle.model.training  # the factory hands out eval-mode models
    flags = {n: p.requires_grad for n, p in bundle.model.named_parameters()}
    fit(bundle, Shapes(), _cfg(steps=2, freeze_image=False))
    assert not any(m.training for m in bundle.model.modules())
    assert {n: p.requires_grad for n, p in bundle.model.named_parameters()} == flags


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("enabled", [True, False])
def test_progress_line_only_on_a_terminal_when_enabled(bundle, monkeypatch, enabled):
    fake = _Terminal()
    monkeypatch.setattr(sys, "stderr", fake)
    fit(bundle, Shapes(), _cfg(steps=2, progress_bar=enabled))
    assert ("\rstep 2/2" in fake.getvalue()) == enabled


def test_weight_decay_spares_norms_biases_embeddings_and_logit_scale(bundle):
    # lr * weight_decay = 1 makes AdamW's decoupled decay zero every decayed weight in one step,
    # while the Adam update itself moves any parameter by only ~lr = 1e-6.
    before = _params(bundle.model)
    fit(
        bundle,
        Shapes(),
        _cfg(steps=1, warmup_steps=0, lr=1e-6, weight_decay=1e6, grad_clip=None, freeze_image=False, freeze_text=False),
    )
    after = _params(bundle.model)
    spared = [n for n in after if after[n].ndim < 2 or "embedding" in n or n == "logit_scale"]
    decayed = [n for n in after if n not in spared]
    assert {
        "logit_scale",
        "positional_embedding",
        "token_embedding.weight",
        "visual.class_embedding",
        "visual.ln_post.weight",
        "visual.ln_post.bias",
    } <= set(spared)
    assert {"visual.proj", "text_projection", "visual.conv1.weight"} <= set(decayed)
    for n in spared:
        torch.testing.assert_close(after[n], before[n], atol=1e-5, rtol=0, msg=n)
    for n in decayed:
        assert after[n].abs().max() < 1e-5, n
