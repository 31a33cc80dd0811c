"""Render a contact sheet of generated samples with their mask outlines (for eyeballing the generator).

python -m models.synth.preview docs/synth_contact_sheet.png [--per-type 4] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from models.synth.dataset import Sample, generate
from models.synth.defects import DEFECT_TYPES


def contact_sheet(samples: Sequence[Sample], per_row: int, tile: int = 192) -> Image.Image:
    """Rows of `per_row` tiles, mask outlines (grown by 4 px) in magenta, rows labelled by defect type."""
    label_w = 70
    rows = []
    for start in range(0, len(samples), per_row):
        chunk = samples[start : start + per_row]
        label = np.full((tile, label_w, 3), 255, np.uint8)
        cv2.putText(label, chunk[0].defect, (4, tile // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles = [label]
        for s in chunk:
            img = cv2.resize(s.image, (tile, tile), interpolation=cv2.INTER_AREA)
            # outline a slightly grown mask, so the line sits around the defect, not on top of it
            grown = cv2.dilate(s.mask.astype(np.uint8), np.ones((9, 9), np.uint8))
            m = cv2.resize(grown, (tile, tile), interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            img = np.ascontiguousarray(img)
            cv2.drawContours(img, contours, -1, (255, 0, 255), 1)
            tiles.append(np.pad(img, ((1, 1), (1, 1), (0, 0)), constant_values=255))
        tiles = [cv2.resize(t, (t.shape[1], tile + 2)) if t.shape[0] != tile + 2 else t for t in tiles]
        rows.append(np.concatenate(tiles, axis=1))
    return Image.fromarray(np.concatenate(rows, axis=0))


def main(argv: Sequence[str] | None = None) -> None:
    """Generate `--per-type` samples of each defect type and save their contact sheet."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--per-type", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--textile-fraction", type=float, default=0.5)
    args = ap.parse_args(argv)
    k = args.per_type
    samples: list[Sample] = []
    for i, d in enumerate(DEFECT_TYPES):
        samples += generate(k, seed=args.seed * 100 + i, defects=(d,), textile_fraction=args.textile_fraction)
    contact_sheet(samples, k).quantize(256, dither=Image.Dither.NONE).save(args.out, optimize=True)


if __name__ == "__main__":
    main()
