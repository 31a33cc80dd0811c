"""Two models on the SAME answered parts: each stored image re-ranked by each model (loaded from the
registry), scored against the operator's answer in force; the paired difference B - A with a 95 %
bootstrap interval (parts resampled together, so the part-to-part spread cancels out).

A part ranked by model M on the record keeps its logged ranking for M (no re-ranking needed); the
library is the version the part was ranked with, so only the model differs. Truth: a confirmed or
picked label; "none of these" counts for cost only (true disposition "review", as in kpi).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from inspector.errors import DataError, InspectorError
from inspector.frame.imageio import read_image_file
from inspector.frame.records import Frame
from inspector.frame.scorer import Scorer
from inspector.learning.agreement import answers_in_force
from inspector.learning.registry import ModelRegistry
from inspector.station_model import ModelChoice, load_choice


@dataclass(frozen=True)
class Paired:
    """Model B against model A on the same parts."""

    model_a: str
    model_b: str
    parts: int  # answered parts with a stored image, both models' figures
    top1_a: float | None  # share of parts with a named label where #1 is that label
    top1_b: float | None
    top1_diff_ci: tuple[float, float] | None  # B - A
    cost_a: float  # per 1,000 parts
    cost_b: float
    cost_diff_ci: tuple[float, float]  # B - A; below 0: B is cheaper
    reranked: int  # images re-ranked (the rest used the logged ranking)


def load_registered(log, model: str) -> Scorer:
    """A registered model (id or 8+ digit prefix), its weights checked against the registry."""
    m = ModelRegistry(log).get(model)
    return load_choice(ModelChoice(m.checkpoint, "registry", m.model_id))


def _ci(values: np.ndarray, boot: int, rng: np.random.Generator) -> tuple[float, float]:
    means = values[rng.integers(0, len(values), (boot, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_versus(
    log,
    inspections: Sequence[Mapping[str, Any]],
    decisions: Sequence[Mapping[str, Any]],
    costs: Mapping[str, Mapping[str, float]],
    scorer_a: Scorer | None,
    scorer_b: Scorer,
    *,
    boot: int = 1000,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Paired:
    """Rank every answered part with both models (scorer_a None: A is each part's ranking as logged);
    DataError when no part can be compared."""
    from inspector.station import Station  # the composition root: imported late (it imports the store)

    answers = answers_in_force(decisions)
    stations: dict[tuple[str, int], Station] = {}

    def ranked(scorer: Scorer | None, row: Mapping[str, Any], rgb: np.ndarray) -> tuple[str, str]:
        if scorer is None or row["model_id"] == scorer.model_id:  # on the record already
            return row["top_label_id"], "review" if row["needs_review"] else row["disposition"]
        version = int(row["library_version"])
        key = (scorer.model_id, version)
        if key not in stations:
            stations[key] = Station(scorer, log.library.library(version), version)
        result = stations[key].inspect(Frame(rgb, datetime.now(UTC), str(row["source_id"]), 0))
        return result.ranking.top.label_id, "review" if result.verdict.needs_review else result.verdict.disposition

    todo = [r for r in inspections if (a := answers.get(int(r["id"]))) is not None and a["kind"] != "reject_image"]
    hits, cost, reranked = [], [], 0
    for n, row in enumerate(todo):
        answer = answers[int(row["id"])]
        if not row["image_sha256"]:
            continue
        try:
            rgb = read_image_file(log.image_path(row["image_sha256"]))
        except (InspectorError, OSError):
            continue  # a missing image: that part is left out of both models' figures
        dispositions = {c["label_id"]: c["disposition"] for c in json.loads(row["candidates"])}
        truth = answer["label_id"] if answer["kind"] in ("confirm", "pick") else None
        true_disp = dispositions.get(truth, "review") if truth else "review"
        (top_a, prop_a), (top_b, prop_b) = ranked(scorer_a, row, rgb), ranked(scorer_b, row, rgb)
        reranked += sum(s is not None and row["model_id"] != s.model_id for s in (scorer_a, scorer_b))
        if truth is not None:
            hits.append((top_a == truth, top_b == truth))
        cost.append((costs[true_disp][prop_a], costs[true_disp][prop_b]))
        if progress is not None:
            progress(n + 1, len(todo))
    if not cost:
        raise DataError("no answered part with a stored image in the period: nothing to compare the models on")
    rng = np.random.default_rng(seed)
    c = np.asarray(cost, np.float64) * 1000
    h = np.asarray(hits, np.float64) if hits else None
    return Paired(
        "as logged" if scorer_a is None else scorer_a.model_id,
        scorer_b.model_id,
        len(cost),
        None if h is None else float(h[:, 0].mean()),
        None if h is None else float(h[:, 1].mean()),
        None if h is None else _ci(h[:, 1] - h[:, 0], boot, rng),
        float(c[:, 0].mean()),
        float(c[:, 1].mean()),
        _ci(c[:, 1] - c[:, 0], boot, rng),
        reranked,
    )


def paired_rows(p: Paired) -> tuple[list[str], list[list[object]]]:
    """The report table: one row per figure, A, B and B - A with its interval."""

    def f(x: float | None, d: int = 3) -> str:
        return "–" if x is None else f"{x:.{d}f}"

    head = ["Figure", f"A {p.model_a[:12]}", f"B {p.model_b[:12]}", "B - A", "95 % interval (paired bootstrap)"]
    top_diff = None if p.top1_a is None or p.top1_b is None else p.top1_b - p.top1_a
    top_ci = "–" if p.top1_diff_ci is None else f"[{f(p.top1_diff_ci[0])}, {f(p.top1_diff_ci[1])}]"
    return head, [
        ["Top-1 agreement", f(p.top1_a), f(p.top1_b), f(top_diff), top_ci],
        [
            "Cost / 1000 parts",
            f(p.cost_a, 1),
            f(p.cost_b, 1),
            f(p.cost_b - p.cost_a, 1),
            f"[{f(p.cost_diff_ci[0], 1)}, {f(p.cost_diff_ci[1], 1)}]",
        ],
        ["Parts compared", p.parts, p.parts, "", f"{p.reranked} re-rankings"],
    ]
