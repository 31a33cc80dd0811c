"""What a draft would change, as a readable list: shown (and confirmed once) before publishing.

Pure: the version in force (StoredLabel rows, retired parts included) and the draft's Library in,
lines out. Labels and descriptions added, changed or retired; example images counted by hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inspector.library.draft import LabelRow, draft_rows
from inspector.library.labels import Library
from inspector.library.store import StoredLabel


@dataclass(frozen=True)
class DiffLine:
    """One change: kind 'added', 'changed' or 'retired'; a label's line has depth 0, its parts depth 1."""

    kind: str
    text: str
    depth: int = 0

    def __str__(self) -> str:
        mark = {"added": "+", "changed": "~", "retired": "\u2212"}[self.kind]
        return f"{'    ' * self.depth}{mark} {self.text}"


def _threshold(value: float | None) -> str:
    return "policy default" if value is None else f"{value:.2f}"


def _fields(old: StoredLabel, row: LabelRow) -> list[str]:
    pairs = (
        ("name", old.name, row.name),
        ("disposition", old.disposition, row.disposition),
        ("severity", old.severity, row.severity),
        ("threshold", _threshold(old.threshold), _threshold(row.threshold)),
    )
    return [f"{name} {a} \u2192 {b}" for name, a, b in pairs if a != b]


def _parts(row: LabelRow) -> list[DiffLine]:
    lines = []
    for text, status in row.descriptions:
        if status == "new":
            lines.append(DiffLine("added", f"description \u201c{text}\u201d", 1))
        elif status == "retiring":
            lines.append(DiffLine("retired", f"description \u201c{text}\u201d", 1))
    for example, status in row.examples:
        why = f" ({example.reason})" if example.reason else ""
        if status == "new":
            lines.append(DiffLine("added", f"example image {example.sha256[:12]}{why}", 1))
        elif status == "retiring":
            lines.append(DiffLine("retired", f"example image {example.sha256[:12]}{why}", 1))
    return lines


def staged_changes(stored: Sequence[StoredLabel], draft: Library) -> list[DiffLine]:
    """The draft against the version in force, label by label in the library's order."""
    old = {s.id: s for s in stored}
    lines: list[DiffLine] = []
    for row in draft_rows(stored, draft):
        if row.status == "new":
            back = "bring back label" if row.id in old else "new label"
            lines.append(DiffLine("added", f"{back} {row.name} [{row.id}]: {row.disposition}, severity {row.severity}"))
            lines += _parts(row)
        elif row.status == "retiring":
            count = sum(status == "retiring" for _, status in row.descriptions)
            lines.append(DiffLine("retired", f"label {row.name} [{row.id}] and its {count} description(s)"))
        elif row.status == "changed":
            fields = _fields(old[row.id], row)
            lines.append(
                DiffLine("changed", f"label {row.name} [{row.id}]" + (f": {', '.join(fields)}" if fields else ""))
            )
            lines += _parts(row)
    return lines
