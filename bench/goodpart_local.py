"""Good-part model on LOCAL features: does it tell ok from defective parts, beside the ranking?

    python -m bench.goodpart_local [--datasets elpv,textile] [--goods 50,200] [--seeds 0,1] [--sizes 224]

The station's own code (inspector.frame.good_parts: coreset bank of the image tower's local
features, nearest-cell cosine distance, the frame's score = its largest cell distance, threshold =
the 98th percentile of held-out good parts) is fitted on N confirmed good parts drawn from the
pool of bench.examples_curve's splits (the bank) plus N/4 more (the threshold), and scores the
VALIDATION split (ok vs defect; never the held-out test split, which stays for later choices).
Reported per data set: ok-vs-defect AUROC of the good-part model on local cells, of the same
model on the global embedding only (one cell per part, the earlier probe), of the text-only
ranking (1 - P(ok)), and of the mean rank of ranking and local good-part model; and at the
calibrated threshold the share of good parts flagged (false reviews) and of defects flagged.

Local features come from the station's front end (models.dense_map, the whole frame at --sizes
short side, no tiles: ELPV cells are 300 px, textiles 250 px), batched; cached in --cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.examples_curve import ROOT, library_texts, splits
from inspector.frame.example_cache import text_scores
from inspector.frame.good_parts import fit, nearest_distance
from models.metrics import auroc, softmax

GOOD_CANDIDATES = 400  # pool good parts encoded (seeded); banks and thresholds are drawn from these


def encode(name: str, size: int, cache: Path) -> dict[str, Any]:
    """{idx, local [n, K, D] float16, emb [n, D] of the encoded images idx (validation + GOOD_CANDIDATES
    pool good parts), labels [N], extras} at this input size; encoded once."""
    path = cache / f"{name}_{size}.npz"
    if not path.is_file():
        import torch

        from models.benchdata import load_elpv, load_textiles
        from models.dense_map import FrontEnd
        from models.factory import load_model
        from models.scorer import TorchScorer
        from models.tiling import resized_shape

        data = {"elpv": load_elpv, "textile": load_textiles}[name]()
        meta = {"labels": np.array(data.labels), **{"x_" + k: np.array(v) for k, v in data.extras.items()}}
        _, val, pool = splits(name, meta)
        goods = pool[meta["labels"][pool] == "ok"]
        idx = np.sort(np.concatenate([val, np.random.default_rng(0).choice(goods, GOOD_CANDIDATES, replace=False)]))
        scorer = TorchScorer(load_model("inspector-default-v1", device="cpu"))
        enc = scorer._encoder(FrontEnd(size))  # the station's dense encoder, fed in batches here
        local, emb = [], []
        t0 = time.perf_counter()
        for start in range(0, len(idx), 32):
            batch = [data.images[i] for i in idx[start : start + 32]]
            shape = resized_shape(*batch[0].shape[:2], size)
            dense = enc._forward(torch.stack([enc._tensor(im, None, shape) for im in batch])).cpu().numpy()
            for d in dense:
                flat = d.reshape(d.shape[0], -1).T
                norm = np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)  # as models.dense_map
                local.append((flat / norm).astype(np.float16))
                m = d.mean(axis=(1, 2))
                emb.append(m / np.linalg.norm(m))
            print(f"{name} {size}px: {start + len(batch)}/{len(idx)} ({time.perf_counter() - t0:.0f} s)", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, idx=idx, local=np.stack(local), emb=np.stack(emb).astype(np.float32), **meta)
    return dict(np.load(path, allow_pickle=False))


def _rank_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.argsort(np.argsort(a)) + np.argsort(np.argsort(b))) / 2.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    from models.factory import load_model
    from models.scorer import TorchScorer

    scorer = TorchScorer(load_model("inspector-default-v1", device="cpu"))
    out: dict[str, Any] = {}
    for name in args.datasets:
        texts = library_texts(name)
        names = list(texts)
        text_emb = scorer.embed_texts([t for n in names for t in texts[n]])
        counts = np.array([len(texts[n]) for n in names])
        for size in args.sizes:
            f = encode(name, size, Path(args.cache))
            labels = f["labels"]
            _, val, pool = splits(name, f)
            defect = labels[val] != "ok"
            row = {int(i): r for r, i in enumerate(f["idx"])}  # data-set index -> encoded row
            # nan_to_num: caches written before the encoder's zero-norm guard was copied here
            local = {i: np.nan_to_num(f["local"][r].astype(np.float32)) for i, r in row.items()}
            emb = {i: f["emb"][r] for i, r in row.items()}
            val_emb = np.stack([emb[i] for i in val])
            words = text_scores(val_emb @ text_emb.T, counts)
            p_ok = softmax(words - words.max(1, keepdims=True), scorer.logit_scale)[:, names.index("ok")]
            rows: dict[str, Any] = {"text_only": float(auroc(1 - p_ok, defect)), "validation": int(len(val))}
            goods = np.array(sorted(i for i in row if i in set(pool.tolist()) and labels[i] == "ok"))
            for n in args.goods:
                res: dict[str, list[float]] = {}
                for seed in args.seeds:
                    pick = np.random.default_rng([seed, n]).choice(goods, n + max(n // 4, 10), replace=False)
                    bank, cal = pick[:n], pick[n:]
                    basis = {"model_id": scorer.model_id, "front_end": {"input_size": size}}
                    model = fit([local[i] for i in bank], [local[i] for i in cal], basis, {}, args.max_bank)
                    s_local = np.array([nearest_distance(local[i], model.bank).max() for i in val])
                    g = fit([np.stack([emb[i] for i in bank])], [emb[i][None] for i in cal], basis, {}, args.max_bank)
                    s_global = nearest_distance(val_emb, g.bank)
                    for key, value in (
                        ("good_local", auroc(s_local, defect)),
                        ("good_global", auroc(s_global, defect)),
                        ("text_plus_good_local", auroc(_rank_mean(1 - p_ok, s_local), defect)),
                        ("false_review_rate", float((s_local[~defect] > model.threshold).mean())),
                        ("defects_flagged", float((s_local[defect] > model.threshold).mean())),
                        ("global_false_review_rate", float((s_global[~defect] > g.threshold).mean())),
                        ("global_defects_flagged", float((s_global[defect] > g.threshold).mean())),
                    ):
                        res.setdefault(key, []).append(float(value))
                rows[str(n)] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in res.items()}
            out[f"{name}@{size}"] = rows
            print(json.dumps({f"{name}@{size}": rows}), flush=True)
    return out


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "| data set @ input px | good parts in bank | text only | good-part, global | good-part, local |"
        " text + local (mean rank) | global: good flagged | global: defects flagged | local: good flagged |"
        " local: defects flagged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, rows in out.items():
        if not isinstance(rows, dict) or "text_only" not in rows:
            continue
        for n, r in rows.items():
            if not isinstance(r, dict):
                continue

            def cell(k: str, r: dict = r) -> str:
                return f"{r[k]['mean']:.3f} ± {r[k]['std']:.3f}"

            lines.append(
                f"| {key} | {n} | {rows['text_only']:.3f} | {cell('good_global')} | {cell('good_local')} |"
                f" {cell('text_plus_good_local')} | {cell('global_false_review_rate')} |"
                f" {cell('global_defects_flagged')} | {cell('false_review_rate')} | {cell('defects_flagged')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="elpv,textile")
    p.add_argument("--goods", default="50,200")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--sizes", default="224")
    p.add_argument("--max-bank", type=int, default=4096)
    p.add_argument("--cache", default=str(ROOT / "runs" / "goodpart_local"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    args.datasets = args.datasets.split(",")
    args.goods = [int(g) for g in args.goods.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.sizes = [int(s) for s in args.sizes.split(",")]
    t0 = time.perf_counter()
    out = run(args)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["command"] = "python -m bench.goodpart_local " + " ".join(sys.argv[1:] if argv is None else argv)
    (Path(args.out) / "goodpart_local.json").write_text(json.dumps(out, indent=1))
    (Path(args.out) / "goodpart_local.md").write_text(markdown(out) + f"\n`{out['command']}`, {out['seconds']} s\n")
    print(markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
