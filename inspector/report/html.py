"""The report as one self-contained HTML file: tables, and plots inline as SVG (matplotlib, when
installed; the tables carry every figure without it). No external resource is referenced."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path

from inspector.report.kpi import KPI

_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}"
    "td:first-child,th:first-child{text-align:left}.note{color:#555}"
)


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _svg(draw) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "<p class=note>(matplotlib is not installed: plots left out; the tables hold every figure)</p>"
    fig, ax = plt.subplots(figsize=(6, 3.2))
    draw(ax)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _summary_rows(groups: Sequence[KPI]) -> list[list[object]]:
    return [
        [
            g.name,
            g.parts,
            g.agreement.answered,
            _f(g.agreement.top1_rate),
            _f(g.agreement.top3_rate),
            _f(g.none_rate),
            _f(g.review_rate),
            _f(g.seconds_per_part, 1),
            _f(g.cost_per_1000, 1),
            "–" if g.cost_ci is None else f"{g.cost_ci[0]:.1f} – {g.cost_ci[1]:.1f}",
        ]
        for g in groups
    ]


SUMMARY_HEAD = [
    "Group",
    "Parts",
    "Answered",
    "Top-1",
    "Top-3",
    "None of these",
    "Review lane",
    "Operator s/part (median)",
    "Cost / 1000 parts",
    "95 % CI (bootstrap)",
]


def render(
    title: str,
    main: Sequence[KPI],
    spreads: dict[str, Sequence[KPI]],
    costs: dict,
    notes: Sequence[str],
    paired: tuple[Sequence[str], Sequence[Sequence[object]]] | None = None,
) -> str:
    """The whole report as HTML text."""
    parts = [
        (
            f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        )
    ]
    parts += [f"<p class=note>{html.escape(n)}</p>" for n in notes]
    parts.append("<h2>Summary</h2>" + _table(SUMMARY_HEAD, _summary_rows(main)))
    if paired is not None:  # inspector.report.versus: model B - model A on the same parts
        parts.append("<h2>Same parts, two models</h2>" + _table(*paired))
    for g in main:
        a = g.agreement
        parts.append(f"<h2>{html.escape(g.name)}: per label</h2>")
        parts.append(
            _table(
                ["Label", "Answered", "Recall (top-1)", "Top-3", "Model said #1", "Precision"],
                [
                    [
                        a.names.get(x.label_id, x.label_id),
                        x.answered,
                        _f(x.top1_rate),
                        _f(x.top3_rate),
                        x.proposed,
                        _f(x.precision),
                    ]
                    for x in a.labels
                ],
            )
        )
        labelled = [x for x in a.labels if x.answered]
        if labelled:
            parts.append(
                _svg(
                    lambda ax, lab=labelled: (
                        ax.bar([x.label_id for x in lab], [x.top1_rate or 0 for x in lab]),
                        ax.set_ylim(0, 1),
                        ax.set_ylabel("recall (top-1)"),
                        ax.tick_params(axis="x", rotation=30),
                    )
                )
            )
        c = a.confusion
        parts.append("<h3>Confusion (rows: model #1, columns: operator's answer)</h3>")
        parts.append(_table(["model #1 \\ answer", *c.columns], [[r, *row] for r, row in zip(c.rows, c.counts)]))
        if c.rows and c.columns:
            parts.append(
                _svg(
                    lambda ax, c=c: (
                        ax.imshow(c.counts, cmap="Blues"),
                        ax.set_xticks(range(len(c.columns)), c.columns, rotation=30),
                        ax.set_yticks(range(len(c.rows)), c.rows),
                    )
                )
            )
        parts.append("<h3>Cost cells (true disposition → proposed: parts)</h3>")
        parts.append(
            _table(
                ["True → proposed", "Parts", "Cost each"],
                [[f"{t} → {p}", n, costs[t][p]] for (t, p), n in sorted(g.cost_cells.items())],
            )
        )
    for name, groups in spreads.items():
        parts.append(f"<h2>Spread per {html.escape(name)}</h2>")
        parts.append(_table(SUMMARY_HEAD, _summary_rows(groups)))
        vals = [g.cost_per_1000 for g in groups if g.cost_per_1000 is not None]
        if len(vals) > 1:
            parts.append(
                f"<p>Cost / 1000 parts ranges {min(vals):.1f} – {max(vals):.1f}"
                f" (spread {max(vals) - min(vals):.1f}).</p>"
            )
    parts.append("<h2>Cost matrix in force (true disposition rows, proposed columns)</h2>")
    cols = list(next(iter(costs.values())))
    parts.append(_table(["true \\ proposed", *cols], [[t, *(row[c] for c in cols)] for t, row in costs.items()]))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, text: str) -> Path:
    """Write the file (UTF-8); the folder must exist."""
    p = Path(path)
    p.write_text(text, encoding="utf-8")
    return p
