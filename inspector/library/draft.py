"""Draft library edits: staged, previewed (impact preview), then published as ONE new version.

A draft is a list of Edit records against the version that was in force when it was started.
`apply_edits` gives the Library the draft would put in force (validated, nothing stored);
`publish` hands the whole draft to the LibraryStore, which checks the 'edit_library' permission
and records one version, all or nothing: a draft is reviewed (impact preview, the staged-changes
list) as a whole, so it goes into force as a whole. Each edit's reason is kept in the version's
reason and, per change, in its 'library_edit' event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from inspector.errors import LibraryError
from inspector.library.labels import Example, Label, Library
from inspector.library.store import LABEL_FIELDS, LibraryStore, Step, StoredLabel
from inspector.store.users import Session

EDIT_ACTIONS: tuple[str, ...] = (
    "add_label",
    "add_description",
    "retire_description",
    "retire_label",
    "update_label",
    "add_example",
    "retire_example",
)


@dataclass(frozen=True)
class Edit:
    """One staged change with its reason."""

    action: str
    label_id: str
    reason: str
    text: str = ""  # the description added or retired
    label: Label | None = None  # the new label (add_label)
    changes: tuple[tuple[str, Any], ...] = ()  # (field, value) pairs (update_label)
    example: Example | None = None  # a stored example (add_example / retire_example; inspector.library.examples)
    # The operators' "none of these" decisions this edit adopts (inspector.library.typed_texts): recorded
    # with the published version, so they leave QA's list once the text is in force.
    typed_from: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.action not in EDIT_ACTIONS:
            raise LibraryError(f"unknown library edit {self.action!r}; known: {', '.join(EDIT_ACTIONS)}")
        if not self.reason.strip():
            raise LibraryError("every library change needs a reason: say why (it is recorded with the version)")
        if self.action in ("add_description", "retire_description") and not self.text.strip():
            raise LibraryError(f"{self.action.replace('_', ' ')} needs the description text")
        if self.action in ("add_example", "retire_example") and (self.example is None or not self.example.sha256):
            raise LibraryError(f"{self.action.replace('_', ' ')} needs an example image stored in the station")
        if self.action == "add_label" and (self.label is None or self.label.id != self.label_id):
            raise LibraryError("add label needs the new label itself")
        if self.action == "update_label":
            unknown = sorted({k for k, _ in self.changes} - set(LABEL_FIELDS))
            if unknown:
                raise LibraryError(f"a label's editable fields are {', '.join(LABEL_FIELDS)}; not {', '.join(unknown)}")
            if not self.changes:
                raise LibraryError(f"label {self.label_id!r} already has these values; nothing to update")

    def describe(self) -> str:
        """One line for the draft list and the history."""
        if self.action == "add_label":
            first = self.label.descriptions[0] if self.label.descriptions else f"{len(self.label.examples)} examples"
            return f"add label {self.label_id!r} ({self.label.disposition}) with {first!r}"
        if self.action in ("add_example", "retire_example"):
            why = f" ({self.example.reason})" if self.example.reason else ""
            return f"{self.label_id}: {self.action.split('_')[0]} example {self.example.sha256[:12]}{why}"
        if self.action == "update_label":
            fields = ", ".join(f"{k} = {'none' if v is None else v}" for k, v in self.changes)
            return f"{self.label_id}: set {fields}"
        if self.action == "retire_label":
            return f"retire label {self.label_id!r}"
        verb = "add" if self.action == "add_description" else "retire"
        return f"{self.label_id}: {verb} description {self.text!r}"


def apply_edit(library: Library, edit: Edit) -> Library:
    """The library with one edit applied; LibraryError when it does not apply (as the store would say)."""
    labels = list(library.labels)
    if edit.action == "add_label":
        if edit.label_id in library.label_ids:
            raise LibraryError(f"label {edit.label_id!r} exists; add descriptions to it or retire it first")
        return replace(library, labels=(*labels, edit.label))
    label = library.label(edit.label_id)
    at = labels.index(label)
    if edit.action == "retire_label":
        del labels[at]
        if not labels:
            raise LibraryError(f"{edit.label_id!r} is the last label; a library needs at least one")
        return replace(library, labels=tuple(labels))
    if edit.action == "add_description":
        text = edit.text.strip()
        kept = tuple(t for t in label.descriptions if t != text)
        labels[at] = replace(label, descriptions=(*kept, text))
    elif edit.action == "retire_description":
        if edit.text not in label.descriptions:
            raise LibraryError(f"label {edit.label_id!r} has no active description {edit.text!r}")
        if len(label.descriptions) == 1:
            raise LibraryError(
                f"{edit.text!r} is the last description of label {edit.label_id!r}; retire the label instead"
            )
        labels[at] = replace(label, descriptions=tuple(t for t in label.descriptions if t != edit.text))
    elif edit.action == "add_example":
        kept = tuple(e for e in label.examples if e.sha256 != edit.example.sha256)
        labels[at] = replace(label, examples=(*kept, edit.example))
    elif edit.action == "retire_example":
        kept = tuple(e for e in label.examples if e.sha256 != edit.example.sha256)
        if len(kept) == len(label.examples):
            raise LibraryError(f"label {edit.label_id!r} has no active example {edit.example.sha256[:12]!r}")
        labels[at] = replace(label, examples=kept)  # Label refuses one left with no words and no examples
    else:  # update_label
        labels[at] = replace(label, **dict(edit.changes))
    return replace(library, labels=tuple(labels))


def apply_edits(library: Library, edits: Sequence[Edit]) -> Library:
    """The library the whole draft would put in force."""
    for edit in edits:
        library = apply_edit(library, edit)
    return library


def publish(store: LibraryStore, base_version: int, edits: Sequence[Edit], user: Session) -> int:
    """Record the whole draft as ONE new version (the store enforces 'edit_library'); returns it.

    Refused when another version was published since the draft began: the draft was previewed
    against a library that is no longer in force. Nothing is recorded when any edit fails.
    """
    if not edits:
        raise LibraryError("the draft is empty; stage a change first")
    current = store.current_version()
    if current != base_version:
        raise LibraryError(
            f"library v{current} was published since this draft began (on v{base_version});"
            " discard the draft and make the change again on the library in force"
        )
    steps = [_step(store, edit) for edit in edits]
    reason = edits[0].reason if len(edits) == 1 else "; ".join(f"{e.describe()}: {e.reason}" for e in edits)
    changes = [
        {"action": e.action, "label_id": e.label_id, "change": e.describe(), "reason": e.reason}
        | ({"typed_from": list(e.typed_from)} if e.typed_from else {})
        for e in edits
    ]
    return store.publish_steps(steps, user, reason, detail={"changes": changes})


def _step(store: LibraryStore, edit: Edit) -> Step:
    example = edit.example
    return store.step(
        edit.action, edit.label_id, text=edit.text, label=edit.label, changes=dict(edit.changes), example=example
    )


def changes_from(label: Label | LabelRow, fields: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The (field, value) pairs of `fields` that differ from the label: an update_label's changes."""
    return tuple((k, v) for k, v in fields.items() if k in LABEL_FIELDS and getattr(label, k) != v)


@dataclass(frozen=True)
class LabelRow:
    """A label as the editor lists it: the version in force with the draft laid over it.

    status: 'active', 'retired' (in force: retired earlier), 'new', 'changed' or 'retiring'
    (what the draft would do). Each description carries a status from the same set.
    """

    id: str
    name: str
    disposition: str
    severity: int
    threshold: float | None
    status: str
    descriptions: tuple[tuple[str, str], ...]  # (text, status)
    examples: tuple[tuple[Example, str], ...] = ()  # (example, status), statuses as for descriptions


def draft_rows(stored: Sequence[StoredLabel], draft: Library) -> list[LabelRow]:
    """Every label of the version in force (retired ones too) and every label the draft adds."""
    rows = []
    drafted = {label.id: label for label in draft.labels}
    for s in stored:
        label = drafted.pop(s.id, None)
        if s.retired and label is None:
            rows.append(
                LabelRow(
                    s.id,
                    s.name,
                    s.disposition,
                    s.severity,
                    s.threshold,
                    "retired",
                    tuple((t, "retired") for t, _ in s.descriptions),
                )
            )
            continue
        if label is None:
            rows.append(
                LabelRow(
                    s.id,
                    s.name,
                    s.disposition,
                    s.severity,
                    s.threshold,
                    "retiring",
                    tuple((t, "retired" if r else "retiring") for t, r in s.descriptions),
                )
            )
            continue
        texts = []
        for text, retired in s.descriptions:
            if text in label.descriptions:
                texts.append((text, "new" if retired else "active"))
            else:
                texts.append((text, "retired" if retired else "retiring"))
        known = {t for t, _ in s.descriptions}
        texts += [(t, "new") for t in label.descriptions if t not in known]
        examples = _example_rows(s, label)
        if s.retired:
            status = "new"
        else:
            same = (label.name, label.disposition, label.severity, label.threshold) == (
                s.name,
                s.disposition,
                s.severity,
                s.threshold,
            ) and all(st in ("active", "retired") for _, st in (*texts, *examples))
            status = "active" if same else "changed"
        rows.append(
            LabelRow(
                label.id, label.name, label.disposition, label.severity, label.threshold, status, tuple(texts), examples
            )
        )
    for label in drafted.values():
        rows.append(
            LabelRow(
                label.id,
                label.name,
                label.disposition,
                label.severity,
                label.threshold,
                "new",
                tuple((t, "new") for t in label.descriptions),
                tuple((e, "new") for e in label.examples),
            )
        )
    return rows


def _example_rows(stored: StoredLabel, label: Label) -> tuple[tuple[Example, str], ...]:
    drafted = {e.sha256 for e in label.examples}
    rows = [
        (e, ("new" if retired else "active") if e.sha256 in drafted else ("retired" if retired else "retiring"))
        for e, retired in stored.examples
    ]
    known = {e.sha256 for e, _ in stored.examples}
    return tuple(rows) + tuple((e, "new") for e in label.examples if e.sha256 not in known)
