"""The learning curve's example arms (issue 13): after a fine-tuning round, the held-out split ranked by

- text: the model's descriptions alone (mean cosine per label, the station's words);
- examples: the FROZEN shipped model with the round's training confirmations as the labels' examples;
- finetuned: the FINE-TUNED candidate, descriptions alone;
- both: the FINE-TUNED candidate with the same confirmations as examples;
- logreg: the baseline a user would otherwise pick, logistic regression (sklearn) on the FROZEN shipped
  model's image embeddings of the same confirmations.

The example arms go through the station's own example ranking (inspector.frame.example_cache.build_cache
with its default, the text-anchored probe; ProbeParams' defaults were chosen on examples_curve's
validation split). The regression's C is the one examples_curve chose on that same validation split
(bench/results/examples_curve.json, "chosen"), so nothing here is chosen on the held-out split. The
examples are the images of the round's training pairs (run_finetune's train split, read back from the
station's image store), with their labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

ARMS = ("text", "examples", "finetuned", "both", "logreg")
_CHOSEN = Path(__file__).resolve().parent / "results" / "examples_curve.json"


def logreg_c() -> float:
    """The regression's C as examples_curve's validation split chose it (100 when that file is absent)."""
    if _CHOSEN.is_file():
        return float(json.loads(_CHOSEN.read_text())["chosen"]["logreg"]["C"])
    return 100.0  # the value that file records (BENCHMARKS.md, "Example images")


def _examples(log: Any, training_set: Any, names: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    from PIL import Image

    images, ys = [], []
    for pair in training_set.train:
        with Image.open(log.image_path(pair.image_sha256)) as im:
            images.append(np.asarray(im.convert("RGB")))
        ys.append(names.index(pair.label_id))
    return images, np.array(ys, dtype=np.int64)


def _arms(plant: Any, scorer: Any, images: list[np.ndarray], ys: np.ndarray, frozen: bool) -> dict[str, dict]:
    """Words alone and words + examples for one model; with the frozen model also the regression."""
    from bench.examples_curve import _logreg, metrics
    from inspector.frame.example_cache import build_cache, text_scores

    names = list(plant.texts)
    y = np.array([names.index(v) if v in names else -1 for v in plant.heldout_labels])
    score = lambda s: metrics(plant.name, s, y, plant.heldout_probs, names)  # noqa: E731
    text_emb = scorer.embed_texts([t for n in names for t in plant.texts[n]])
    counts = np.array([len(plant.texts[n]) for n in names])
    img = scorer.embed_images(plant.heldout_images)
    words = text_scores(img @ text_emb.T, counts)
    emb = scorer.embed_images(images)
    labels = [(n, [(str(i), emb[i]) for i in np.flatnonzero(ys == li)]) for li, n in enumerate(names)]
    cache = build_cache(labels, np.stack, (text_emb, counts), "learning-curve")
    out = {"text": score(words), "examples": score(cache.label_scores(words, img))}
    if frozen:
        out["logreg"] = score(_logreg(img, emb, ys, len(names), logreg_c(), words))
    return out


def example_arms(plant: Any, store: Any, shipped: Any, tuned: Any, log: Any, training_set: Any) -> dict[str, Any]:
    """{arm: held-out metrics} for text, examples, finetuned, both and logreg (see the module docstring)."""
    from bench.plant import CachedScorer

    images, ys = _examples(log, training_set, list(plant.texts))
    frozen = _arms(plant, CachedScorer(shipped, store=store), images, ys, True)
    fine = _arms(plant, CachedScorer(tuned, store=store), images, ys, False)
    return {
        "n_examples": len(images),
        "logreg_C": logreg_c(),
        "text": frozen["text"],
        "examples": frozen["examples"],
        "finetuned": fine["text"],
        "both": fine["examples"],
        "logreg": frozen["logreg"],
    }
