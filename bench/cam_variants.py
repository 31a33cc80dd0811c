"""Which Grad-CAM map finds the defect? Map variants side by side, from ONE forward per frame.

    python -m bench.cam_variants [--model M] [--n N] [--seed S] [--size PX] [--large]
                                 [--input-size PX] [--tile-size PX] [--tile-overlap PX] [--tiling auto|on|off]
                                 [--threads T] [--variants a,b,...] [--wording heldout|fresh]

For choosing the station's map on the VALIDATION seeds (0, 1); the fresh test seed
(models/synth/fresh_test.py) is for one final run of the chosen map only.

Same samples, texts and hit rule as bench.localization --map dense (held-out generated defects, the
true label's mean held-out description, hit = peak within --tol px of the mask; "wrong" = the map of
the best-matching wrong defect label). The library for the softmax targets is the 8 labels of the
generator (7 defects + "ok"), each the mean of its held-out descriptions, at the model's logit scale.

Variants:
- gradcam: the station's map before this bench (target cos(image, text)).
- softmax: Grad-CAM of the label's softmax probability over the library (models.dense_map, kind "softmax").
- softmax-defects: the same over the 7 defect labels only (no "ok" in the library).
- similarity: t . P_ij (not Grad-CAM; reference row).
- pixel-softmax: per-location softmax over the library (dense classification; not Grad-CAM, reference row).
- region IoU: the map's region (peak's connected area >= half its max) against the mask's bbox.
- *+blur: the frame-size map blurred with a Gaussian of sigma = half a feature cell before the peak.
- zoom-K-W-I-PICK (models/zoom.py): the station's map (softmax-defects+blur), then its top K local
  maxima cropped (W frame px) and scored again at I px; the window with the highest PICK ("prob": the
  label's softmax probability on the crop, "max": the crop map's max) gives the peak and region.
  Crops are cached per frame (variants share them); the wrong-text control for zoom variants only
  with --zoom-wrong. The cost line gives ms per frame encode and per crop forward, same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

import cv2
import numpy as np
import torch

from bench.localization import _unit, box_iou, mask_bbox, near_mask
from models.dense_map import FrontEnd, cam_map, cell_px
from models.explain import _hottest_region
from models.factory import load_model
from models.scorer import TorchScorer
from models.synth import DEFECT_TYPES, generate, heldout_descriptions
from models.synth.fresh_test import fresh_test_descriptions
from models.tiling import TileSpec
from models.zoom import ZoomSpec, zoom

BASE = {
    "gradcam": ("gradcam", "all"),
    "softmax": ("softmax", "all"),
    "softmax-defects": ("softmax", "defects"),
    "similarity": ("similarity", "all"),
    "pixel-softmax": ("pixel-softmax", "all"),
}
DEFAULT_VARIANTS = "gradcam,gradcam+blur,softmax,softmax+blur,softmax-defects,similarity,pixel-softmax"
EXTENT_BINS = ((1, 4), (5, 6), (7, 8), (9, 10), (11, 12))


def peak_of(
    variant: str, features, text: np.ndarray, h: int, w: int, libs: dict[str, np.ndarray], scale: float
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """The (x, y) peak and region (x0, y0, x1, y1) of one variant's map for `text`."""
    name, blur = (variant[: -len("+blur")], True) if variant.endswith("+blur") else (variant, False)
    kind, lib = BASE[name]
    heat = cam_map(features, text, None, h, w, kind, libs[lib], scale)
    if blur:
        heat = cv2.GaussianBlur(heat, (0, 0), 0.5 * cell_px(features))
    if heat.max() > 0:
        heat = heat / heat.max()
    return _hottest_region(heat.astype(np.float32))


def zoom_spec(variant: str) -> ZoomSpec:
    """ZoomSpec of a "zoom-K-W-I-PICK" variant name."""
    _, k, window, size, pick = variant.split("-")
    return ZoomSpec(int(k), int(window), int(size), pick)


def zoom_peak(variant, scorer, image, features, text, libs, cache, clock) -> tuple[tuple[int, int], tuple]:
    """Peak and region of a zoom variant; crops cached in `cache`, crop forwards timed into `clock`."""
    spec = zoom_spec(variant)
    h, w = image.shape[:2]
    heat = cam_map(features, text, None, h, w, "softmax", libs["defects"], scorer.logit_scale)
    heat = cv2.GaussianBlur(heat, (0, 0), 0.5 * cell_px(features))
    front = FrontEnd(spec.input_size, TileSpec("off"))

    def encode(crop: np.ndarray, roi: np.ndarray | None):
        key = (crop.shape, hash(crop.tobytes()), spec.input_size)
        if key not in cache:
            t = time.perf_counter()
            cache[key] = scorer.encode_frame(crop, roi, frontend=front)
            clock.append(time.perf_counter() - t)
        return cache[key]

    z = zoom(encode, image, heat, text, libs["defects"], scorer.logit_scale, spec, None, features.embedding)
    return (z.peak, z.bbox) if z is not None else _hottest_region((heat / max(heat.max(), 1e-12)).astype(np.float32))


def run(args: argparse.Namespace) -> tuple[dict, dict, str]:
    """Per-variant hit lists (true, wrong), per-extent hits and a provenance line."""
    bundle = load_model(args.model)
    spec = TileSpec(args.tiling, args.tile_size, args.tile_overlap)
    scorer = TorchScorer(bundle, frontend=FrontEnd(args.input_size, spec))
    labels = [d for d in DEFECT_TYPES if d != "ok"]
    words = fresh_test_descriptions if args.wording == "fresh" else heldout_descriptions
    means = {lb: _unit(scorer.embed_texts(words(lb)).mean(axis=0)) for lb in DEFECT_TYPES}
    libs = {"all": np.stack([means[lb] for lb in DEFECT_TYPES]), "defects": np.stack([means[lb] for lb in labels])}
    if args.large:
        from models.synth.large import small_defects_on_large_frames

        samples = small_defects_on_large_frames(args.n, seed=args.seed, size=args.size, defects=tuple(labels))
    else:
        samples = generate(args.n, seed=args.seed, split="test", defects=labels, size=args.size)
    variants = args.variants.split(",")
    hits: dict[str, dict[str, list[float]]] = {v: defaultdict(list) for v in variants}
    start = time.perf_counter()
    frame_clock: list[float] = []
    crop_clock: list[float] = []
    for s in samples:
        t = time.perf_counter()
        features = scorer.encode_frame(s.image)
        frame_clock.append(time.perf_counter() - t)
        cache: dict = {}
        h, w = s.mask.shape
        near = near_mask(s.mask, args.tol)
        rival = max((lb for lb in labels if lb != s.defect), key=lambda lb: float(means[lb] @ features.embedding))
        extent = s.meta.get("extent_px")
        for v in variants:
            if v.startswith("zoom-"):
                (px, py), region = zoom_peak(v, scorer, s.image, features, means[s.defect], libs, cache, crop_clock)
                if args.zoom_wrong:
                    (wx, wy), _ = zoom_peak(v, scorer, s.image, features, means[rival], libs, cache, crop_clock)
                    hits[v]["wrong"].append(float(near[wy, wx]))
            else:
                (px, py), region = peak_of(v, features, means[s.defect], h, w, libs, scorer.logit_scale)
                (wx, wy), _ = peak_of(v, features, means[rival], h, w, libs, scorer.logit_scale)
                hits[v]["wrong"].append(float(near[wy, wx]))
            hits[v]["iou"].append(box_iou(region, mask_bbox(s.mask)))
            hit = float(near[py, px])
            hits[v]["true"].append(hit)
            if extent is not None:
                hits[v][next(f"{a}-{b}" for a, b in EXTENT_BINS if a <= extent <= b)].append(hit)
    seconds = time.perf_counter() - start
    cost = {"seconds": seconds, "frames": len(samples), "frame_ms": 1e3 * float(np.median(frame_clock))}
    cost["crop_ms"] = 1e3 * float(np.median(crop_clock)) if crop_clock else float("nan")
    cost["crops"] = len(crop_clock)
    return hits, cost, f"{bundle.model_id[:12]} on {bundle.device}"


def format_table(hits: dict, large: bool) -> str:
    """Markdown: one row per variant (hit true, hit wrong, ratio; per extent for large frames)."""
    bins = [f"{a}-{b}" for a, b in EXTENT_BINS] if large else []
    head = "| map | n | hit, true text | hit, wrong text | true / wrong | region IoU |" + "".join(
        f" {b} px |" for b in bins
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|" + "---:|" * len(bins)]
    for v, h in hits.items():
        t = np.mean(h["true"])
        wr = np.mean(h["wrong"]) if h["wrong"] else float("nan")
        ratio = "-" if np.isnan(wr) else (f"{t / wr:.1f}x" if wr else "inf")
        cells = "".join(f" {np.mean(h[b]):.2f} ({len(h[b])}) |" if h.get(b) else " - |" for b in bins)
        iou = np.mean(h["iou"])
        lines.append(
            f"| {v} | {len(h['true'])} | {t:.3f} | {'-' if np.isnan(wr) else f'{wr:.3f}'} | {ratio} | {iou:.3f} |{cells}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.cam_variants", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="inspector-default-v1")
    parser.add_argument("--n", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=8.0)
    parser.add_argument("--size", type=int, default=224, help="generated frame side, px")
    parser.add_argument("--large", action="store_true", help="small defects (<= 12 px) on --size frames")
    parser.add_argument("--input-size", type=int, default=448, help="short side of the whole-frame view, px")
    parser.add_argument("--tiling", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--tile-size", type=int, default=448, help="tile side in frame px (scored at --input-size)")
    parser.add_argument("--tile-overlap", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--zoom-wrong", action="store_true", help="zoom variants: also the wrong-text control")
    parser.add_argument(
        "--wording",
        choices=("heldout", "fresh"),
        default="heldout",
        help="label texts: the validation (held-out) wording, or the fresh TEST wording (final run only)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    hits, cost, where = run(args)
    command = "python -m bench.cam_variants " + " ".join(sys.argv[1:] if argv is None else argv)
    print(
        f"`{command}`  \nmodel {args.model} ({where}), n={args.n}, seed={args.seed}, frames {args.size} px, "
        f"wording {args.wording}, map forward {args.input_size} px, tiles {args.tiling} {args.tile_size}/{args.tile_overlap}; "
        f"{cost['frames']} frames in {cost['seconds']:.0f} s ({torch.get_num_threads()} threads); median ms: "
        f"frame encode {cost['frame_ms']:.0f}, crop forward {cost['crop_ms']:.0f} ({cost['crops']} crops)\n"
    )
    print(format_table(hits, args.large))
    return 0


if __name__ == "__main__":
    sys.exit(main())
