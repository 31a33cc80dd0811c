"""A text-anchored linear probe fitted on the labels' example images (CLAP-style, numpy only).

The idea is from Silva-Rodriguez et al., "A Closer Look at the Few-Shot Adaptation of Large
Vision-Language Models" (CVPR 2024): start every label's classifier row at its text prototype,
fit it to the examples by cross-entropy, and pay a penalty for moving away from the text:

    score_c(x) = x . W_c + b_c
    loss = mean_i CE(softmax(temperature * score(x_i)), y_i)
           + anchor / 2 * sum_c |W_c - A_c|^2 + anchor / 2 * |b|^2

A_c is the label's text prototype: the MEAN of its description embeddings (not renormalised), so
x . A_c is exactly the station's text-only score and, with no examples, the probe IS the text-only
ranking (nothing is fitted). A label known only by examples is anchored at the mean of its examples
shrunk onto the description scale (image-to-image cosines are about 3x image-to-text ones). The
scores stay on the cosine scale of the words, so the verdict's floor and the model's logit scale
still apply. What is stored is the difference W - A and b: at ranking time the words' own scores
(which may include local evidence) get `x . (W - A) + b` added, one [D] x [D, L] product.

Fitted by L-BFGS (deterministic, no random start) when the example set changes; a few ms to tens
of ms for 1 000 examples x 256 dims x 20 labels. Then two small-budget corrections: each label's
correction is shrunk toward its words by n / (n + shrink) (few examples: trust the words more), and
the offsets are moved from the examples' label mix to the plant's (a prior shift): examples are
often confirmed a few per label, so the fit learns a 50/50 mix the line does not have. The plant's
mix is the decision log's decided labels (plant_prior), read when the library is compiled and
recorded in the scoring configuration. The parameters in ProbeParams were chosen on a validation
split (bench/examples_curve.py).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np

METHOD = "text-anchored-probe"  # the name in the scoring configuration


@dataclass(frozen=True)
class ProbeParams:
    """How the probe is fitted (chosen on validation, see the module doc)."""

    anchor: float = 0.03  # penalty on leaving the text prototypes (and on the per-label offset b)
    temperature: float = 30.0  # logit scale of the cross-entropy during the fit
    bias: bool = True  # fit a per-label offset b (the words' constant preference for a label)
    # CLAP's class-adaptive anchor: a label's penalty is scaled by how well its words already call
    # its own examples (mean text softmax of the right label), so bad words hold the row loosely.
    adaptive: bool = True
    # The penalty divided by the number of examples (a prior worth a fixed number of examples, as in
    # an L2-regularised regression on the summed loss): more confirmations, looser anchor.
    per_example: bool = False
    # Tip-Adapter-F / LP++ flavour: the probe's scores take the words' place in the calibrated blend
    # with the soft-nearest example cache (inspector.frame.example_cache); 0 = the probe alone.
    cache_weight: float = 0.3
    cache_sharpness: float = 10.0
    # Shrinkage toward the words with few examples: a label's correction is scaled by n / (n + shrink),
    # n its examples (0 = no shrinkage; a label without words is never shrunk, it has nothing else).
    shrink: float = 2.0
    # Prior shift (Saerens et al. 2002; logit adjustment, Menon et al. 2021): the fit learns the
    # examples' label mix as its offsets; with the plant's observed mix (fit_probe's `prior`) each
    # label's offset moves by prior_strength * log(plant share / example share) / temperature.
    # 0 = off, 1 = the full Bayes correction; without a prior (no decision log, too few decisions)
    # nothing moves. shrink 2 and strength 1 were chosen on validation (bench/examples_curve.py).
    prior_strength: float = 1.0
    max_iter: int = 60  # L-BFGS iterations at most
    tol: float = 1e-4  # stop when the gradient's largest entry is below this (float32 products)

    def describe(self) -> dict[str, float | bool | str]:
        return {"method": METHOD, **asdict(self)}


@dataclass(frozen=True)
class Probe:
    """The fitted probe: added to the words' label scores, score = words + x . delta.T + bias."""

    delta: np.ndarray  # [L, D] float32: W - A
    bias: np.ndarray  # [L] float64
    iterations: int
    params: ProbeParams
    prior: tuple[float, ...] | None = None  # the plant's label shares used for the prior shift (recorded)

    def correction(self, images: np.ndarray) -> np.ndarray:
        """[N, D] unit image embeddings -> [N, L] what the examples add to the words' scores."""
        return images.astype(np.float32, copy=False) @ self.delta.T + self.bias


PRIOR_MIN_DECISIONS = 20  # fewer logged decisions than this: no prior shift (too few to trust a mix)


def plant_prior(counts: np.ndarray | list[int] | None) -> tuple[float, ...] | None:
    """[L] decided parts per label (the decision log's, in library order) -> the label shares used
    for the prior shift: add-one smoothed, rounded to 0.01 (at least 0.01), so a recompile after a
    few more decisions usually keeps the same prior (and the same scoring configuration); None when
    there are fewer than PRIOR_MIN_DECISIONS decisions."""
    if counts is None:
        return None
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or not len(n) or n.sum() < PRIOR_MIN_DECISIONS:
        return None
    shares = (n + 1.0) / (n.sum() + len(n))
    return tuple(float(max(0.01, round(v, 2))) for v in shares)


def anchors(keys: np.ndarray, label_of: np.ndarray, text_prototypes: np.ndarray, has_words: np.ndarray) -> np.ndarray:
    """[L, D] anchors: the text prototype, or for a label without words its examples' mean, shrunk so
    its own examples score like labelled examples score on their words (0.3 without any words)."""
    out = np.array(text_prototypes, dtype=np.float64, copy=True)
    own = np.array([keys[i] @ text_prototypes[c] for i, c in enumerate(label_of) if has_words[c]])
    for c in np.flatnonzero(~has_words):
        rows = keys[label_of == c]
        if not len(rows):
            continue
        mean = rows.mean(axis=0)
        mean_cos = float((rows @ mean).mean()) / max(float(np.linalg.norm(mean)), 1e-12)
        target = float(own.mean()) if own.size else 0.3
        out[c] = mean / max(float(np.linalg.norm(mean)), 1e-12) * target / max(mean_cos, 1e-6)
    return out


def fit_probe(
    keys: np.ndarray,
    label_of: np.ndarray,
    text_prototypes: np.ndarray,
    has_words: np.ndarray,
    params: ProbeParams = ProbeParams(),
    reuse: bool = True,
    prior: tuple[float, ...] | None = None,
) -> Probe:
    """Fit W, b on the examples ([K, D] unit rows, [K] label index) from the labels' text prototypes
    ([L, D] mean description embedding, zeros for a label without words: has_words [L] False).

    The returned delta is W minus the TEXT prototype, so words + correction is the probe's score
    for every label (a label without words has no words' score: 0 + x . W + b). Fits are kept by
    the hash of their inputs: recompiling an unchanged library does not fit again (reuse=False: fit).
    prior: the plant's label shares (plant_prior), used when params.prior_strength is not 0."""
    prior = prior if params.prior_strength else None  # unused: not part of the fit, nor of its record
    key = _fit_key(keys, label_of, text_prototypes, has_words, params, prior)
    with _LOCK:
        if reuse and key in _FITS:
            _FITS.move_to_end(key)
            return _FITS[key]
    probe = _adjust(_fit(keys, label_of, text_prototypes, has_words, params), label_of, has_words, prior)
    with _LOCK:
        _FITS[key] = probe
        while len(_FITS) > _KEEP:
            _FITS.popitem(last=False)
    return probe


_KEEP = 8  # a station holds one library at a time; a few more for the editor's previews
_FITS: OrderedDict[str, Probe] = OrderedDict()
_LOCK = threading.Lock()


def _fit_key(keys, label_of, text_prototypes, has_words, params: ProbeParams, prior) -> str:
    h = hashlib.sha256(repr((params, prior)).encode())
    for part in (keys, label_of, text_prototypes, has_words):
        a = np.ascontiguousarray(part)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _fit(keys, label_of, text_prototypes, has_words, params: ProbeParams) -> Probe:
    anchor_rows = anchors(keys, label_of, text_prototypes, has_words)
    offset = anchor_rows - np.asarray(text_prototypes, dtype=np.float64)  # non-zero for example-only labels
    n_labels, dim = anchor_rows.shape
    if len(keys) == 0:
        return Probe(offset.astype(np.float32), np.zeros(n_labels), 0, params)
    # float32 products (the embeddings' own precision); the optimiser's state stays float64
    x = np.ascontiguousarray(keys, dtype=np.float32)
    onehot = np.eye(n_labels)[label_of]
    a = np.asarray(anchor_rows, dtype=np.float64)
    tau, k = params.temperature, len(x)
    strength = params.anchor / k if params.per_example else params.anchor
    lam = np.full((n_labels, 1), strength)
    if params.adaptive:
        lam = strength * _agreement(x, label_of, a, tau, has_words)[:, None]

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = theta[: n_labels * dim].reshape(n_labels, dim)  # W - A
        b = theta[n_labels * dim :] if params.bias else np.zeros(n_labels)
        z = tau * ((x @ (a + d).T.astype(np.float32)).astype(np.float64) + b)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        residual = (np.exp(logp) - onehot) * (tau / k)
        loss = -float((logp * onehot).sum()) / k + 0.5 * float((lam * d * d).sum() + (lam[:, 0] * b) @ b)
        grad_d = (residual.T.astype(np.float32) @ x).astype(np.float64) + lam * d
        grad_b = residual.sum(axis=0) + lam[:, 0] * b if params.bias else np.zeros(0)
        return loss, np.concatenate([grad_d.ravel(), grad_b])

    theta, iterations = _lbfgs(loss_grad, np.zeros(n_labels * dim + (n_labels if params.bias else 0)), params)
    delta = (theta[: n_labels * dim].reshape(n_labels, dim) + offset).astype(np.float32)
    delta.flags.writeable = False  # shared by every ranking that reuses this fit
    bias = theta[n_labels * dim :] if params.bias else np.zeros(n_labels)
    return Probe(delta, np.asarray(bias, dtype=np.float64), iterations, params)


def _adjust(probe: Probe, label_of: np.ndarray, has_words: np.ndarray, prior: tuple[float, ...] | None) -> Probe:
    """The fitted probe with ProbeParams' shrinkage toward the words and prior shift applied."""
    p, n_labels = probe.params, len(probe.bias)
    if not len(label_of) or (p.shrink <= 0 and (p.prior_strength == 0 or prior is None)):
        return probe
    n = np.bincount(label_of, minlength=n_labels).astype(np.float64)
    # a label with words is pulled toward them by n / (n + shrink); without words it has only the probe
    keep = np.where(has_words, n / (n + p.shrink), 1.0) if p.shrink > 0 else np.ones(n_labels)
    delta = (probe.delta * keep[:, None].astype(np.float32)).astype(np.float32)
    bias = probe.bias * keep
    used = None
    if p.prior_strength != 0 and prior is not None:
        if len(prior) != n_labels:
            raise ValueError(f"prior has {len(prior)} shares for {n_labels} labels")
        # log(plant share / example share) per label with examples; a label without examples was
        # never in the fit's mix: it gets the mean shift, so it keeps its standing among the others
        seen = n > 0
        shift = np.zeros(n_labels)
        shift[seen] = np.log(np.asarray(prior, dtype=np.float64)[seen]) - np.log(n[seen] / n.sum())
        shift[~seen] = shift[seen].mean()
        bias = bias + p.prior_strength * (shift - shift.mean()) / p.temperature
        used = tuple(prior)
    delta.flags.writeable = False
    return Probe(delta, bias, probe.iterations, p, used)


def _agreement(x: np.ndarray, label_of: np.ndarray, a: np.ndarray, tau: float, has_words: np.ndarray) -> np.ndarray:
    """[L] per label: mean softmax probability the anchors give its own examples (CLAP's constraint
    weights); a label without examples (or without words) gets the mean over the others."""
    z = tau * (x.astype(np.float64) @ a.T)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    own = p[np.arange(len(x)), label_of]
    out = np.full(len(a), np.nan)
    for c in range(len(a)):
        if has_words[c] and (label_of == c).any():
            out[c] = own[label_of == c].mean()
    fill = np.nanmean(out) if np.isfinite(out).any() else 1.0
    return np.where(np.isfinite(out), out, fill)


def text_prototypes(embeddings: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """[M, D] description embeddings grouped by label, [L] counts -> [L, D] per-label mean (0 without words)."""
    out = np.zeros((len(counts), embeddings.shape[1]), dtype=np.float64)
    start = 0
    for li, n in enumerate(counts):
        if n:
            out[li] = embeddings[start : start + n].astype(np.float64).mean(axis=0)
        start += int(n)
    return out


def _lbfgs(f, theta: np.ndarray, params: ProbeParams, memory: int = 8) -> tuple[np.ndarray, int]:
    """Minimise a smooth convex f (returning loss, gradient) by L-BFGS with backtracking (Armijo)."""
    loss, grad = f(theta)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []
    for it in range(params.max_iter):
        if np.abs(grad).max() < params.tol:
            return theta, it
        q, alphas = grad.copy(), []
        for s, y, rho in reversed(steps):
            alpha = rho * float(s @ q)
            q -= alpha * y
            alphas.append(alpha)
        if steps:
            s, y, _ = steps[-1]
            q *= float(s @ y) / float(y @ y)
        else:  # first step: a unit-length move along the gradient
            q /= max(float(np.linalg.norm(grad)), 1e-12)
        for (s, y, rho), alpha in zip(steps, reversed(alphas)):
            q += s * (alpha - rho * float(y @ q))
        direction, slope = -q, -float(grad @ q)
        if slope >= 0:  # not a descent direction (curvature lost): restart from the gradient
            steps, direction, slope = [], -grad, -float(grad @ grad)
        t = 1.0
        while True:
            new_loss, new_grad = f(theta + t * direction)
            if new_loss <= loss + 1e-4 * t * slope or t < 1e-8:
                break
            t *= 0.5
        s, y = t * direction, new_grad - grad
        if float(s @ y) > 1e-12:
            steps = (steps + [(s, y, 1.0 / float(s @ y))])[-memory:]
        stalled = loss - new_loss <= 1e-9 * max(1.0, abs(loss))
        theta, loss, grad = theta + s, new_loss, new_grad
        if stalled:  # float32 products: the gradient's last digits are noise
            return theta, it + 1
    return theta, params.max_iter
