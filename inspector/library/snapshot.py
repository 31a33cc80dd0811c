"""One library version as stored: StoredLabel (active and retired parts) and the Snapshot of them.

Pure data, no SQL: inspector.library.store reads and writes these as chained versions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from inspector.library.labels import Example, Label


@dataclass(frozen=True)
class StoredLabel:
    """A label as one library version holds it, retired parts included."""

    id: str
    name: str
    disposition: str
    severity: int
    threshold: float | None
    scope: dict[str, str]
    retired: bool
    descriptions: tuple[tuple[str, bool], ...]  # (text, retired) in the library's order
    examples: tuple[tuple[Example, bool], ...] = ()  # (stored example, retired) in the library's order

    @property
    def active_descriptions(self) -> tuple[str, ...]:
        return tuple(text for text, retired in self.descriptions if not retired)

    @property
    def active_examples(self) -> tuple[Example, ...]:
        return tuple(example for example, retired in self.examples if not retired)

    def to_label(self) -> Label:
        """The Label in force (active descriptions and examples only); validates it."""
        return Label(
            self.id,
            self.name,
            self.disposition,
            self.severity,
            self.active_descriptions,
            self.threshold,
            dict(self.scope),
            self.active_examples,
        )

    def retired_all(self) -> StoredLabel:
        """This label retired with every description and example (kept in the history)."""
        return replace(
            self,
            retired=True,
            descriptions=tuple((t, True) for t, _ in self.descriptions),
            examples=tuple((e, True) for e, _ in self.examples),
        )


def from_label(label: Label, old: StoredLabel | None = None) -> StoredLabel:
    """`label` as the next version stores it; descriptions and examples it drops from `old` are kept, retired."""
    kept = [(text, True) for text, _ in (old.descriptions if old else ()) if text not in label.descriptions]
    texts = tuple((text, False) for text in label.descriptions) + tuple(kept)
    shas = {e.sha256 for e in label.examples}
    gone = [(e, True) for e, _ in (old.examples if old else ()) if e.sha256 not in shas]
    examples = tuple((e, False) for e in label.examples) + tuple(gone)
    return StoredLabel(
        label.id,
        label.name,
        label.disposition,
        label.severity,
        label.threshold,
        dict(label.scope),
        False,
        texts,
        examples,
    )


Snapshot = dict[str, StoredLabel]
# What update_label may change; the id is the label's identity and descriptions have their own edits.
LABEL_FIELDS: tuple[str, ...] = ("name", "disposition", "severity", "threshold")
