"""Issue 13's arms table and plot, from a learning-curve run's JSON (bench.learning_curve rows' `arms`).

    python -m bench.learning_arms RUN.json [RUN2.json ...] \
        [--plot docs/learning_arms.png] [--md bench/results/learning_arms.md]

Trains nothing: it reads the held-out figures bench/finetune_examples.py recorded after every round
(text, examples, finetuned, both, logreg) and writes the mean ± std over seeds per (data set, loss,
round), the two verdicts per point, and a two-panel plot (ELPV accuracy, textile top-1). Round 0 is
the shipped model with no confirmations: every station arm is then the words of the shipped model
(the curve's round 0); the regression has no rows to fit, so it starts at the first round.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

ARM_NAMES = {
    "text": "text only (shipped)",
    "examples": "examples (shipped + confirmations)",
    "finetuned": "fine-tuned (words)",
    "both": "both (fine-tuned + examples)",
    "logreg": "logistic regression (frozen features)",
}
STATION = ("examples", "both")  # what the station ranks with once it has confirmations
# "above" means by at least the progress logs' precision (3 decimals); a smaller margin is a tie, missed
RESOLUTION = 1e-3
PANELS = [("elpv", "ELPV accuracy"), ("textile", "textile top-1")]


def _summary(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's view of several (e.g. one per data set, run side by side): their rows and round-0 figures."""
    out: dict[str, Any] = {"rows": [], "round0": {}}
    seen: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        for r in run["rows"]:
            key = (r["dataset"], r["loss"], r["seed"], r["round"])
            if key in seen:  # the same point run twice (a run restarted): kept once, and it must agree
                a, b = seen[key].get("arms", {}), r.get("arms", {})
                gap = max((abs(a[k]["accuracy"] - b[k]["accuracy"]) for k in a.keys() & b.keys()), default=0.0)
                if gap > 1e-3:
                    raise ValueError(f"{key} differs between runs by {gap:.4f}")
                continue
            seen[key] = r
            out["rows"].append(r)
        out["round0"].update(run["round0"])
    return out


_LOG_ROW = re.compile(r"(\w+)\s+(\w+) seed (\d+) round\s+(\d+): .*?arms acc ((?:\w+ [\d.]+ ?)+)")
_LOG_ZERO = re.compile(r"(\w+) round 0 \(shipped model\): (\{.*\})")


def from_log(text: str) -> dict[str, Any]:
    """The rows' arm accuracies as bench.learning_curve's progress lines print them (a run cut short)."""
    out: dict[str, Any] = {"rows": [], "round0": {}}
    for ds, figures in _LOG_ZERO.findall(text):
        out["round0"][ds] = json.loads(figures)
    for ds, loss, seed, n, accs in _LOG_ROW.findall(text):
        pairs = accs.split()
        arms = {k: {"accuracy": float(v)} for k, v in zip(pairs[::2], pairs[1::2])}
        out["rows"].append({"dataset": ds, "loss": loss, "seed": int(seed), "round": int(n), "arms": arms})
    return out


def aggregate(out: dict[str, Any], metric: str = "accuracy") -> dict[str, Any]:
    """{data set: {loss: {round: {arm: summary over seeds}}}}; round "0" is the shipped model's words."""
    table: dict[str, Any] = {}
    for r in out["rows"]:
        if "arms" not in r:
            continue
        per = table.setdefault(r["dataset"], {}).setdefault(r["loss"], {}).setdefault(str(r["round"]), {})
        for arm in ARM_NAMES:
            if arm in r["arms"] and metric in r["arms"][arm]:
                per.setdefault(arm, []).append(r["arms"][arm][metric])
    for ds, losses in table.items():
        zero = out["round0"][ds]["accuracy" if ds == "elpv" else "top1"] if metric == "accuracy" else None
        for loss, rounds in losses.items():
            for n, arms in rounds.items():
                rounds[n] = {arm: _summary(v) for arm, v in arms.items()}
            if zero is not None:
                rounds["0"] = {arm: _summary([zero]) for arm in ("text", "examples", "finetuned", "both")}
            losses[loss] = dict(sorted(rounds.items(), key=lambda kv: int(kv[0])))
    return table


def verdicts(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (data set, loss, round > 0): both above fine-tuned and examples; each station arm above text and logreg."""
    res = []
    for ds, losses in table.items():
        for loss, rounds in losses.items():
            for n, a in rounds.items():
                if n == "0" or not {"both", "finetuned", "examples", "text"} <= set(a):
                    continue
                m = {k: v["mean"] for k, v in a.items()}
                row = {"dataset": ds, "loss": loss, "round": int(n), "means": m}
                row["both_vs_single"] = m["both"] - max(m["finetuned"], m["examples"])
                row["both_above_single"] = row["both_vs_single"] >= RESOLUTION
                for arm in STATION:
                    if "logreg" in m:
                        row[f"{arm}_vs_baselines"] = m[arm] - max(m["text"], m["logreg"])
                        row[f"{arm}_above_baselines"] = row[f"{arm}_vs_baselines"] >= RESOLUTION
                res.append(row)
    return res


def _cell(s: dict[str, float] | None, n_seeds: int) -> str:
    """mean ± std; the number of seeds when a point has fewer than the run (a run cut short)."""
    if s is None:
        return ""
    if s["n"] == 1 and n_seeds == 1:
        return f"{s['mean']:.3f}"
    text = f"{s['mean']:.3f} ± {s['std']:.3f}" if s["n"] > 1 else f"{s['mean']:.3f}"
    return text + (f" (n={s['n']})" if s["n"] < n_seeds else "")


def _met(ok: bool | None, margin: float | None) -> str:
    return "" if ok is None else f"{'met' if ok else '**missed**'} ({margin:+.3f})"


def markdown(out: dict[str, Any]) -> str:
    """The table (accuracy / top-1, mean ± std over seeds) with the verdicts per point, and their tallies."""
    table, vs = aggregate(out), verdicts(aggregate(out))
    seeds = sorted({r["seed"] for r in out["rows"]})
    lines = [
        f"Held-out accuracy (ELPV: defective = p ≥ 0.5 over all held-out cells; textile: top-1), mean ± std"
        f" over seeds {seeds}; round 0 = the shipped model, no confirmations. Margins: both − max(fine-tuned,"
        " examples); station arm − max(text, log. regression); met = above by at least 0.001 (a smaller margin is a tie: missed).",
        "",
        "| data set | loss | confirmations | text | examples | fine-tuned | both | log. regression"
        " | both > fine-tuned & examples | both > text & log. reg. | examples > text & log. reg. |",
        "|---|---|---:|---|---|---|---|---|---|---|---|",
    ]
    by_point = {(v["dataset"], v["loss"], str(v["round"])): v for v in vs}
    for ds, losses in table.items():
        for loss, rounds in losses.items():
            for n, a in rounds.items():
                v = by_point.get((ds, loss, n), {})
                lines.append(
                    f"| {ds} | {loss} | {n} | "
                    + " | ".join(_cell(a.get(arm), len(seeds) if n != "0" else 1) for arm in ARM_NAMES)
                    + f" | {_met(v.get('both_above_single'), v.get('both_vs_single'))}"
                    + f" | {_met(v.get('both_above_baselines'), v.get('both_vs_baselines'))}"
                    + f" | {_met(v.get('examples_above_baselines'), v.get('examples_vs_baselines'))} |"
                )
    lines.append("")
    for loss in sorted({v["loss"] for v in vs}):
        mine = [v for v in vs if v["loss"] == loss]
        tally = lambda key: f"{sum(bool(v.get(key)) for v in mine)} of {sum(key in v for v in mine)}"  # noqa: E731
        lines.append(
            f"- {loss}: both above fine-tuned and examples at {tally('both_above_single')} points; both above text"
            f" and logistic regression at {tally('both_above_baselines')}; examples above text and logistic"
            f" regression at {tally('examples_above_baselines')}."
        )
    return "\n".join(lines) + "\n"


def plot(out: dict[str, Any], path: Path, loss: str = "rankclip") -> None:
    """Two panels (ELPV accuracy, textile top-1) against confirmations, one line per arm, mean ± std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = aggregate(out)
    style = {
        "text": ("0.45", "o", ":"),
        "examples": ("#2471a3", "s", "-"),
        "finetuned": ("#c0392b", "^", "-"),
        "both": ("black", "D", "-"),
        "logreg": ("#27ae60", "v", "--"),
    }
    panels = [(ds, label) for ds, label in PANELS if loss in table.get(ds, {})]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.6), squeeze=False)
    per_point = {(r["dataset"], r["round"]): set() for r in out["rows"] if r["loss"] == loss}
    for r in out["rows"]:
        if r["loss"] == loss:
            per_point[r["dataset"], r["round"]].add(r["seed"])
    few, many = min(map(len, per_point.values())), max(map(len, per_point.values()))
    seeds = f"{few}" if few == many else f"{few}–{many}"
    for ax, (ds, label) in zip(axes[0], panels):
        rounds = table[ds][loss]
        ticks = [int(n) for n in rounds]
        xs = {n: i for i, n in enumerate(ticks)}
        for arm, (colour, marker, ls) in style.items():
            pts = [(int(n), a[arm]) for n, a in rounds.items() if arm in a]
            if not pts:
                continue
            x = np.array([xs[n] for n, _ in pts], dtype=float)
            mean = np.array([s["mean"] for _, s in pts])
            std = np.array([s["std"] for _, s in pts])
            ax.plot(x, mean, marker=marker, ls=ls, color=colour, label=ARM_NAMES[arm], markersize=5)
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.12, lw=0)
        seeds_at = {n: len(per_point.get((ds, n), ())) for n in ticks}
        ax.set_xticks(
            range(len(ticks)),
            [
                f"{n}\n(shipped)" if n == 0 else f"{n}\n({seeds_at[n]} seed{'s' if seeds_at[n] > 1 else ''})"
                for n in ticks
            ],
        )
        ax.set_xlabel("operator confirmations (rounds, not to scale)")
        ax.set_title(f"{label}, fixed held-out split ({loss} fine-tune)", fontsize=10)
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    fig.suptitle(
        "Issue 13: text, examples, fine-tuning, both, and logistic regression"
        f" (mean ± std over {seeds} seed{'s' if many > 1 else ''} per point)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "json",
        nargs="+",
        help="bench.learning_curve results JSONs whose rows carry `arms`, or its progress logs (*.log: accuracy only); merged",
    )
    p.add_argument("--plot", help="write the two-panel plot here (PNG)")
    p.add_argument("--loss", default="rankclip", help="the fine-tune loss the plot shows")
    p.add_argument("--md", help="write the table here (default: print it)")
    args = p.parse_args(argv)
    out = merge(
        [from_log(Path(f).read_text()) if f.endswith(".log") else json.loads(Path(f).read_text()) for f in args.json]
    )
    text = markdown(out)
    if args.md:
        Path(args.md).write_text(text)
    print(text)
    if args.plot:
        plot(out, Path(args.plot), args.loss)
    return 0


if __name__ == "__main__":
    sys.exit(main())
