"""Tests for models.loss: the RANKCLIP loss against brute force, closed forms and the spec's figures."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models.loss as loss_module
from models.loss import RankClipLoss, plackett_luce_nll, ranking_weight

S0 = 1 / 0.07  # the CLIP initial logit scale, ~14.29 (spec section 2)


def _features(b: int, d: int, seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1)
    v = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1)
    return u.to(dtype), v.to(dtype)


def _brute_nll(x: np.ndarray, y: np.ndarray) -> float:
    """-log P(pi | x) for pi = y sorted descending, by enumerating every permutation."""
    n = len(x)

    def log_prob(pi: tuple[int, ...]) -> float:
        return sum(x[pi[k]] - math.log(sum(math.exp(x[j]) for j in pi[k:])) for k in range(n))

    probs = {pi: math.exp(log_prob(pi)) for pi in itertools.permutations(range(n))}
    assert math.isclose(sum(probs.values()), 1.0, rel_tol=1e-9)  # the brute force itself is sane
    return -math.log(probs[tuple(sorted(range(n), key=lambda j: -y[j]))])


def _brute_lbar(x: np.ndarray, y: np.ndarray) -> float:
    """Spec 3.5: l-bar = mean over rows of the per-list NLL, divided by B."""
    return float(np.mean([_brute_nll(x[i], y[i]) for i in range(len(x))])) / x.shape[1]


def _weighted_nll(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """Sum_k w_k [log sum_{m>=k} exp(x_pi(m)) - x_pi(k)], written out with plain loops."""
    xs = x[np.argsort(-y, kind="stable")]
    return sum(weights[k] * (math.log(sum(math.exp(t) for t in xs[k:])) - xs[k]) for k in range(len(xs)))


@pytest.mark.parametrize("b", [2, 3, 4, 5])
def test_loss_terms_match_bruteforce_enumeration(b: int) -> None:
    u, v = _features(b, 6, seed=b)
    out = RankClipLoss("rankclip", numerics="exact")(u, v, S0, progress=0.5)
    w = 1.5  # half-way through the ramp to cap 2 that ends at 2/3 of training
    U, V = u.double().numpy(), v.double().numpy()
    S, GI, GT = S0 * U @ V.T, S0 * U @ U.T, S0 * V @ V.T
    cross = w / 32 * (_brute_lbar(S, S.T) + _brute_lbar(S.T, S))
    inmod = w / 32 * (_brute_lbar(GI, GT) + _brute_lbar(GT, GI))
    ce = lambda m: -np.mean([m[i, i] - math.log(np.exp(m[i]).sum()) for i in range(b)])  # noqa: E731
    assert out["rank_cross_loss"].item() == pytest.approx(cross, rel=1e-5, abs=1e-7)
    assert out["rank_in_loss"].item() == pytest.approx(inmod, rel=1e-5, abs=1e-7)
    assert out["contrastive_loss"].item() == pytest.approx(0.5 * (ce(S) + ce(S.T)), rel=1e-5)


def test_pl_nll_rows_match_bruteforce() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 5, generator=g) * 4, torch.randn(6, 5, generator=g)
    got = plackett_luce_nll(x, y, numerics="exact")
    want = [_brute_nll(x[i].double().numpy(), y[i].double().numpy()) for i in range(6)]
    assert got.shape == (6,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_official_equals_exact_below_ten_logits_of_spread() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(16, 64, generator=g) * 9.9, torch.rand(16, 64, generator=g)
    off, ex = plackett_luce_nll(x, y, "official"), plackett_luce_nll(x, y, "exact")
    torch.testing.assert_close(off, ex, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("spread", [10.0, 30.0, 60.0])
def test_equispaced_list_matches_geometric_closed_form(spread: float) -> None:
    # x_k = R(1 - (k-1)/(B-1)), in target order. Suffix sums are geometric: from item k on,
    # sum = q^(k-1) (1 - q^j) / (1 - q) with q = exp(-R/(B-1)) and j = B - k + 1 items left.
    b = 128
    x = spread * (1 - torch.arange(b, dtype=torch.float64) / (b - 1))
    q = math.exp(-spread / (b - 1))
    geo = [(1 - q**j) / (1 - q) for j in range(b, 0, -1)]
    exact = sum(math.log(gj) for gj in geo)
    official = sum(math.log(q**k * geo[k] + 1e-10) + k * spread / (b - 1) for k in range(b))
    row = x.float()[None]
    assert plackett_luce_nll(row, row, "exact").item() == pytest.approx(exact, rel=1e-5)
    assert plackett_luce_nll(row, row, "official").item() == pytest.approx(official, rel=1e-5)


@pytest.mark.parametrize("spread, exact, official", [(10, 312.8, 312.8), (30, 200.2, 273.6), (60, 130.6, 1567.0)])
def test_spec_table_is_a_typical_draw(spread: float, exact: float, official: float) -> None:
    # The spec 3.7 table cannot come from equispaced scores (those give 311.6 / 194.2 / 122.9 exact),
    # but it fits sorted uniform draws on [0, R]; check it lies well inside our draws' spread.
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(256, 128, generator=g) * spread).sort(dim=1, descending=True).values
    for numerics, figure in (("exact", exact), ("official", official)):
        nll = plackett_luce_nll(x, x, numerics)
        assert abs(figure - nll.mean().item()) < 4 * nll.std().item(), numerics
    if spread >= 30:  # the eps regime: the official recipe is a different, larger objective
        ratio = plackett_luce_nll(x, x, "official").mean() / plackett_luce_nll(x, x, "exact").mean()
        assert ratio > 1.2  # spec: 1.37 at R = 30, 12 at R = 60


def test_ties_are_broken_by_one_random_permutation_shared_by_all_rows() -> None:
    x = torch.randn(1, 8, generator=torch.Generator().manual_seed(15)).repeat(4, 1)
    tied = torch.zeros(4, 8)  # every order is a valid sort of the target: the permutation picks one
    values = set()
    for seed in range(10):
        nll = plackett_luce_nll(x, tied, "exact", generator=torch.Generator().manual_seed(seed))
        assert torch.equal(nll, nll[:1].expand(4))  # same permutation for every row
        values.add(round(nll[0].item(), 4))
    assert len(values) > 1  # but a random one


def test_gradient_reaches_scores_not_target() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 7, generator=g, requires_grad=True)
    y = torch.randn(3, 7, generator=g, requires_grad=True)
    plackett_luce_nll(x, y).sum().backward()
    assert y.grad is None
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("numerics", ["official", "exact"])
@pytest.mark.parametrize("decay", [None, "log2"])
def test_pl_gradient_matches_finite_differences(numerics: str, decay: str | None) -> None:
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(3, 6, generator=g, dtype=torch.float64) * 12).requires_grad_()
    y = torch.randn(3, 6, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: plackett_luce_nll(t, y, numerics, decay), (x,))


@pytest.mark.parametrize("term", ["contrastive_loss", "rank_cross_loss", "rank_in_loss"])
def test_every_term_sends_gradient_to_scale_and_both_features(term: str) -> None:
    u, v = (t.requires_grad_() for t in _features(9, 8, seed=6))
    scale = torch.tensor(S0, requires_grad=True)
    RankClipLoss()(u, v, scale, progress=1.0)[term].backward()
    for t in (u, v, scale):
        assert t.grad is not None and t.grad.abs().sum() > 0


@pytest.mark.parametrize("numerics", ["official", "exact"])
def test_uninformative_scores_give_log_factorial(numerics: str) -> None:
    b = 40
    per_row = plackett_luce_nll(torch.zeros(3, b), torch.randn(3, b), numerics)
    torch.testing.assert_close(per_row, torch.full((3,), math.lgamma(b + 1)), rtol=1e-5, atol=0)
    # Identical features make S, G_I, G_T constant: every list is uninformative.
    u = F.normalize(torch.ones(b, 4), dim=1)
    out = RankClipLoss(numerics=numerics)(u, u.clone(), S0, progress=1.0)
    per_position = math.lgamma(b + 1) / b
    for term in ("rank_cross_loss", "rank_in_loss"):
        assert out[term].item() == pytest.approx(2 / 32 * 2 * per_position, rel=1e-5)


def test_ranking_weight_ramp() -> None:
    for p, w in ((0.0, 0.0), (1 / 3, 1.0), (2 / 3, 2.0), (1.0, 2.0)):
        assert ranking_weight(p) == pytest.approx(w)
    assert ranking_weight(1 / 3, cap=3.0) == pytest.approx(1.5)  # half the cap half-way up the ramp
    for p in (-0.01, 1.01, float("nan")):
        with pytest.raises(ValueError, match="progress"):
            ranking_weight(p)


@pytest.mark.parametrize(
    "variant, cross_on, in_on",
    [("clip", False, False), ("rankclip", True, True), ("rankclip_c", True, False), ("rankclip_i", False, True)],
)
def test_variants_switch_exactly_their_terms(variant: str, cross_on: bool, in_on: bool) -> None:
    u, v = _features(16, 8, seed=7)
    out = RankClipLoss(variant)(u, v, S0, progress=1.0)
    assert out["contrastive_loss"].item() > 0
    assert (out["rank_cross_loss"].item() != 0) == cross_on
    assert (out["rank_in_loss"].item() != 0) == in_on
    at_start = RankClipLoss(variant)(u, v, S0, progress=0.0)
    assert at_start["rank_cross_loss"].item() == 0 and at_start["rank_in_loss"].item() == 0
    assert all(t.dtype == torch.float32 and t.dim() == 0 for t in out.values())


def test_magnitudes_at_initialisation_match_spec() -> None:
    # Spec 3.11: at B = 128, w = 2, s = 14.29 the ranking terms total ~0.96 (x128 if /B is missing,
    # x32 if /32 is missing) and L_CLIP ~ ln 128 = 4.85.
    u, v = _features(128, 512, seed=8)
    out = RankClipLoss()(u, v, S0, progress=1.0)
    assert 0.5 < (out["rank_cross_loss"] + out["rank_in_loss"]).item() < 1.5
    assert out["contrastive_loss"].item() == pytest.approx(math.log(128), rel=0.15)


@pytest.mark.parametrize("numerics", ["official", "exact"])
def test_log2_position_decay_is_the_weighted_sum(numerics: str) -> None:
    g = torch.Generator().manual_seed(9)
    x, y = torch.randn(4, 12, generator=g) * 3, torch.randn(4, 12, generator=g)
    weights = 1 / np.log2(np.arange(1, 13) + 1)
    got = plackett_luce_nll(x, y, numerics, position_decay="log2")
    want = [_weighted_nll(x[i].double().numpy(), y[i].double().numpy(), weights) for i in range(4)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    assert not torch.allclose(got, plackett_luce_nll(x, y, numerics))


def _loss_and_grads(loss: RankClipLoss, u: torch.Tensor, v: torch.Tensor, seed: int = 0) -> list[torch.Tensor]:
    u, v = u.clone().requires_grad_(), v.clone().requires_grad_()
    scale = torch.tensor(S0, dtype=u.dtype, requires_grad=True)
    torch.manual_seed(seed)  # same tie-break permutations for both runs
    out = loss(u, v, scale, progress=0.8)
    total = sum(out.values())
    total.backward()
    return [*out.values(), u.grad, v.grad, scale.grad]


@pytest.mark.parametrize("numerics, decay", [("official", None), ("exact", "log2")])
@pytest.mark.parametrize("chunk", [8, 37, 50])
def test_row_chunks_equal_the_full_computation(numerics: str, decay: str | None, chunk: int) -> None:
    u, v = _features(37, 16, seed=10)
    full = _loss_and_grads(RankClipLoss(numerics=numerics, position_decay=decay), u, v)
    chunked = _loss_and_grads(RankClipLoss(numerics=numerics, position_decay=decay, row_chunk=chunk), u, v)
    for a, b in zip(full, chunked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_row_chunks_share_the_tie_break_permutation() -> None:
    u, v = _features(12, 8, seed=11)
    v = torch.cat([v[:6], v[:6]])  # duplicated captions: tied targets that the permutation decides
    full = _loss_and_grads(RankClipLoss(), u, v, seed=3)
    chunked = _loss_and_grads(RankClipLoss(row_chunk=5), u, v, seed=3)
    for a, b in zip(full, chunked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    other_seed = _loss_and_grads(RankClipLoss(row_chunk=5), u, v, seed=4)
    assert other_seed[1] != chunked[1]  # the ties really are decided by the random permutation


def test_chunked_gradient_matches_finite_differences() -> None:
    u, v = _features(6, 4, seed=12, dtype=torch.float64)
    loss = RankClipLoss(row_chunk=4)
    fn = lambda a, b, s: sum(loss(a, b, s, progress=1.0).values())  # noqa: E731
    args = (u.requires_grad_(), v.requires_grad_(), torch.tensor(S0, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(fn, args)


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_are_computed_in_fp32(low: torch.dtype) -> None:
    u, v = _features(20, 8, seed=13)
    u16, v16 = u.to(low), v.to(low)
    torch.manual_seed(0)
    got = RankClipLoss()(u16, v16, S0, progress=1.0)
    torch.manual_seed(0)
    ref = RankClipLoss()(u16.float(), v16.float(), S0, progress=1.0)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = RankClipLoss()(u16.float(), v16.float(), S0, progress=1.0)
    for key in ref:
        assert got[key].dtype == torch.float32 and under_autocast[key].dtype == torch.float32
        torch.testing.assert_close(got[key], ref[key], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(under_autocast[key], ref[key], rtol=1e-6, atol=1e-7)
    assert plackett_luce_nll(u16, v16).dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"variant": "cyclip"}, "variant"),
        ({"numerics": "fast"}, "numerics"),
        ({"position_decay": "log"}, "position_decay"),
        ({"row_chunk": 0}, "row_chunk"),
        ({"weight_cap": -1.0}, "cap"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RankClipLoss(**kwargs)


def test_bad_forward_inputs() -> None:
    u, v = _features(4, 3, seed=14)
    loss = RankClipLoss()
    for a, b, scale, p, match in [
        (u, v[:3], S0, 0.5, "same|\\[B, d\\]"),
        (u[0], v[0], S0, 0.5, "2-D"),
        (u, v, S0, 1.5, "progress"),
        (u, v, S0, -0.1, "progress"),
        (u, v, torch.ones(2), 0.5, "scalar"),
        (u, v, -1.0, 0.5, "logit_scale"),
    ]:
        with pytest.raises(ValueError, match=match):
            loss(a, b, scale, progress=p)
    with pytest.raises(ValueError, match="same shape"):
        plackett_luce_nll(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="2-D"):
        plackett_luce_nll(torch.zeros(3), torch.zeros(3))


# ---------------------------------------------------------------- the fast path against the reference
# models.loss sorts packed int64 keys (numpy on the CPU, torch.sort elsewhere) and has a hand-written
# ListMLE backward. These tests pin it to the straightforward implementation it replaced.


def _reference_pl_rows(
    scores: torch.Tensor, target: torch.Tensor, perm: torch.Tensor, numerics: str, decay: str | None
) -> torch.Tensor:
    """The original per-row PL NLL: stable argsort of the permuted target, then plain autograd."""
    with torch.no_grad():
        order = perm[torch.argsort(target[:, perm], dim=1, stable=True)]  # worst -> best, ties by perm
    x = scores.gather(1, order)
    if numerics == "exact":
        per_pos = torch.logcumsumexp(x, dim=1) - x
    else:
        x = x - x.max(dim=1, keepdim=True).values
        per_pos = torch.log(torch.exp(x).cumsum(dim=1) + 1e-10) - x
    if decay == "log2":
        k = torch.arange(x.shape[1], 0, -1, dtype=x.dtype)
        per_pos = per_pos / torch.log2(k + 1.0)
    return per_pos.sum(dim=1)


def _reference_loss(
    u: torch.Tensor,
    v: torch.Tensor,
    s: torch.Tensor,
    perms: list[torch.Tensor],
    w: float,
    numerics: str = "official",
    decay: str | None = None,
) -> dict[str, torch.Tensor]:
    """RankClipLoss written out whole: the four ListMLE directions of spec 3.3-3.5, no chunking."""
    b = u.shape[0]
    S, GI, GT = (u * s) @ v.T, (u * s) @ u.T, (v * s) @ v.T
    labels = torch.arange(b)
    pl = lambda x, y, p: _reference_pl_rows(x, y.detach(), p, numerics, decay).sum()  # noqa: E731
    scale = w / 32 / b**2
    return {
        "contrastive_loss": (
            F.cross_entropy(S, labels, reduction="sum") + F.cross_entropy(S.T, labels, reduction="sum")
        )
        / (2 * b),
        "rank_cross_loss": (pl(S, S.T, perms[0]) + pl(S.T, S, perms[1])) * scale,
        "rank_in_loss": (pl(GI, GT, perms[2]) + pl(GT, GI, perms[3])) * scale,
    }


def _tie_heavy(rows: int, cols: int, seed: int) -> torch.Tensor:
    """float32 targets with many exact ties, +-0.0, +-inf, denormals and both signs."""
    g = torch.Generator().manual_seed(seed)
    specials = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 1e-45, -1e-45, 3e38, -3e38])
    levels = torch.cat([specials, torch.randn(6, generator=g) * 10, torch.tensor([2.5, -2.5])])
    return levels[torch.randint(len(levels), (rows, cols), generator=g)]


@pytest.fixture(params=["numpy", "torch.sort"])
def sort_branch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the CPU's numpy sort and with torch.sort, the branch CUDA tensors take."""
    monkeypatch.setattr(loss_module, "_NUMPY_CPU_SORT", request.param == "numpy")
    return request.param


@pytest.mark.usefixtures("sort_branch")
@pytest.mark.parametrize("n", [1, 2, 3, 64, 65, 1000])
def test_target_order_is_the_stable_sort_of_the_permuted_target(n: int) -> None:
    target = _tie_heavy(7, n, seed=n)
    for seed in range(3):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        want = perm[torch.argsort(target[:, perm], dim=1, stable=True)]
        got = loss_module._order_and_scratch(target, perm)[0]
        assert got.dtype == torch.int64 and torch.equal(got, want), seed
        # A transposed view (the rows of S^T) takes the copy path.
        square = _tie_heavy(n, n, seed=seed)
        want_t = perm[torch.argsort(square.T.contiguous()[:, perm], dim=1, stable=True)]
        assert torch.equal(loss_module._order_and_scratch(square.T, perm)[0], want_t), seed


def test_signed_zeros_tie_and_are_ordered_by_the_permutation() -> None:
    target = torch.tensor([[0.0, -0.0, 1.0, -0.0, 0.0]])
    for perm in (torch.tensor([3, 0, 1, 4, 2]), torch.tensor([4, 2, 1, 0, 3])):
        got = loss_module._order_and_scratch(target, perm)[0][0].tolist()
        zeros_in_perm_order = [j for j in perm.tolist() if j != 2]
        assert got == zeros_in_perm_order + [2]


def test_threaded_cpu_sort_equals_the_single_thread_one(monkeypatch: pytest.MonkeyPatch) -> None:
    target, perm = _tie_heavy(50, 300, seed=5), torch.randperm(300, generator=torch.Generator().manual_seed(5))
    want = perm[torch.argsort(target[:, perm], dim=1, stable=True)]
    threads = torch.get_num_threads()
    monkeypatch.setattr(loss_module, "_SORT_MIN_PER_THREAD", 1)
    monkeypatch.setattr(loss_module, "_SORT_BLOCK_BYTES", 3 * 300 * 8)  # 3-row blocks: 17 of them
    try:
        torch.set_num_threads(3)
        assert torch.equal(loss_module._order_and_scratch(target, perm)[0], want)
    finally:
        torch.set_num_threads(threads)


def _pl_and_grad(fn, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = scores.clone().requires_grad_()
    out = fn(x)
    (out * torch.linspace(0.5, 1.5, len(out))).sum().backward()  # unequal row weights in the backward
    return out.detach(), x.grad


@pytest.mark.usefixtures("sort_branch")
@pytest.mark.parametrize(
    "numerics, decay", [("official", None), ("official", "log2"), ("exact", None), ("exact", "log2")]
)
@pytest.mark.parametrize("spread", [5.0, 60.0])  # 60 logits: deep in the eps regime (spec 3.7)
def test_pl_nll_matches_the_reference_with_ties(numerics: str, decay: str | None, spread: float) -> None:
    g = torch.Generator().manual_seed(int(spread))
    scores = torch.rand(9, 200, generator=g) * spread
    scores[:, 7] = scores[:, 3]  # tied scores, including possibly at the row max
    target = _tie_heavy(9, 200, seed=int(spread))
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(11))
    got = _pl_and_grad(
        lambda x: plackett_luce_nll(x, target, numerics, decay, torch.Generator().manual_seed(11)), scores
    )
    want = _pl_and_grad(lambda x: _reference_pl_rows(x, target, perm, numerics, decay), scores)
    torch.testing.assert_close(got[0], want[0], rtol=2e-6, atol=1e-4)
    torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=2e-5)
    # The ties are decisive: another tie-break permutation changes the loss.
    other = _reference_pl_rows(
        scores, target, torch.randperm(200, generator=torch.Generator().manual_seed(12)), numerics, decay
    )
    assert not torch.allclose(other, want[0], rtol=1e-4)


@pytest.mark.usefixtures("sort_branch")
@pytest.mark.parametrize("chunk", [None, 16])
@pytest.mark.parametrize("numerics, decay", [("official", None), ("exact", "log2")])
def test_rankclip_loss_matches_the_reference_with_ties(chunk: int | None, numerics: str, decay: str | None) -> None:
    b = 48
    u, v = _features(b, 12, seed=16)
    u, v = u.half().float(), torch.cat([v[:20], v[:20], v[:8]]).half().float()  # duplicates: tied targets
    got = _loss_and_grads(RankClipLoss(numerics=numerics, position_decay=decay, row_chunk=chunk), u, v, seed=5)
    uu, vv = u.clone().requires_grad_(), v.clone().requires_grad_()
    scale = torch.tensor(S0, requires_grad=True)
    torch.manual_seed(5)  # RankClipLoss draws its four permutations from the global generator
    perms = [torch.randperm(b) for _ in range(4)]
    ref = _reference_loss(uu, vv, scale, perms, ranking_weight(0.8), numerics, decay)
    sum(ref.values()).backward()
    for a, want in zip(got, [*ref.values(), uu.grad, vv.grad, scale.grad]):
        torch.testing.assert_close(a, want.detach(), rtol=1e-5, atol=1e-6)


def test_backward_is_first_order_only() -> None:
    # The hand-written backward is not itself differentiable: a second derivative must fail loudly,
    # not come out silently wrong.
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(plackett_luce_nll(x, torch.randn(2, 5)).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        grad.sum().backward()
