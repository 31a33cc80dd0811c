"""Examples benchmark: accuracy against the number of confirmed parts, with no training at all.

    python -m bench.examples_curve [--seeds 0,1,2] [--datasets textile,elpv] [--cache runs/examples_curve]

Every image is embedded once by the shipped model (inspector-default-v1; frozen towers, cached in
--cache). For each budget of confirmed parts (0; 5 and 20 per label; 50, 200 and 1 000 in total,
drawn at random from the pool in arrival order, so the labels come in their natural mix) and seed,
the confirmed parts become the labels' examples and the held-out split is ranked by:

- text only: the station's ranking with descriptions alone (mean cosine per label);
- examples: the example cache alone (inspector.frame.example_cache, soft nearest neighbour);
- both: the station's blend (the same code the ranking runs: calibrate + blend, BlendParams' defaults
  are this row's validated choice); both_voted: its weight voted by the examples themselves
  (leave-one-out); both_debiased: the words' per-label offset over the examples removed first;
- tip-adapter: Zhang et al. 2022's training-free cache, logits + alpha * sum exp(-beta (1 - cos));
- logistic regression on the same frozen image features and the same confirmations (C chosen on
  validation), the baseline a user would otherwise pick;
- probe: THE STATION'S RANKING (build_cache's default, inspector.frame.example_probe): a linear probe
  fitted on the confirmations from the text prototypes with a penalty for leaving them (CLAP,
  Silva-Rodriguez et al. CVPR 2024, class-adaptive), optionally blended with the soft-nearest cache
  (Tip-Adapter-F / LP++ flavour). "both" is the calibrated blend the station ran before it.

Parameters (the blend's weight and sharpness, Tip-Adapter's alpha and beta, the regression's C, the
probe's anchor, temperature and cache weight) are
chosen on a VALIDATION split carved out of the pool (never the held-out split, never the examples),
by mean accuracy over both data sets, budgets and seeds; the held-out figures are then reported.
Splits as bench.learning_curve: ELPV held-out = the 25 % stratified split (656 cells; accuracy is
defective = p >= 0.5 over all of them, AUROC on callable cells), the pool = callable cells of the
other 75 %, labels ok vs defective with solar_cells.yaml's descriptions (defect labels merged);
textiles held-out = 100 per class from images the shipped model never saw, library textiles.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.examples_curve_report import METHODS, markdown, plot, validation_markdown
from inspector.frame.example_cache import BlendParams, blend, build_cache, calibrate, soft_nearest, text_scores
from inspector.frame.example_probe import ProbeParams, plant_prior

ROOT = Path(__file__).resolve().parent.parent
BUDGETS: tuple[tuple[str, int], ...] = (
    ("0", 0),
    ("5/label", 5),
    ("20/label", 20),
    ("50", 50),
    ("200", 200),
    ("1000", 1000),
)
STATION = {"anchor": 0.03, "temperature": 30.0, "bias": 1, "adaptive": 1, "weight": 0.3, "sharpness": 10.0}
GRID = {
    "both": [{"weight": w, "sharpness": s} for w in (0.3, 0.5, 0.7, 0.85, 1.0) for s in (1.0, 10.0, 30.0, 100.0)],
    "both_voted": [{"weight": w, "sharpness": s, "auto": 1} for w in (0.5, 0.85) for s in (10.0, 30.0)],
    "both_debiased": [
        {"weight": w, "sharpness": s, "auto": a, "debias": 1} for w in (0.5, 0.85) for s in (10.0, 30.0) for a in (0, 1)
    ],
    "examples": [{"sharpness": s} for s in (1.0, 10.0, 30.0, 100.0)],
    "tip_adapter": [{"alpha": a, "beta": b} for a in (1.0, 3.0, 10.0, 30.0, 100.0) for b in (1.0, 5.5, 10.0)],
    "logreg": [{"C": c} for c in (0.1, 1.0, 10.0, 100.0)],
    "probe": [
        {"anchor": a, "temperature": t, "bias": 1, "adaptive": ad}
        for a in (0.03, 0.3, 3.0)
        for t in (30.0, 100.0)
        for ad in (0, 1)
    ]
    + [{"anchor": a, "temperature": 30.0, "bias": 1, "adaptive": 1, "per_example": 1} for a in (3.0, 10.0, 30.0)]
    + [
        {"anchor": a, "temperature": 30.0, "bias": 1, "adaptive": 1, "weight": w, "sharpness": s}
        for a in (0.03, 0.3)
        for w in (0.3, 0.5, 0.7)
        for s in (10.0, 30.0)
    ]
    # small budgets (this round): the plant's prior shift and shrinkage toward the words, on the
    # previous choice (anchor 0.03, cache weight 0.3, sharpness 10) and on the per-example anchor
    + [{**STATION, "prior": pr, "shrink": k} for pr in (0.0, 0.5, 1.0) for k in (0.0, 1.0, 3.0, 10.0) if pr or k]
    + [{**STATION, "anchor": a, "per_example": 1, "prior": pr} for a in (10.0, 30.0) for pr in (0.0, 1.0)]
    # second round, around the first round's two best (prior 0.5 + shrink 3; per-example anchor 10 + prior 1)
    + [{**STATION, "prior": pr, "shrink": k} for pr in (0.5, 1.0) for k in (2.0, 5.0)]
    + [
        {**STATION, "anchor": 10.0, "per_example": 1, "prior": pr, "shrink": k}
        for pr, k in ((1.0, 1.0), (1.0, 3.0), (0.5, 3.0))
    ],
}


def features(name: str, cache: Path) -> dict[str, Any]:
    """{emb [N, D], labels [N], extras...} for a data set; embedded once by the shipped model."""
    path = cache / f"{name}.npz"
    if not path.is_file():
        from models.benchdata import load_elpv, load_textiles
        from models.factory import load_model
        from models.scorer import TorchScorer

        data = {"elpv": load_elpv, "textile": load_textiles}[name]()
        emb = TorchScorer(load_model("inspector-default-v1", device="cpu")).embed_images(data.images)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, emb=emb, labels=np.array(data.labels), **{"x_" + k: np.array(v) for k, v in data.extras.items()})
    return dict(np.load(path, allow_pickle=False))


def library_texts(name: str) -> dict[str, list[str]]:
    from inspector.library.labels import load_library, seed_library_dir

    if name == "textile":
        return load_library(seed_library_dir() / "textiles.yaml").label_texts()
    sol = load_library(seed_library_dir() / "solar_cells.yaml").label_texts()
    return {"ok": sol["ok"], "defective": [t for k, v in sol.items() if k != "ok" for t in v]}


def splits(name: str, f: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(held-out, validation, pool) indices; validation is 20 % of the pool, seeded, never drawn as examples."""
    labels = f["labels"]
    rng = np.random.default_rng(0)
    if name == "elpv":
        from models.benchdata import LabelledImages, elpv_split

        probs = f["x_probability"].astype(float)
        fake = LabelledImages(
            [None] * len(labels), list(labels), {"probability": list(probs), "type": list(f["x_type"])}
        )
        train, test = elpv_split(fake, seed=0)
        pool = np.array([i for i in train if probs[i] == 0 or probs[i] >= 0.5])
    else:
        unseen = f["x_seed_split"] == "test"
        test = np.sort(
            np.concatenate(
                [
                    rng.choice(np.flatnonzero((labels == c) & unseen), 100, replace=False)
                    for c in ("ok", "local", "global")
                ]
            )
        )
        pool = np.setdiff1d(np.arange(len(labels)), test)
    pool = rng.permutation(pool)
    n_val = len(pool) // 5
    return test, np.sort(pool[:n_val]), pool[n_val:]


def draw(pool: np.ndarray, labels: np.ndarray, names: list[str], budget: tuple[str, int], seed: int) -> np.ndarray:
    """The confirmed parts of a budget: k per label, or the first n of a seeded arrival order."""
    key, n = budget
    rng = np.random.default_rng([seed, n, int(key.endswith("/label"))])
    if key.endswith("/label"):
        return np.concatenate([rng.choice(pool[labels[pool] == c], n, replace=False) for c in names])
    return rng.permutation(pool)[:n]


def scores(
    method: str,
    params: dict[str, float],
    img: np.ndarray,
    ex: np.ndarray,
    ex_y: np.ndarray,
    text_emb: np.ndarray,
    counts: np.ndarray,
    n_labels: int,
    plant: np.ndarray | None = None,
) -> np.ndarray:
    """[N, L] label scores of one method (higher is better); plant: [L] label counts of the pool
    the confirmations come from (what the station's decision log would show), for the prior shift."""
    words = text_scores(img @ text_emb.T, counts)
    if method == "text" or len(ex) == 0:
        return words
    if method == "logreg":
        return _logreg(img, ex, ex_y, n_labels, params["C"], words)
    if method == "probe":
        return _probe(img, ex, ex_y, text_emb, counts, params, words, plant)
    if method == "tip_adapter":
        affinity = np.exp(-params["beta"] * (1 - img @ ex.T))
        return 100 * words + params["alpha"] * affinity @ np.eye(n_labels)[ex_y]
    bp = BlendParams(
        weight=params.get("weight", 1.0), sharpness=params["sharpness"], auto_weight=bool(params.get("auto"))
    )
    examples = soft_nearest(img @ ex.T, ex_y, n_labels, bp.sharpness)
    if method == "examples":
        return np.where(np.isfinite(examples), examples, -np.inf)
    ex_words = text_scores(ex @ text_emb.T, counts)
    if params.get("debias"):
        present = np.unique(ex_y)
        offsets = np.mean([ex_words[ex_y == c].mean(0) for c in present], axis=0)
        offsets = offsets - offsets.mean()
        ex_words, words = ex_words - offsets, words - offsets
    scale, shift, weight = calibrate(ex, ex_y, n_labels, ex_words, bp)
    return blend(words, examples, scale, shift, weight)[0]


def _probe(
    img: np.ndarray,
    ex: np.ndarray,
    ex_y: np.ndarray,
    text_emb: np.ndarray,
    counts: np.ndarray,
    params: dict[str, float],
    words: np.ndarray,
    plant: np.ndarray | None = None,
) -> np.ndarray:
    """The station's text-anchored probe (inspector.frame.example_probe) fitted on the confirmations."""
    pp = ProbeParams(
        anchor=params["anchor"],
        temperature=params["temperature"],
        bias=bool(params.get("bias", 1)),
        adaptive=bool(params.get("adaptive", 0)),
        per_example=bool(params.get("per_example", 0)),
        cache_weight=params.get("weight", 0.0),
        cache_sharpness=params.get("sharpness", 10.0),
        shrink=params.get("shrink", 0.0),
        prior_strength=params.get("prior", 0.0),
    )
    # the station's own code: build_cache with the confirmations as the labels' examples
    labels = [(str(c), [(str(i), ex[i]) for i in np.flatnonzero(ex_y == c)]) for c in range(len(counts))]
    cache = build_cache(labels, np.stack, (text_emb, counts), "bench", probe_params=pp, prior=plant_prior(plant))
    order = np.concatenate([np.flatnonzero(ex_y == c) for c in range(len(counts))])
    assert np.array_equal(cache.keys, ex[order])
    return cache.label_scores(words, img)


def _logreg(
    img: np.ndarray, ex: np.ndarray, ex_y: np.ndarray, n_labels: int, c: float, words: np.ndarray
) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    present = np.unique(ex_y)
    out = np.full((len(img), n_labels), -np.inf)
    if len(present) == 1:  # one class confirmed so far: the regression can only say that class
        out[:, present[0]] = 0.0
        return out
    model = LogisticRegression(C=c, max_iter=2000).fit(ex, ex_y)
    out[:, model.classes_] = model.predict_log_proba(img)
    return out


def metrics(name: str, s: np.ndarray, y: np.ndarray, probs: np.ndarray | None, names: list[str]) -> dict[str, float]:
    pred = s.argmax(1)
    if name != "elpv":
        return {"accuracy": float((pred == y).mean())}
    from models.metrics import auroc, softmax

    z = np.where(np.isfinite(s), s, -1e9)
    ok = names.index("ok")
    defect = 1.0 - softmax(z - z.max(1, keepdims=True), 30.0)[:, ok]
    keep = (probs == 0) | (probs >= 0.5)
    return {
        "accuracy": float(((pred != ok) == (probs >= 0.5)).mean()),
        "called_defective": float((pred != ok).mean()),  # the share called defective (the prior's effect)
        "auroc": float(auroc(defect[keep], probs[keep] >= 0.5)),
    }


def load_set(name: str, cache: Path, scorer: Any) -> tuple[Any, np.ndarray, list[str], np.ndarray, np.ndarray, tuple]:
    """(cached features, labels, label names, description embeddings, descriptions per label,
    (test, validation, pool) indices) of one data set."""
    f = features(name, cache)
    texts = library_texts(name)
    names = list(texts)
    text_emb = scorer.embed_texts([t for n in names for t in texts[n]])
    counts = np.array([len(texts[n]) for n in names])
    y = np.array([names.index(v) for v in f["labels"]])
    return f, y, names, text_emb, counts, splits(name, f)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from models.factory import load_model
    from models.scorer import TorchScorer

    scorer = TorchScorer(load_model("inspector-default-v1", device="cpu"))
    sets = {}
    for name in args.datasets:
        f, y, names, text_emb, counts, (test, val, pool) = load_set(name, Path(args.cache), scorer)
        probs = f["x_probability"].astype(float) if name == "elpv" else None
        sets[name] = (f["emb"], y, names, text_emb, counts, test, val, pool, probs)

    def evaluate(method: str, params: dict[str, float], on: str) -> dict[tuple[str, str, int], dict[str, float]]:
        out = {}
        for name, (emb, y, names, text_emb, counts, test, val, pool, probs) in sets.items():
            idx = test if on == "test" else val
            for budget in BUDGETS:
                for seed in args.seeds:
                    ex = draw(pool, y, list(range(len(names))), budget, seed) if budget[1] else np.array([], int)
                    plant = np.bincount(y[pool], minlength=len(names))  # the pool's mix, never the split's
                    s = scores(method, params, emb[idx], emb[ex], y[ex], text_emb, counts, len(names), plant)
                    out[(name, budget[0], seed)] = metrics(
                        name, s, y[idx], None if probs is None else probs[idx], names
                    )
        return out

    chosen = {"text": {}}
    validation = {}
    points: dict[str, dict[str, dict[str, float]]] = {}  # per grid setting: validation accuracy per point
    for method, grid in GRID.items():
        if method not in args.methods:
            continue
        ranked = []
        for params in grid:
            res = evaluate(method, params, "val")
            ranked.append((float(np.mean([m["accuracy"] for k, m in res.items() if k[1] != "0"])), params))
            points[json.dumps({"method": method, **params}, sort_keys=True)] = _per_point(res)
        validation[method] = [{"params": p, "val_accuracy": a} for a, p in ranked]
        chosen[method] = max(ranked, key=lambda t: t[0])[1]
        print(
            f"{method}: chose {chosen[method]} (validation accuracy {max(ranked, key=lambda t: t[0])[0]:.3f})",
            flush=True,
        )
    points[json.dumps({"method": "text"})] = _per_point(evaluate("text", {}, "val"))
    done = {"chosen": chosen, "validation": validation, "validation_points": points, "seeds": list(args.seeds)}
    if args.validation_only:  # choices only: the held-out split is not touched
        return done
    table: dict[str, Any] = {}
    for method in METHODS:
        res = evaluate(method, chosen[method], "test")
        for (name, budget, seed), m in res.items():
            for metric, value in m.items():
                table.setdefault(name, {}).setdefault(metric, {}).setdefault(budget, {}).setdefault(method, []).append(
                    value
                )
    summary = {
        name: {
            metric: {
                b: {meth: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)} for meth, v in row.items()}
                for b, row in rows.items()
            }
            for metric, rows in by.items()
        }
        for name, by in table.items()
    }
    sizes = {name: {"heldout": len(s[5]), "validation": len(s[6]), "pool": len(s[7])} for name, s in sets.items()}
    return {
        **done,
        "summary": summary,
        "sizes": sizes,
        "seeds": list(args.seeds),
        "model": scorer.model_id,
    }


def _per_point(res: dict[tuple[str, str, int], dict[str, float]]) -> dict[str, float]:
    """{"data set budget metric": mean over seeds} of one setting's results."""
    acc: dict[str, list[float]] = {}
    for (name, budget, _), m in res.items():
        for metric, value in m.items():
            acc.setdefault(f"{name} {budget} {metric}", []).append(value)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--datasets", default="textile,elpv")
    p.add_argument("--cache", default=str(ROOT / "runs" / "examples_curve"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--methods", default=",".join(GRID), help="methods whose grids are searched (default: all)")
    p.add_argument(
        "--validation-only", action="store_true", help="search the grids only; the held-out split is not touched"
    )
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.datasets = args.datasets.split(",")
    args.methods = args.methods.split(",")
    t0 = time.perf_counter()
    out = run(args)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["command"] = "python -m bench.examples_curve " + " ".join(sys.argv[1:] if argv is None else argv)
    target = Path(args.out)
    (target / "examples_curve_validation.md").write_text(validation_markdown(out))
    if args.validation_only:
        (target / "examples_curve_validation.json").write_text(json.dumps(out, indent=1))
        print(validation_markdown(out))
        return 0
    (target / "examples_curve.json").write_text(json.dumps(out, indent=1))
    (target / "examples_curve.md").write_text(markdown(out))
    plot(out, ROOT / "docs" / "examples_curve.png")
    print(markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
