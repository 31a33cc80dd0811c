"""Precision@10 of text search on held-out generated defects, embedded by the shipped model.

Parts: models.synth test split (textures and wording the model never trained on). Per defect type,
the query is its first held-out description; a hit is relevant when the generator drew that defect.
Baselines: random order (the defect's share of the parts) and "filter by the logged #1 label"
(the parts the station ranked as that label #1, in recording order: what the Audit filter gives).
"""

from __future__ import annotations

import time

import numpy as np


def precision_at_10(n: int, model: str = "inspector-default-v1", seed: int = 11) -> dict:
    from inspector.config import load_config
    from inspector.frame.ranking import build_index, rank
    from inspector.frame.scorer import load_scorer
    from inspector.library.labels import load_library
    from inspector.search.ann import FilteredIndex
    from inspector.search.embed import search_vectors
    from models.synth import generate
    from models.synth.captions import heldout_descriptions

    scorer = load_scorer(model, "cpu")
    samples = generate(n, seed=seed, split="test")
    library = load_library(load_config().library.path)
    index = build_index(library, scorer.embed_texts, scorer.model_id)
    t0 = time.perf_counter()
    vecs = [search_vectors(scorer, np.ascontiguousarray(s.image)) for s in samples]
    embed_s = time.perf_counter() - t0
    top1 = [rank(v[0], index, scorer.logit_scale).top.label_id for v in vecs]
    truth = [s.defect for s in samples]
    fi, fi_global = FilteredIndex(scorer.embed_dim), FilteredIndex(scorer.embed_dim)
    for i, v in enumerate(vecs):
        fi.add(np.full(len(v), i, np.int64), v)
        fi_global.add(np.array([i], np.int64), v[:1])
    rows = {}
    for defect in sorted(set(truth) - {"ok"}):
        q = scorer.embed_texts([heldout_descriptions(defect)[0]])[0]
        hits = [o for o, _ in fi.search(q, None, 10)]
        hits_g = [o for o, _ in fi_global.search(q, None, 10)]
        by_label = [i for i, lab in enumerate(top1) if lab == defect][:10]
        rows[defect] = {
            "query": heldout_descriptions(defect)[0],
            "text_search": float(np.mean([truth[i] == defect for i in hits])),
            "text_search_global_only": float(np.mean([truth[i] == defect for i in hits_g])),
            "random": truth.count(defect) / n,
            "filter_logged_top1": float(np.mean([truth[i] == defect for i in by_label])) if by_label else None,
            "filter_found": len(by_label),
        }
        print(defect, rows[defect], flush=True)
    mean = {
        k: float(np.mean([r[k] for r in rows.values() if r[k] is not None]))
        for k in ("text_search", "text_search_global_only", "random", "filter_logged_top1")
    }
    return {"parts": n, "model": model, "embed_s_per_part": embed_s / n, "per_defect": rows, "mean": mean}
