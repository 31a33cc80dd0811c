"""Does Grad-CAM point at the defect? Pointing game and bbox IoU on held-out generated defects.

    python -m bench.localization [--model M] [--n N] [--seed S] [--tol PX] [--text mean|best] [--threads T]
                                 [--map gradcam|dense|similarity] [--input-size PX] [--size PX] [--large]

--map dense: the dense Grad-CAM with the plain cosine target (models.dense_map through the front end
at --input-size, short side, tiles per the station defaults), forward = encode_frame; the station's
map until 2026-12-05 (it now targets the softmax over the library's defect labels and smooths before
the peak: bench/cam_variants.py measures both); --map gradcam: pytorch-grad-cam at the model's
training crop. --size: the generated frames' side (defects scale with it).

Samples: models.synth.generate(N, split="test") over the non-"ok" types (held-out textures), with
exact masks. Each frame is explained for its TRUE label: the mean embedding of that label's
held-out descriptions (--text mean) or the one of them that matches the frame best (--text best).

- hit: the heatmap's peak lies within --tol pixels (Euclidean) of the mask (pointing game).
- IoU: the explanation's bbox against the mask's bbox.
- heat in mask: share of the heatmap's mass within --tol of the mask (a uniform map scores the
  same as the random baseline's hit rate, so compare those two columns).
- Baselines, same extraction and the same box size as Grad-CAM's box for that frame:
  random peak (hit chance = share of the frame within --tol of the mask, exact; IoU averaged over
  32 uniform peaks) and centre peak (the frame's centre).
- Control, "wrong text": the peak of the map for the best-matching WRONG label. A map that only
  finds salient pixels scores about as well with the wrong text as with the true one; the gap
  between the two is what the text contributes to localization.
- Latency: median over the samples of one forward pass (TorchScorer.embed_images, one frame) and
  of one explanation, plain and contrast ("true label, not the best wrong label"), and the
  median of per-frame ratios explanation / forward; target <= 3x.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from models.dense_map import FrontEnd
from models.explain import Explainer, dense_explanation
from models.factory import load_model
from models.scorer import TorchScorer
from models.synth import DEFECT_TYPES, generate, heldout_descriptions

Box = tuple[int, int, int, int]
_RANDOM_DRAWS = 32


@dataclass
class Tally:
    """Per-sample scores of one defect type (or all)."""

    hit: list[float] = field(default_factory=list)
    hit_random: list[float] = field(default_factory=list)
    hit_centre: list[float] = field(default_factory=list)
    hit_wrong: list[float] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)
    iou_random: list[float] = field(default_factory=list)
    iou_centre: list[float] = field(default_factory=list)
    heat_in_mask: list[float] = field(default_factory=list)


def box_iou(a: Box, b: Box) -> float:
    """IoU of two end-exclusive (x0, y0, x1, y1) boxes."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union else 0.0


def mask_bbox(mask: np.ndarray) -> Box:
    """End-exclusive bbox of a non-empty bool mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def near_mask(mask: np.ndarray, tol: float) -> np.ndarray:
    """Pixels within `tol` px (Euclidean) of the mask."""
    outside = (~mask).astype(np.uint8)
    return cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= tol


def box_at(centre: tuple[int, int], size: tuple[int, int], frame_hw: tuple[int, int]) -> Box:
    """A box of `size` (w, h) centred on `centre`, shifted to lie inside the frame."""
    (w, h), (fh, fw) = size, frame_hw
    x0 = min(max(centre[0] - w // 2, 0), fw - w)
    y0 = min(max(centre[1] - h // 2, 0), fh - h)
    return x0, y0, x0 + w, y0 + h


def label_embeddings(scorer: TorchScorer, labels: list[str]) -> dict[str, np.ndarray]:
    """label -> [k, D] unit embeddings of its held-out descriptions."""
    return {label: scorer.embed_texts(heldout_descriptions(label)) for label in labels}


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _text_for(image_emb: np.ndarray, descs: np.ndarray, how: str) -> np.ndarray:
    return _unit(descs.mean(axis=0)) if how == "mean" else descs[int(np.argmax(descs @ image_emb))]


def _timed(fn: Callable, *args: object, **kwargs: object) -> tuple:
    """(fn's result, wall time in ms)."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - start) * 1e3


class _DenseExplainer:
    """The station's gradient-free map with the same call shape as Explainer (features cached per frame)."""

    def __init__(self, scorer: TorchScorer, kind: str = "gradcam") -> None:
        self.scorer, self._last, self.kind = scorer, (None, None), kind

    def forward(self, images: list[np.ndarray]) -> np.ndarray:
        features = self.scorer.encode_frame(images[0])
        self._last = (images[0], features)
        return features.embedding[None, :]

    def explain(self, image: np.ndarray, text: np.ndarray, versus: np.ndarray | None = None):
        features = self._last[1] if self._last[0] is image else self.scorer.encode_frame(image)
        return dense_explanation(image, features, text, versus, self.kind)


def run(
    model: str,
    n: int,
    seed: int,
    tol: float,
    how: str,
    kind: str = "gradcam",
    input_size: int = 0,
    size: int = 224,
    large: bool = False,
) -> tuple[dict[str, Tally], dict[str, list[float]], str]:
    """Explain `n` held-out defects; return per-type tallies, latencies (ms) and "model id on device"."""
    bundle = load_model(model)
    scorer = TorchScorer(bundle)
    if kind in ("dense", "similarity"):
        scorer = TorchScorer(bundle, frontend=FrontEnd(input_size or scorer.input_size))
        dense = _DenseExplainer(scorer, "gradcam" if kind == "dense" else "similarity")
        explainer, forward = dense, dense.forward
    else:
        explainer, forward = Explainer(bundle), scorer.embed_images
    labels = [d for d in DEFECT_TYPES if d != "ok"]
    descs = label_embeddings(scorer, labels)
    label_means = {label: _unit(e.mean(axis=0)) for label, e in descs.items()}
    if large:
        from models.synth.large import small_defects_on_large_frames

        samples = small_defects_on_large_frames(n, seed=seed, size=size, defects=tuple(labels))
    else:
        samples = generate(n, seed=seed, split="test", defects=labels, size=size)
    rng = np.random.default_rng(seed)
    tallies: dict[str, Tally] = defaultdict(Tally)
    times: dict[str, list[float]] = defaultdict(list)
    forward([samples[0].image])  # warm-up: first calls allocate and pick kernels
    explainer.explain(samples[0].image, label_means[samples[0].defect])
    for s in samples:
        image_emb, t_fwd = _timed(forward, [s.image])
        image_emb = image_emb[0]
        text = _text_for(image_emb, descs[s.defect], how)
        exp, t_cam = _timed(explainer.explain, s.image, text)
        rival = max((lb for lb in labels if lb != s.defect), key=lambda lb: float(label_means[lb] @ image_emb))
        _, t_contrast = _timed(explainer.explain, s.image, text, versus=label_means[rival])
        wrong = explainer.explain(s.image, label_means[rival])
        times["forward"].append(t_fwd)
        times["explain"].append(t_cam)
        times["contrast"].append(t_contrast)
        h, w = s.mask.shape
        near = near_mask(s.mask, tol)
        truth = mask_bbox(s.mask)
        size = (exp.bbox[2] - exp.bbox[0], exp.bbox[3] - exp.bbox[1])
        centre = (w // 2, h // 2)
        draws = zip(rng.integers(0, w, _RANDOM_DRAWS), rng.integers(0, h, _RANDOM_DRAWS))
        for key in (s.defect, "all"):
            t = tallies[key]
            t.hit.append(float(near[exp.peak[1], exp.peak[0]]))
            t.hit_random.append(float(near.mean()))  # exact chance of a uniform peak
            t.hit_centre.append(float(near[centre[1], centre[0]]))
            t.hit_wrong.append(float(near[wrong.peak[1], wrong.peak[0]]))
            t.iou.append(box_iou(exp.bbox, truth))
            t.iou_centre.append(box_iou(box_at(centre, size, (h, w)), truth))
            t.heat_in_mask.append(float(exp.heatmap[near].sum() / max(exp.heatmap.sum(), 1e-12)))
        iou_random = float(np.mean([box_iou(box_at((int(x), int(y)), size, (h, w)), truth) for x, y in draws]))
        tallies[s.defect].iou_random.append(iou_random)
        tallies["all"].iou_random.append(iou_random)
    return dict(tallies), dict(times), f"{bundle.model_id[:12]} on {bundle.device}"


def format_tables(tallies: dict[str, Tally], times: dict[str, list[float]], tol: float) -> str:
    """Markdown: localization per defect type and overall, then latency."""
    order = [d for d in DEFECT_TYPES if d in tallies] + ["all"]
    lines = [
        "| defect | n | hit Grad-CAM | hit random | hit centre | hit wrong text | IoU Grad-CAM | IoU random "
        "| IoU centre | heat in mask |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in order:
        t = tallies[key]
        cells = [t.hit, t.hit_random, t.hit_centre, t.hit_wrong, t.iou, t.iou_random, t.iou_centre, t.heat_in_mask]
        name = f"**{key}**" if key == "all" else key
        lines.append(f"| {name} | {len(t.hit)} | " + " | ".join(f"{np.mean(c):.3f}" for c in cells) + " |")
    lines.append(f"\nhit = peak within {tol:g} px of the mask; random = exact chance of a uniform peak.\n")
    fwd = times["forward"]
    lines += [
        "| one frame | median ms | x forward (median of per-frame ratios) |",
        "|---|---:|---:|",
        f"| forward (embed_images) | {statistics.median(fwd):.1f} | 1.00 |",
    ]
    for key, name in (("explain", "Grad-CAM, similarity"), ("contrast", "Grad-CAM, contrast #1 vs #2")):
        # Paired ratios: each explanation is timed right after its own frame's forward pass, so
        # load from other processes on a shared machine affects both sides alike.
        ratio = statistics.median(t / f for t, f in zip(times[key], fwd))
        lines.append(f"| {name} | {statistics.median(times[key]):.1f} | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the markdown tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.localization", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="inspector-default", help="architecture name or checkpoint")
    parser.add_argument("--n", type=int, default=80, help="number of held-out defect frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=8.0, help="pointing-game tolerance in pixels")
    parser.add_argument(
        "--text",
        choices=("mean", "best"),
        default="mean",
        help="true label's text: mean of its held-out descriptions, or the best-matching one",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); use 1 on a loaded shared machine",
    )
    parser.add_argument(
        "--map",
        choices=("gradcam", "dense", "similarity"),
        default="gradcam",
        help="pytorch-grad-cam at the training crop; the station's dense Grad-CAM; or the plain "
        "dense similarity map (t . P_ij, not Grad-CAM)",
    )
    parser.add_argument("--input-size", type=int, default=0, help="--map dense: short side px (0: the model's)")
    parser.add_argument("--size", type=int, default=224, help="generated frame side, px")
    parser.add_argument(
        "--large",
        action="store_true",
        help="small defects (<= 12 px) on --size frames (models.synth.large; use --size >= 1024)",
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # oversubscribed OpenMP threads make CPU timings meaningless
    tallies, times, where = run(
        args.model, args.n, args.seed, args.tol, args.text, args.map, args.input_size, args.size, args.large
    )
    command = "python -m bench.localization " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(
        f"`{command}`  \nmodel {args.model} ({where}), map={args.map}, text={args.text}, n={args.n}, "
        f"seed={args.seed}, frames {args.size} px; {machine}\n"
    )
    print(format_tables(tallies, times, args.tol))
    return 0


if __name__ == "__main__":
    sys.exit(main())
