"""Where small defects on large frames are lost: finding the window, or reading the crop? (diagnostic)

    python -m bench.zoom_ceiling [--seed S] [--n N] [--window PX] [--threads T]

On the VALIDATION large-frame set (models.synth.large, seeds 0/1; never a test seed), one window per
frame is zoomed as models.zoom does (models.zoom.zoom: crop, 448 px, softmax map over the 7 defect labels,
prob pick, which is what "auto" does on these frames)
and the crop map's peak is scored (within 8 px of the mask), for windows centred on:

- text: the frame map's peak (the station's zoom);
- oracle: the defect's centre, offset by up to 50 px (seeded), i.e. a window finder that is never
  wrong: the ceiling of the crop's map;
- anomaly: the peak of a label-free self-anomaly map (each 448-tile cell's cosine distance to the
  most similar cell of the same frame at least 48 px away: "unlike the rest of this frame");
- union: text and anomaly windows both, the higher label probability wins (two crops; one, when the
  two centres are within half a window of each other, as models.zoom keeps maxima apart).

"map peak" rows are the frame maps' own peaks without zoom. "wrong" rows use the best-matching wrong
label, as bench.cam_variants. Chooses nothing; the station's zoom is unchanged by it.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from bench.localization import _unit, near_mask
from models.dense_map import FrameFeatures, FrontEnd, cam_map, cell_boxes
from models.factory import load_model
from models.scorer import TorchScorer
from models.synth import DEFECT_TYPES, heldout_descriptions
from models.synth.large import small_defects_on_large_frames
from models.tiling import TileSpec
from models.zoom import ZoomSpec, zoom

SIZE, BLUR = 1024, 16  # frame px; half a 32-px tile cell, as the station's map


def self_anomaly(features: FrameFeatures, h: int, w: int, exclude: int = 48) -> np.ndarray:
    """Each tile cell's cosine distance to its most similar cell >= `exclude` px away, on the frame."""
    rows, boxes = [], []
    for view in features.views[1:] if features.tiled else features.views[:1]:
        rows.append(view.dense.reshape(view.dense.shape[0], -1).T)
        boxes += cell_boxes(view.box, view.dense.shape[1], view.dense.shape[2])
    r = np.concatenate(rows)
    r = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
    centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes])
    sim = r @ r.T
    sim[np.abs(centres[:, None] - centres[None]).max(-1) < exclude] = -2.0  # itself, its tile overlaps
    out = np.zeros((h, w), np.float32)
    for s, (x0, y0, x1, y1) in zip(1.0 - sim.max(1), boxes):
        np.maximum(out[y0:y1, x0:x1], np.float32(s), out=out[y0:y1, x0:x1])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zoom_ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, choices=(0, 1), help="validation seeds only")
    parser.add_argument("--n", type=int, default=112)
    parser.add_argument("--window", type=int, default=176)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bundle = load_model("inspector-default-v1")
    scorer = TorchScorer(bundle, frontend=FrontEnd(448, TileSpec("auto", 448, 64)))
    labels = [d for d in DEFECT_TYPES if d != "ok"]
    means = {lb: _unit(scorer.embed_texts(heldout_descriptions(lb)).mean(axis=0)) for lb in labels}
    lib, scale, crop_front = np.stack([means[lb] for lb in labels]), scorer.logit_scale, FrontEnd(448, TileSpec("off"))
    cache: dict[int, FrameFeatures] = {}

    def zoom_at(image: np.ndarray, centres: list[tuple[int, int]], text: np.ndarray) -> tuple[int, int]:
        """The station's zoom (models.zoom.zoom, prob pick) with its windows centred on `centres`."""
        coarse = np.zeros((SIZE, SIZE), np.float32)
        for rank, (x, y) in enumerate(centres):  # a map whose maxima are the centres, in this order
            coarse[int(np.clip(y, 0, SIZE - 1)), int(np.clip(x, 0, SIZE - 1))] = 1.0 - 0.1 * rank
        spec = ZoomSpec(len(centres), args.window, 448, "prob")  # "auto" on these frames
        z = zoom(encode, image, coarse, text, lib, scale, spec)
        return z.peak if z is not None else centres[0]

    def encode(crop: np.ndarray, roi: np.ndarray | None) -> FrameFeatures:
        key = hash(crop.tobytes())
        if key not in cache:
            cache[key] = scorer.encode_frame(crop, roi, frontend=crop_front)
        return cache[key]

    def peak(heat: np.ndarray) -> tuple[int, int]:
        y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
        return int(x), int(y)

    hits: dict[str, list[float]] = {}
    start = time.perf_counter()
    for s in small_defects_on_large_frames(args.n, seed=args.seed, size=SIZE, defects=tuple(labels)):
        cache.clear()
        f = scorer.encode_frame(s.image)
        near = near_mask(s.mask, 8)
        rival = max((lb for lb in labels if lb != s.defect), key=lambda lb: float(means[lb] @ f.embedding))
        maps = {
            t: cv2.GaussianBlur(cam_map(f, means[t], None, SIZE, SIZE, "softmax", lib, scale), (0, 0), BLUR)
            for t in (s.defect, rival)
        }
        anomaly = peak(cv2.GaussianBlur(self_anomaly(f, SIZE, SIZE), (0, 0), BLUR))
        ys, xs = np.nonzero(s.mask)
        dx, dy = np.random.default_rng(s.meta["index"]).integers(-50, 51, 2)
        oracle = (int(xs.mean()) + int(dx), int(ys.mean()) + int(dy))
        rows = {
            "map peak, text": peak(maps[s.defect]),
            "map peak, anomaly (label-free)": anomaly,
            "zoom, text window (station)": zoom_at(s.image, [peak(maps[s.defect])], means[s.defect]),
            "zoom, oracle window": zoom_at(s.image, [oracle], means[s.defect]),
            "zoom, anomaly window": zoom_at(s.image, [anomaly], means[s.defect]),
            "zoom, union (text + anomaly)": zoom_at(s.image, [peak(maps[s.defect]), anomaly], means[s.defect]),
            "zoom, union, wrong text": zoom_at(s.image, [peak(maps[rival]), anomaly], means[rival]),
        }
        for name, (x, y) in rows.items():
            hits.setdefault(name, []).append(float(near[y, x]))
    print(
        f"`python -m bench.zoom_ceiling --seed {args.seed} --n {args.n} --window {args.window}`: model "
        f"{bundle.model_id[:12]}, {args.n} frames of {SIZE} px, window {args.window} px at 448, "
        f"{time.perf_counter() - start:.0f} s\n\n| window centred on | hit |\n|---|---:|"
    )
    for name, v in hits.items():
        print(f"| {name} | {np.mean(v):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
