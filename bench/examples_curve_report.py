"""bench.examples_curve's tables and plot (the held-out table, the validation grid, the curves)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

BUDGETS = ("0", "5/label", "20/label", "50", "200", "1000")
METHODS = ("text", "examples", "both", "both_voted", "both_debiased", "tip_adapter", "logreg", "probe")


def validation_markdown(out: dict[str, Any], methods: tuple[str, ...] = ("probe",)) -> str:
    """The validation grid of `methods`, one row per setting, accuracy per point and the mean."""
    pts = list(out["validation_points"].items())
    cols = [k for k in next(iter(out["validation_points"].values())) if k.endswith("accuracy") and " 0 " not in k]
    lines = ["| setting | mean | " + " | ".join(c.removesuffix(" accuracy") for c in cols) + " |"]
    lines.append("|---|---|" + "---|" * len(cols))
    for key, row in pts:
        setting = json.loads(key)
        if setting["method"] not in ("text", *methods):
            continue
        mean = float(np.mean([row[c] for c in cols]))
        label = ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else str(v) for k, v in setting.items())
        lines.append(f"| {label} | {mean:.4f} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines) + "\n"


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "| data set | metric | confirmed parts | " + " | ".join(METHODS) + " |",
        "|---|---|---|" + "---|" * len(METHODS),
    ]
    for name, by in out["summary"].items():
        for metric, rows in by.items():
            for budget in BUDGETS:
                row = rows[budget]
                cells = [f"{row[m]['mean']:.3f} ± {row[m]['std']:.3f}" for m in METHODS]
                lines.append(f"| {name} | {metric} | {budget} | " + " | ".join(cells) + " |")
    chosen = "; ".join(f"{m}: {p}" for m, p in out["chosen"].items() if p)
    return (
        "\n".join(lines)
        + f"\n\nParameters chosen on validation: {chosen}. Seeds {out['seeds']}; sizes {out['sizes']}.\n"
    )


LEGEND = {"probe": "probe + cache (station)", "both": "blend (before)"}


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(out["summary"])
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = out["summary"][name]["accuracy"]
        xs = range(len(BUDGETS))
        for method in METHODS:
            means = [rows[b][method]["mean"] for b in BUDGETS]
            stds = [rows[b][method]["std"] for b in BUDGETS]
            station = method == "probe"
            ax.errorbar(
                xs,
                means,
                yerr=stds,
                marker="o",
                capsize=3,
                label=LEGEND.get(method, method),
                linewidth=3 if station else 1.2,
                zorder=3 if station else 2,
                color="black" if station else None,
            )
        ax.set_xticks(list(xs), list(BUDGETS))
        ax.set_xlabel("confirmed parts")
        ax.set_ylabel("held-out accuracy")
        ax.set_title(f"{name}: examples vs words (no training)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
