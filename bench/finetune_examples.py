"""The learning curve's example arms (issue 13): after a fine-tuning round, the held-out split ranked by

- text: the model's descriptions alone (mean cosine per label, the station's words);
- examples: the FROZEN shipped model with the round's training confirmations as the labels' examples;
- both: the FINE-TUNED candidate with the same confirmations as examples;

through the station's own example ranking (inspector.frame.example_cache.build_cache with its default,
the text-anchored probe; ProbeParams' defaults were chosen on examples_curve's validation split, so
nothing here is chosen on the held-out split). The examples are the images of the round's training
pairs (run_finetune's train split, read back from the station's image store), with their labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _examples(log: Any, training_set: Any, names: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    from PIL import Image

    images, ys = [], []
    for pair in training_set.train:
        with Image.open(log.image_path(pair.image_sha256)) as im:
            images.append(np.asarray(im.convert("RGB")))
        ys.append(names.index(pair.label_id))
    return images, np.array(ys, dtype=np.int64)


def _accuracy(plant: Any, scorer: Any, images: list[np.ndarray], ys: np.ndarray, with_examples: bool) -> dict:
    from bench.examples_curve import metrics
    from inspector.frame.example_cache import build_cache, text_scores

    names = list(plant.texts)
    text_emb = scorer.embed_texts([t for n in names for t in plant.texts[n]])
    counts = np.array([len(plant.texts[n]) for n in names])
    img = scorer.embed_images(plant.heldout_images)
    words = text_scores(img @ text_emb.T, counts)
    scores = words
    if with_examples:
        emb = scorer.embed_images(images)
        labels = [(n, [(str(i), emb[i]) for i in np.flatnonzero(ys == li)]) for li, n in enumerate(names)]
        cache = build_cache(labels, np.stack, (text_emb, counts), "learning-curve")
        scores = cache.label_scores(words, img)
    y = np.array([names.index(v) if v in names else -1 for v in plant.heldout_labels])
    return metrics(plant.name, scores, y, plant.heldout_probs, names)


def example_arms(plant: Any, store: Any, shipped: Any, tuned: Any, log: Any, training_set: Any) -> dict[str, Any]:
    """{arm: held-out metrics} for text (shipped), examples (shipped + examples), fine-tuned (text), both."""
    from bench.plant import CachedScorer

    images, ys = _examples(log, training_set, list(plant.texts))
    frozen, fine = CachedScorer(shipped, store=store), CachedScorer(tuned, store=store)
    return {
        "n_examples": len(images),
        "text": _accuracy(plant, frozen, images, ys, False),
        "examples": _accuracy(plant, frozen, images, ys, True),
        "finetuned": _accuracy(plant, fine, images, ys, False),
        "both": _accuracy(plant, fine, images, ys, True),
    }
