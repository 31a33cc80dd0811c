"""Two CPU processes under gloo: the gathered loss equals the single-process loss on the global batch.

Gradient bookkeeping verified here (plain all-gather, local shard put back, spec 3.6):
- each rank computes the whole global loss, so the loss value is identical on every rank;
- the gradient on a rank's own feature shard equals the matching slice of the single-process
  gradient (scale 1): the other shards are constants on that rank;
- a parameter used only to produce the features (a projection) therefore gets, per rank, the
  single-process gradient restricted to that rank's samples; the ranks' SUM is the single-process
  gradient, so DDP's average is 1/world_size of it;
- the logit scale enters the loss directly on every rank, so each rank already has the full
  single-process gradient and DDP's average leaves it unchanged.
"""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

from models.distributed import DistInfo, gather_features
from models.loss import RankClipLoss

WORLD = 2


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny workloads: extra intra-op threads only contend with the worker processes on 2 cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


GLOBAL_B, DIM_IN, DIM = 8, 12, 6


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _problem():
    g = torch.Generator().manual_seed(0)
    x_img, x_txt = torch.randn(GLOBAL_B, DIM_IN, generator=g), torch.randn(GLOBAL_B, DIM_IN, generator=g)
    w_img, w_txt = torch.randn(DIM_IN, DIM, generator=g), torch.randn(DIM_IN, DIM, generator=g)
    return x_img, x_txt, w_img, w_txt, torch.tensor(2.0)


def _loss_and_grads(rows, world, rank):
    """Features of `rows` through shared projections, gathered, RankClipLoss, backward."""
    x_img, x_txt, w_img, w_txt, theta = _problem()
    w_img.requires_grad_()
    w_txt.requires_grad_()
    theta.requires_grad_()
    img = F.normalize(x_img[rows] @ w_img, dim=-1)
    txt = F.normalize(x_txt[rows] @ w_txt, dim=-1)
    img.retain_grad()
    all_img, all_txt = gather_features(img, txt, DistInfo(rank=rank, local_rank=rank, world_size=world))
    torch.manual_seed(0)  # the tie-break permutations, same on every rank
    terms = RankClipLoss("rankclip", numerics="official")(all_img, all_txt, theta.exp(), progress=0.9)
    total = sum(terms.values())
    total.backward()
    return {
        "total": total.detach().reshape(1),
        **{k: v.detach().reshape(1) for k, v in terms.items()},
        "grad_w_img": w_img.grad,
        "grad_w_txt": w_txt.grad,
        "grad_theta": theta.grad.reshape(1),
        "grad_img": img.grad,
    }


def _init(rank, port):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)


def _loss_worker(rank, port, out_dir):
    _init(rank, port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        b = GLOBAL_B // WORLD
        save_file(_loss_and_grads(slice(rank * b, (rank + 1) * b), WORLD, rank), f"{out_dir}/rank{rank}.safetensors")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
@pytest.mark.subprocess
@pytest.mark.training
def test_gathered_loss_and_gradients_match_single_process(tmp_path):
    mp.spawn(_loss_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    single = _loss_and_grads(slice(None), 1, 0)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(WORLD)]
    b = GLOBAL_B // WORLD
    assert single["rank_cross_loss"].item() > 0 and single["rank_in_loss"].item() > 0  # ranking terms are on
    for r, got in enumerate(ranks):
        for key in ("total", "contrastive_loss", "rank_cross_loss", "rank_in_loss", "grad_theta"):
            torch.testing.assert_close(got[key], single[key], rtol=1e-5, atol=1e-6, msg=f"rank {r} {key}")
        torch.testing.assert_close(got["grad_img"], single["grad_img"][r * b : (r + 1) * b], rtol=1e-5, atol=1e-6)
    for key in ("grad_w_img", "grad_w_txt"):
        ddp_average = sum(got[key] for got in ranks) / WORLD
        torch.testing.assert_close(ddp_average, single[key] / WORLD, rtol=1e-5, atol=1e-6, msg=key)
        assert not torch.allclose(ranks[0][key], ranks[1][key])  # each rank only saw its own samples


def test_gather_is_identity_for_one_process():
    a, t = torch.randn(3, 4), torch.randn(3, 4)
    ga, gt = gather_features(a, t, DistInfo())
    assert ga is a and gt is t


# ---------------------------------------------------------------- end to end: fit() under gloo

COLOURS = [(230, 20, 20), (20, 220, 20), (20, 20, 230), (230, 230, 20)]


class Shapes:
    def __init__(self):
        rng = np.random.default_rng(0)
        self.items = []
        for k, colour in enumerate(COLOURS):
            for j in range(4):
                a = rng.integers(0, 40, (64, 64, 3), dtype=np.uint8)
                a[10:36, 10:36] = colour
                self.items.append((Image.fromarray(a), f"shape {k} caption {j % 2}"))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _fit_cfg(out_dir, **kw):
    from models.train import TrainConfig

    return TrainConfig(
        steps=3, batch_size=8, lr=5e-3, warmup_steps=1, progress_bar=False, log_path=f"{out_dir}/log.jsonl", **kw
    )


FIT_CONFIGS = {"cached-towers": {}, "image-tower-trains": {"freeze_image": False}}


def _fit_worker(rank, port, out_dir):
    _init(rank, port)
    from models.factory import create_model
    from models.train import fit

    try:
        for name, kw in FIT_CONFIGS.items():  # one spawn for both: process start-up dominates the cost
            bundle = create_model("inspector-tiny", device="cpu")
            if rank == 1:  # a different start on rank 1: fit() must broadcast rank 0's weights, towers too
                with torch.no_grad():
                    for p in bundle.model.parameters():
                        p.add_(0.01)
            os.makedirs(f"{out_dir}/{name}", exist_ok=True)
            result = fit(bundle, Shapes(), _fit_cfg(f"{out_dir}/{name}", **kw))
            assert result.completed and result.steps_done == 3
            state = {k: v.contiguous() for k, v in bundle.model.state_dict().items()}
            save_file(state, f"{out_dir}/{name}/rank{rank}.safetensors")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
@pytest.mark.subprocess
@pytest.mark.training
def test_two_process_fit_keeps_ranks_identical(tmp_path):
    from models.factory import create_model
    from models.train import fit

    mp.spawn(_fit_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for name, kw in FIT_CONFIGS.items():
        out = tmp_path / name
        a, b = (load_file(str(out / f"rank{r}.safetensors")) for r in range(WORLD))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key}"
        # The global batch does not depend on the world size, so step 1 (before any update) must
        # see the same loss as a single-process run.
        single = out / "single"
        single.mkdir()
        fit(create_model("inspector-tiny", device="cpu"), Shapes(), _fit_cfg(single, **kw))
        first = [json.loads((d / "log.jsonl").read_text().splitlines()[0]) for d in (out, single)]
        assert first[0]["contrastive_loss"] == pytest.approx(first[1]["contrastive_loss"], rel=1e-5), name


def test_init_distributed_without_torchrun_is_single_process(monkeypatch):
    from models.distributed import init_distributed

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.device.type, info.is_main) == (0, 1, "cpu", True)
    assert not dist.is_initialized()
